"""Bank-marketing classifier: preprocessing + random forest, imbalance handling, baseline, metrics.

The imbalance strategy (SMOTE oversampling or class weights) is chosen on a
validation slice of the training part by PR-AUC, the metric that reflects how
well the rare positive class is ranked; the chosen model is then refitted on the
whole training part. The model that leaves this module is always a plain
scikit-learn ``Pipeline`` (preprocess → classifier): SMOTE only acts during
fitting, so it is not needed, nor shipped, for prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelfactory.classification.metrics import classification_metrics
from modelfactory.data import bank_marketing as bank
from modelfactory.data.split import RandomSplit

IMBALANCE_STRATEGIES = ("class_weight", "smote")


@dataclass(frozen=True)
class ClassifierConfig:
    n_estimators: int = 150
    min_samples_leaf: int = 20
    max_features: str | float = "sqrt"
    imbalance: str = "auto"  # "auto" (chosen on validation), "class_weight" or "smote"
    validation_fraction: float = 0.2
    seed: int = 42
    n_jobs: int = -1

    def __post_init__(self):
        if self.imbalance not in ("auto", *IMBALANCE_STRATEGIES):
            raise ValueError(
                f"imbalance must be auto, class_weight or smote, not {self.imbalance!r}"
            )


@dataclass
class TrainedClassifier:
    model: Pipeline
    baseline: Pipeline
    imbalance: str
    validation_pr_auc: dict[str, float] = field(default_factory=dict)


def preprocessor() -> ColumnTransformer:
    """One-hot for categories (unknown ones ignored at prediction time), scaling for numbers."""
    return ColumnTransformer(
        [
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                list(bank.CATEGORICAL_FEATURES),
            ),
            ("numeric", StandardScaler(), list(bank.NUMERIC_FEATURES)),
        ],
        verbose_feature_names_out=False,
    )


def _forest(config: ClassifierConfig, class_weight: str | None) -> RandomForestClassifier:
    return RandomForestClassifier(
        n_estimators=config.n_estimators,
        min_samples_leaf=config.min_samples_leaf,
        max_features=config.max_features,
        class_weight=class_weight,
        n_jobs=config.n_jobs,
        random_state=config.seed,
    )


def _fit(strategy: str, X: pd.DataFrame, y: np.ndarray, config: ClassifierConfig) -> Pipeline:
    if strategy == "class_weight":
        return Pipeline(
            [("preprocess", preprocessor()), ("classifier", _forest(config, "balanced_subsample"))]
        ).fit(X, y)
    from imblearn.over_sampling import SMOTE
    from imblearn.pipeline import Pipeline as SamplingPipeline

    fitted = SamplingPipeline(
        [
            ("preprocess", preprocessor()),
            ("oversample", SMOTE(random_state=config.seed)),
            ("classifier", _forest(config, None)),
        ]
    ).fit(X, y)
    # The sampler only acts in fit; drop it so the served model is plain scikit-learn.
    return Pipeline(
        [
            ("preprocess", fitted.named_steps["preprocess"]),
            ("classifier", fitted.named_steps["classifier"]),
        ]
    )


def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[list(bank.FEATURES)]


def train_classifier(
    train: pd.DataFrame, config: ClassifierConfig = ClassifierConfig()
) -> TrainedClassifier:
    """Fit the forest (imbalance strategy chosen on validation) and the logistic-regression
    baseline."""
    y = bank.target_vector(train)
    scores: dict[str, float] = {}
    strategy = config.imbalance
    if strategy == "auto":
        inner = RandomSplit(config.validation_fraction, config.seed, stratify_on=bank.TARGET).split(
            train
        )
        y_fit, y_val = bank.target_vector(inner.train), bank.target_vector(inner.holdout)
        for candidate in IMBALANCE_STRATEGIES:
            model = _fit(candidate, features(inner.train), y_fit, config)
            scores[candidate] = float(
                average_precision_score(y_val, model.predict_proba(features(inner.holdout))[:, 1])
            )
        strategy = max(scores, key=lambda name: scores[name])
    model = _fit(strategy, features(train), y, config)
    baseline = Pipeline(
        [
            ("preprocess", preprocessor()),
            ("classifier", LogisticRegression(max_iter=2000, class_weight="balanced")),
        ]
    ).fit(features(train), y)
    # Training uses every core; a served model answers one small request at a time, where
    # spreading 150 trees over a thread pool costs far more than it saves.
    model.named_steps["classifier"].set_params(n_jobs=None)
    return TrainedClassifier(
        model=model, baseline=baseline, imbalance=strategy, validation_pr_auc=scores
    )


def evaluate_classifier(model, holdout: pd.DataFrame) -> dict[str, float]:
    """Metrics of any fitted classifier with ``predict_proba`` on a labelled holdout."""
    probability = model.predict_proba(features(holdout))[:, 1]
    return classification_metrics(bank.target_vector(holdout), probability)


def roc_auc_difference_error(
    y: np.ndarray, new: np.ndarray, old: np.ndarray, resamples: int = 200, seed: int = 0
) -> float:
    """The bootstrap standard error of ROC-AUC(new) - ROC-AUC(old) on the same labelled rows
    (resampled together, so what both rank alike cancels); 0 when it cannot be measured."""
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(resamples):
        drawn = rng.integers(0, len(y), len(y))
        if y[drawn].min() != y[drawn].max():
            differences.append(
                roc_auc_score(y[drawn], new[drawn]) - roc_auc_score(y[drawn], old[drawn])
            )
    return float(np.std(differences, ddof=1)) if len(differences) > 1 else 0.0
