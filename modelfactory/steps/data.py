"""Pipeline steps shared by every use case: ingest (raw data kept unchanged, with a batch id) and
validate (the schema, and the labels against the champion's training data).

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

from modelfactory.data import bank_marketing, rossmann
from modelfactory.data.io import is_url
from modelfactory.data.labels import ClassShares, GroupLevels, LabelComparison
from modelfactory.errors import DataSourceError, DataValidationError
from modelfactory.registry import tracking_server_auth
from modelfactory.use_case import UseCase
from modelfactory.use_cases import CLASSIFICATION, FORECASTING, use_case

# How each use case's labels are compared with its champion's training data (none: not compared).
LABEL_DISTRIBUTIONS: dict[str, ClassShares | GroupLevels] = {
    CLASSIFICATION.name: bank_marketing.LABELS,
    FORECASTING.name: rossmann.LABELS,
}


def ingest(
    use_case_name: str,
    source: str,
    out_path: str,
    n_synthetic_rows: int = 20_000,
    seed: int = 42,
    tracking_uri: str = "",
) -> dict:
    """Copy the source file byte for byte to ``out_path`` (or generate demo data when source is
    empty). A source on the tracking server at ``tracking_uri`` (a run's artifact) is fetched
    with the process's MLflow account.

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
            # A run's artifact on the tracking server (a retrain's feedback file) needs the
            # pipeline's MLflow account; no other host is sent it.
            auth = tracking_server_auth(source, tracking_uri)
            with httpx.stream(
                "GET", source, auth=auth, follow_redirects=True, timeout=60
            ) as response:
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
    use_case_name: str,
    raw_path: str,
    out_path: str,
    source_name: str | None = None,
    model_name: str = "",
    tracking_uri: str = "",
    expect_label_shift: bool = False,
) -> dict:
    """Load the raw file with the use case's loader, check it, and write the typed table as
    Parquet.

    With ``model_name``, the labels are compared with its champion's training data
    (:data:`LABEL_DISTRIBUTIONS`): a shift beyond the limit stops the run naming the column and
    both figures, unless ``expect_label_shift``.
    """
    case = use_case(use_case_name)
    name = source_name or raw_path
    raw = case.data.load(raw_path)
    frame = case.data.validate(raw, name)
    labels = champion_labels(case, frame, model_name, tracking_uri)
    if labels.problems and not expect_label_shift:
        raise DataValidationError(
            name,
            [
                *labels.problems,
                "if this shift is expected, run again with --expect-label-shift (the pipeline "
                "parameter expect_label_shift)",
            ],
        )
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out_path, index=False)
    shifted = "; ".join(labels.problems)
    return {
        "rows": len(frame),
        "columns": len(frame.columns),
        "labels": labels.summary,
        "label_shift": f"expected: {shifted}" if shifted else "none",
    }


def champion_labels(
    case: UseCase, frame, model_name: str, tracking_uri: str = ""
) -> LabelComparison:
    """How ``frame``'s labels compare with the training data of ``model_name``'s champion."""
    spec = LABEL_DISTRIBUTIONS.get(case.name)
    if spec is None or not model_name:
        return LabelComparison("labels not compared: no model to compare with")
    from modelfactory.monitoring.reference import NoReference, champion_figures, training_data
    from modelfactory.registry import Registry

    registry = Registry(tracking_uri or None)
    try:
        champion = champion_figures(registry, model_name)
        reference = training_data(champion)
    except NoReference as exc:
        return LabelComparison(f"labels not compared: {exc}")
    against = f"champion v{champion.version}'s training data"
    try:
        return spec.compare(frame, reference, against)
    except ValueError as exc:
        return LabelComparison(f"labels not compared: {exc}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"
