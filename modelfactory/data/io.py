"""Reading tables from a path or URL (CSV, gzipped CSV, Parquet), with errors a user can act on."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from modelfactory.errors import DataSourceError


def is_url(source: str | Path) -> bool:
    return urlparse(str(source)).scheme in {"http", "https", "s3", "gs", "file"}


def read_table(source: str | Path, **csv_options) -> pd.DataFrame:
    """Read a CSV (optionally .gz) or Parquet file from a local path or URL.

    ``csv_options`` go to :func:`pandas.read_csv` (separator, dtypes, ...). An
    empty file, a missing file or an unparseable one raises DataSourceError naming it.
    """
    name = str(source)
    if not is_url(source) and not Path(source).exists():
        raise DataSourceError(f"{name}: no such file")
    suffixes = Path(urlparse(name).path).suffixes
    try:
        if ".parquet" in suffixes or ".pq" in suffixes:
            frame = pd.read_parquet(source)
        else:
            if not is_url(source) and "compression" not in csv_options:
                # Artifact files (KFP, MLflow) often lose their extension: trust the bytes, not
                # the name.
                with open(source, "rb") as handle:
                    csv_options["compression"] = (
                        "gzip" if handle.read(2) == b"\x1f\x8b" else "infer"
                    )
            frame = pd.read_csv(source, **csv_options)
    except pd.errors.EmptyDataError as exc:
        raise DataSourceError(f"{name}: the file is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DataSourceError(f"{name}: cannot be read as a table ({exc})") from exc
    if frame.empty:
        raise DataSourceError(f"{name}: the file has a header but no rows")
    return frame


def read_dataset(path: str) -> pd.DataFrame:
    return pd.read_parquet(path)


def write_dataset(frame: pd.DataFrame, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
