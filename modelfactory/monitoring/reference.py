"""What a window is compared with: the champion's training data, and a version's holdout figures.

Every version's training run logs its training data under ``reference_data/``, its holdout
under ``holdout_data/`` and its holdout metrics as ``holdout_*`` (registry conventions,
:mod:`modelfactory.registry`). :func:`version_figures` finds a version's run and metrics
(:func:`run_figures` a run's that is not registered yet); :func:`training_data` downloads and
reads its reference data (sampled to ``max_rows``), :func:`holdout_data` its holdout (None for a
version logged before holdouts were kept); a use case's ``reference`` function
(:class:`~modelfactory.use_case.MonitoringSpec`) turns it into the rows a window is compared
with, given a :class:`Reference`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from modelfactory.errors import ModelFactoryError
from modelfactory.registry import CHAMPION, HOLDOUT_DATA_PATH, REFERENCE_DATA_PATH, Registry


class NoReference(ModelFactoryError):
    """The model has no champion, or the champion's run has no reference data to compare with."""


@dataclass
class VersionFigures:
    """One registered version: its training run's metrics (``holdout_*``) and, on demand, its
    artifacts."""

    model_name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    registry: Registry
    _downloads: dict[str, Path] = field(default_factory=dict, repr=False)

    def holdout(self, metric: str) -> float | None:
        return self.metrics.get(f"holdout_{metric}")

    def artifact(self, path: str) -> Path:
        """A local copy of the run's artifact ``path`` (file or folder), downloaded once."""
        if path not in self._downloads:
            folder = Path(tempfile.mkdtemp(prefix="modelfactory-artifact-"))
            self._downloads[path] = Path(
                self.registry.client.download_artifacts(self.run_id, path, str(folder))
            )
        return self._downloads[path]


@dataclass
class Reference:
    """What a use case's ``reference`` function is given: the champion's training data (sampled),
    the window's logged rows (the forecaster weighs stores by them), and the champion itself."""

    training: pd.DataFrame
    window: pd.DataFrame
    champion: VersionFigures
    max_rows: int = 200_000
    seed: int = 0


def version_figures(registry: Registry, model_name: str, version: str) -> VersionFigures:
    found = registry.client.get_model_version(model_name, version)
    if not found.run_id:
        raise NoReference(f"{model_name} v{version} has no training run to compare with")
    return VersionFigures(
        model_name, str(version), found.run_id, registry.run_metrics(found.run_id), registry
    )


def run_figures(registry: Registry, model_name: str, run_id: str) -> VersionFigures:
    """A training run that is not (yet) a registered version: the candidate at the gate."""
    return VersionFigures(model_name, "(new)", run_id, registry.run_metrics(run_id), registry)


def champion_figures(registry: Registry, model_name: str) -> VersionFigures:
    champion = registry.version_by_alias(model_name, CHAMPION)
    if champion is None:
        raise NoReference(
            f"{model_name} has no champion at {registry.tracking_uri}: nothing to compare the "
            "prediction log with (run its pipeline first)"
        )
    return version_figures(registry, model_name, str(champion.version))


def training_data(figures: VersionFigures, max_rows: int | None = None, seed: int = 0):
    """The version's ``reference_data/`` files as one frame, a uniform sample of ``max_rows``
    rows when larger."""
    frame = _logged(figures, REFERENCE_DATA_PATH)
    if max_rows is not None and len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed).reset_index(drop=True)
    return frame


def holdout_data(figures: VersionFigures) -> pd.DataFrame | None:
    """The version's ``holdout_data/`` files as one frame: the rows and labels it was accepted
    on. None when the run logged none (a version registered before holdouts were kept)."""
    listed = figures.registry.client.list_artifacts(figures.run_id, HOLDOUT_DATA_PATH)
    return _logged(figures, HOLDOUT_DATA_PATH) if listed else None


def _logged(figures: VersionFigures, path: str) -> pd.DataFrame:
    try:
        folder = figures.artifact(path)
    except Exception as exc:  # MLflow raises its own kinds for a missing path
        raise NoReference(
            f"{figures.model_name} v{figures.version}: run {figures.run_id} has no "
            f"{path}/ artifact to compare with ({exc})"
        ) from exc
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file()) if folder.is_dir() else []
    files = files or ([folder] if folder.is_file() else [])
    if not files:
        raise NoReference(
            f"{figures.model_name} v{figures.version}: {path}/ of run {figures.run_id} is empty"
        )
    return pd.concat([_read(file) for file in files], ignore_index=True)


def _read(path: Path) -> pd.DataFrame:
    """Training steps log their training split as Parquet (``write_dataset``), named ``train``."""
    with open(path, "rb") as handle:
        parquet = handle.read(4) == b"PAR1"
    if parquet:
        return pd.read_parquet(path)
    from modelfactory.data.io import read_table

    return read_table(path)
