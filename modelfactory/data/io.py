"""Reading tables from a path or URL (CSV, gzipped CSV, Parquet), with errors a user can act on."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pyarrow as pa

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


def read_dataset(
    path: str, where: str | None = None, values: Iterable | None = None
) -> pd.DataFrame:
    """A Parquet dataset written by a pipeline step; with ``where``, only the rows whose column
    ``where`` holds one of ``values``.

    The filtered read streams the file batch by batch and keeps the matching rows only, so a
    shard of the model factory holds its own stores' rows in memory, never the whole file.
    """
    if where is None:
        return pd.read_parquet(path)
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    wanted = pa.array(sorted(values or []), type=ds.dataset(path).schema.field(where).type)
    table = ds.dataset(path).to_table(filter=pc.field(where).isin(wanted))
    return table.to_pandas()


def distinct_values(path: str, column: str) -> list:
    """The distinct values of one column of a Parquet dataset, read column-only, batch by batch."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    seen: set = set()
    for batch in ds.dataset(path).to_batches(columns=[column]):
        seen.update(pc.unique(batch.column(0)).to_pylist())
    seen.discard(None)
    return sorted(seen)


def write_dataset(frame: pd.DataFrame, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
