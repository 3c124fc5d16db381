"""How the bank-marketing classifier is monitored (its
:class:`~modelfactory.use_case.MonitoringSpec`).

- Compared columns: every model input as logged (numbers and categories) and the positive-class
  probability the model answered (prediction drift).
- Reference: the champion's training split (``reference_data/``), with the champion's own
  probabilities on it, so a window's scores are compared with the scores the model gave the data
  it learned from.
- Ground truth: did the customer subscribe, ``"yes"`` or ``"no"`` (also true/false, 1/0).
- Realized performance: ROC-AUC, PR-AUC, precision, recall and F1 at the served threshold (0.5),
  the same figures the training run logged as ``holdout_*``, and the share answered right
  (``accuracy``, which a rollout judges as a rate).
- Retraining rows: logged features with their ground truth, in the UCI file's columns
  (``duration`` empty: a served prediction precedes the call it would measure).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from modelfactory.data import bank_marketing as bank

if TYPE_CHECKING:
    from modelfactory.monitoring.reference import Reference, VersionFigures

PROBABILITY = "probability"
REALIZED_METRICS = ("roc_auc", "pr_auc", "precision", "recall", "f1", "accuracy")
_TRUE = {"yes": 1, "no": 0, "1": 1, "0": 0, "true": 1, "false": 0}


def check_actual(value: Any) -> int:
    """1 when the customer subscribed, 0 when not; ValueError for anything else."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE:
        return _TRUE[value.strip().lower()]
    shown = f'"{value}"' if isinstance(value, str) else repr(value)
    raise ValueError(f'expected "yes" or "no" (or true/false, 1/0), got {shown[:40]}')


def reference_rows(reference: Reference) -> pd.DataFrame:
    """The champion's training rows (inputs) with the champion's probability for each."""
    import mlflow

    champion = reference.champion
    mlflow.set_tracking_uri(champion.registry.tracking_uri)
    model = mlflow.sklearn.load_model(f"models:/{champion.model_name}/{champion.version}")
    rows = reference.training[list(bank.FEATURES)].reset_index(drop=True)
    return rows.assign(**{PROBABILITY: model.predict_proba(rows)[:, 1]})


def performance(
    labelled: pd.DataFrame, figures: VersionFigures, max_drop: float
) -> tuple[dict[str, float], dict[str, str]]:
    """Realized metrics of one version's labelled rows (ROC-AUC and PR-AUC are NaN while only one
    class has been observed)."""
    from modelfactory.classification.metrics import classification_metrics

    metrics = classification_metrics(
        labelled["actual"].to_numpy(dtype=np.int8), labelled[PROBABILITY].to_numpy(dtype=float)
    )
    right = metrics["true_positives"] + metrics["true_negatives"]
    metrics["accuracy"] = right / len(labelled) if len(labelled) else float("nan")
    return {name: float(metrics[name]) for name in REALIZED_METRICS}, {}


def training_rows(labelled: pd.DataFrame) -> pd.DataFrame:
    """Labelled logged rows as rows of the UCI bank-additional file."""
    rows = pd.DataFrame({name: labelled[name].to_numpy() for name in bank.FEATURES})
    for name in bank.NUMERIC_FEATURES:
        rows[name] = pd.to_numeric(rows[name])
    rows["duration"] = np.nan
    rows[bank.TARGET] = np.where(labelled["actual"].to_numpy(dtype=int) == 1, "yes", "no")
    return rows[list(bank.COLUMN_ORDER)]
