"""Pipeline steps shared by every use case: ingest (raw data kept unchanged, with a batch id) and
validate.

A step is a plain function over files: it reads its inputs from paths, writes its outputs to
paths and returns the metadata the KFP component attaches to its output artifacts. The use
cases' own steps are `modelfactory.<use case>.steps`; the components under `components/` call
them and nothing else.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx

from modelfactory.data.io import is_url
from modelfactory.errors import DataSourceError
from modelfactory.use_cases import use_case


def ingest(
    use_case_name: str, source: str, out_path: str, n_synthetic_rows: int = 20_000, seed: int = 42
) -> dict:
    """Copy the source file byte for byte to ``out_path`` (or generate demo data when source is
    empty).

    Returns lineage metadata: batch id, source, sha256 and size of the raw bytes.
    """
    case = use_case(use_case_name)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not source:
        case.data.write(case.data.generate(n_synthetic_rows, seed=seed), out)
        origin = f"synthetic:{case.name}?rows={n_synthetic_rows}&seed={seed}"
    elif is_url(source) and urlparse(source).scheme in ("http", "https"):
        try:
            with httpx.stream("GET", source, follow_redirects=True, timeout=60) as response:
                response.raise_for_status()
                with open(out, "wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
        except httpx.HTTPError as exc:
            raise DataSourceError(f"{source}: cannot be downloaded ({exc})") from exc
        origin = source
    else:
        path = Path(urlparse(source).path if source.startswith("file:") else source)
        if not path.is_file():
            raise DataSourceError(f"{source}: no such file")
        shutil.copyfile(path, out)
        origin = str(path.resolve())
    digest = _sha256(out)
    return {
        "batch_id": f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{digest[:8]}",
        "source": origin,
        "sha256": digest,
        "bytes": out.stat().st_size,
        "compressed": _is_gzip(out),
    }


def validate(
    use_case_name: str, raw_path: str, out_path: str, source_name: str | None = None
) -> dict:
    """Load the raw file with the use case's loader, check it, and write the typed table as
    Parquet."""
    case = use_case(use_case_name)
    name = source_name or raw_path
    raw = case.data.load(raw_path)
    frame = case.data.validate(raw, name)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out_path, index=False)
    return {"rows": len(frame), "columns": len(frame.columns)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"
