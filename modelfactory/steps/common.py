"""Steps shared by every use case: ingest (raw data kept unchanged, with a batch id) and validate."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pandas as pd

from modelfactory.data.io import is_url
from modelfactory.errors import DataSourceError
from modelfactory.use_cases import use_case


def ingest(use_case_name: str, source: str, out_path: str, n_synthetic_rows: int = 20_000,
           seed: int = 42) -> dict:
    """Copy the source file byte for byte to ``out_path`` (or generate demo data when source is empty).

    Returns lineage metadata: batch id, source, sha256 and size of the raw bytes.
    """
    case = use_case(use_case_name)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not source:
        case.write(case.generate(n_synthetic_rows, seed=seed), out)
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


def validate(use_case_name: str, raw_path: str, out_path: str, source_name: str | None = None) -> dict:
    """Load the raw file with the use case's loader, check it, and write the typed table as Parquet."""
    case = use_case(use_case_name)
    name = source_name or raw_path
    raw = case.load(raw_path)
    frame = case.validate(raw, name)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out_path, index=False)
    return {"rows": len(frame), "columns": len(frame.columns)}


def register_behind_gate(model_info: dict, model_name: str, metric, score_champion, margin: float = 0.0,
                         tracking_uri: str = "", version_tags: dict[str, str] | None = None) -> dict:
    """Register a trained model as challenger; the promotion gate decides whether it becomes champion.

    ``model_info`` comes from a train step (run id, model URI); the run holds ``holdout_<metric>``
    and ``baseline_holdout_<metric>``. ``score_champion(version, tracking_uri)`` scores the current
    champion on this run's holdout, so both numbers answer the same question, and returns
    ``(score, extra run tags)``.
    """
    import mlflow

    from modelfactory.promotion import promotion_gate
    from modelfactory.registry import CHAMPION, Registry, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri or model_info.get("tracking_uri"))
    mlflow.set_tracking_uri(uri)
    registry = Registry(uri)
    metrics = registry.run_metrics(model_info["run_id"])
    candidate = metrics[f"holdout_{metric.name}"]
    baseline = metrics[f"baseline_holdout_{metric.name}"]
    champion = registry.version_by_alias(model_name, CHAMPION)
    champion_score, run_tags = None, {}
    if champion is not None:
        champion_score, run_tags = score_champion(str(champion.version), uri)
    decision = promotion_gate(metric, candidate, champion=champion_score, baseline=baseline,
                              margin=margin, champion_version=champion.version if champion else None)
    version = registry.register(model_name, model_info["model_uri"], model_info["run_id"], tags=version_tags)
    registry.record_decision(model_name, version.version, decision)
    with mlflow.start_run(run_id=model_info["run_id"]):
        mlflow.set_tags({**decision.as_tags(), "modelfactory.registered_version": version.version, **run_tags})
        if champion_score is not None:
            mlflow.log_metric(f"champion_holdout_{metric.name}", champion_score)
    return {"model_name": model_name, "version": version.version, "promoted": decision.promote,
            "alias": CHAMPION if decision.promote else "challenger", "reason": decision.reason,
            "run_id": model_info["run_id"], "metric": metric.name, "candidate": candidate,
            "baseline": baseline, "champion": champion_score,
            "previous_champion": champion.version if champion else None}


def read_dataset(path: str) -> pd.DataFrame:
    return pd.read_parquet(path)


def write_dataset(frame: pd.DataFrame, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"

