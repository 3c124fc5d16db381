"""UCI Bank Marketing (bank-additional format): schema, loader and a realistic synthetic generator.

The file is ';'-separated with quoted strings; the target ``y`` is yes/no and
about 11% positive. ``duration`` (length of the sales call) is kept in the data
but is not a model feature: it is only known after the call, so a model using it
would look good offline and be useless online (the UCI notes say the same).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from modelfactory.data.io import read_table
from modelfactory.data.labels import ClassShares
from modelfactory.data.schema import Column, TableSchema, validate_table
from modelfactory.errors import DataValidationError

TARGET = "y"
POSITIVE = "yes"
LEAKY_COLUMNS = ("duration",)

CATEGORIES: dict[str, tuple[str, ...]] = {
    "job": (
        "admin.",
        "blue-collar",
        "entrepreneur",
        "housemaid",
        "management",
        "retired",
        "self-employed",
        "services",
        "student",
        "technician",
        "unemployed",
        "unknown",
    ),
    "marital": ("divorced", "married", "single", "unknown"),
    "education": (
        "basic.4y",
        "basic.6y",
        "basic.9y",
        "high.school",
        "illiterate",
        "professional.course",
        "university.degree",
        "unknown",
    ),
    "default": ("no", "yes", "unknown"),
    "housing": ("no", "yes", "unknown"),
    "loan": ("no", "yes", "unknown"),
    "contact": ("cellular", "telephone"),
    "month": ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    "day_of_week": ("mon", "tue", "wed", "thu", "fri"),
    "poutcome": ("failure", "nonexistent", "success"),
}
NUMERIC = (
    "age",
    "duration",
    "campaign",
    "pdays",
    "previous",
    "emp.var.rate",
    "cons.price.idx",
    "cons.conf.idx",
    "euribor3m",
    "nr.employed",
)
COLUMN_ORDER = (
    "age",
    "job",
    "marital",
    "education",
    "default",
    "housing",
    "loan",
    "contact",
    "month",
    "day_of_week",
    "duration",
    "campaign",
    "pdays",
    "previous",
    "poutcome",
    "emp.var.rate",
    "cons.price.idx",
    "cons.conf.idx",
    "euribor3m",
    "nr.employed",
    TARGET,
)

# Unknown categories of a feature are no error (the model's one-hot ignores them); of the
# target they are.
SCHEMA = TableSchema(
    columns=tuple(
        # duration may be empty: rows learned from served predictions precede the call.
        Column(name, "number", nullable=name in LEAKY_COLUMNS)
        if name in NUMERIC
        else Column(name, "category", frozenset(("no", "yes")) if name == TARGET else None)
        for name in COLUMN_ORDER
    ),
    target=TARGET,
    min_rows=20,
)

FEATURES = tuple(c for c in COLUMN_ORDER if c not in (TARGET, *LEAKY_COLUMNS))
CATEGORICAL_FEATURES = tuple(c for c in FEATURES if c in CATEGORIES)
NUMERIC_FEATURES = tuple(c for c in FEATURES if c in NUMERIC)
# A customer is the same row whatever its label says (a relabelled file holds no new rows), and
# whatever `duration` says (the model never sees it): the features the model reads (ADR 0014).
ROW_IDENTITY = FEATURES
# How far the positive rate may move from the champion's training data: ADR 0014.
LABELS = ClassShares(TARGET, positive=POSITIVE, max_change=0.25)

_BANK_FULL_ONLY = {"balance", "day"}


def load_bank_marketing(source: str | Path) -> pd.DataFrame:
    """Read a bank-additional file (path or URL, optionally gzipped) as it is, without validating
    it."""
    frame = read_table(source, sep=";")
    if len(frame.columns) == 1 and "," in frame.columns[0]:
        raise DataValidationError(
            str(source),
            ["the file is comma-separated; the bank-marketing format uses ';' between fields"],
        )
    if _BANK_FULL_ONLY <= set(frame.columns) and "euribor3m" not in frame.columns:
        raise DataValidationError(
            str(source),
            [
                "this is the older 17-column bank-full format; modelfactory expects the 21-column "
                "bank-additional format (bank-additional-full.csv)"
            ],
        )
    return frame


def validate_bank_marketing(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    return validate_table(frame, SCHEMA, source)


def target_vector(frame: pd.DataFrame) -> np.ndarray:
    return (frame[TARGET].astype(str) == POSITIVE).to_numpy(dtype=np.int8)


# Macro-economic regimes of the real data (Portugal 2008-2010): the five indicators move together.
_REGIMES = np.array(
    [
        # emp.var.rate, cons.price.idx, cons.conf.idx, euribor3m, nr.employed, weight
        [1.4, 93.918, -42.7, 4.96, 5228.1, 0.20],
        [1.1, 93.994, -36.4, 4.86, 5191.0, 0.19],
        [1.4, 94.465, -41.8, 4.96, 5228.1, 0.11],
        [-1.8, 92.893, -46.2, 1.30, 5099.1, 0.16],
        [-0.1, 93.200, -42.0, 4.08, 5195.8, 0.09],
        [-2.9, 92.963, -40.8, 1.26, 5076.2, 0.06],
        [-3.4, 92.649, -30.1, 0.71, 5017.5, 0.04],
        [-1.8, 93.075, -47.1, 1.41, 5099.1, 0.15],
    ]
)
# The file's last year, March to November 2010 (rows 39,131-41,188), month by month: rates near
# their floor, employment below any earlier month, and a campaign that called fewer, more often
# previously contacted customers, mostly on mobiles (measured on bank-additional-full.csv).
_LATER_REGIMES = np.array(
    [
        # emp.var.rate, cons.price.idx, cons.conf.idx, euribor3m, nr.employed, rows, month
        [-1.8, 93.369, -34.8, 0.646, 5008.7, 264, 3],
        [-1.8, 93.749, -34.6, 0.646, 5008.7, 174, 4],
        [-1.8, 93.876, -40.0, 0.686, 5008.7, 212, 5],
        [-1.7, 94.055, -39.8, 0.733, 4991.6, 229, 6],
        [-1.7, 94.215, -40.3, 0.850, 4991.6, 311, 7],
        [-1.7, 94.027, -38.3, 0.899, 4991.6, 233, 8],
        [-1.1, 94.199, -37.5, 0.880, 4963.6, 303, 9],
        [-1.1, 94.601, -49.5, 0.995, 4963.6, 204, 10],
        [-1.1, 94.767, -50.8, 1.042, 4963.6, 128, 11],
    ]
)
PERIODS = ("all", "later")


def calendar_months(frame: pd.DataFrame) -> pd.Series:
    """The year and month ("2008-05") of each row of the UCI file, which is ordered in time from
    May 2008 to November 2010 but only names the month: the year turns where the month goes
    back."""
    index = frame["month"].map({m: i for i, m in enumerate(CATEGORIES["month"])}).to_numpy()
    years = 2008 + np.concatenate([[0], np.cumsum(np.diff(index) < 0)])
    return pd.Series(
        [f"{year}-{month + 1:02d}" for year, month in zip(years, index, strict=True)],
        index=frame.index,
        name="calendar_month",
    )


def generate_bank_marketing(
    n_rows: int = 20_000, seed: int = 0, period: str = "all"
) -> pd.DataFrame:
    """Synthetic campaign data with the real schema, marginals and an ~11% positive rate.

    The outcome depends on the features the way it does in the real data (previous
    success, mobile contact, low interest rates, students and retirees, fewer call
    attempts), so a model can learn it and beat a baseline, while the noise keeps it
    from being trivial.

    ``period="all"`` mixes the economic regimes of the whole file; ``period="later"`` draws from
    its last year (:data:`_LATER_REGIMES`), which a model trained on the mix has barely seen:
    the drift the demo's monitor finds.
    """
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    later = period == "later"
    rng = np.random.default_rng(seed)
    marginals = {
        "job": [0.253, 0.225, 0.035, 0.026, 0.071, 0.042, 0.035, 0.096, 0.021, 0.164, 0.025, 0.007],
        "marital": [0.112, 0.605, 0.281, 0.002],
        "education": [0.101, 0.056, 0.147, 0.231, 0.001, 0.127, 0.295, 0.042],
        "default": [0.791, 0.0005, 0.2085],
        "housing": [0.452, 0.524, 0.024],
        "loan": [0.824, 0.152, 0.024],
        "month": [0, 0, 0.013, 0.064, 0.334, 0.129, 0.174, 0.15, 0.014, 0.017, 0.1, 0.005],
        "day_of_week": [0.207, 0.196, 0.197, 0.209, 0.191],
    }
    if later:  # 2009-06 to 2010-11: more clerks, retirees and students, fewer manual workers
        marginals["job"] = [
            0.316,
            0.062,
            0.018,
            0.028,
            0.071,
            0.137,
            0.032,
            0.049,
            0.088,
            0.145,
            0.043,
            0.011,
        ]
    frame = pd.DataFrame(
        {
            name: rng.choice(CATEGORIES[name], size=n_rows, p=np.array(p) / np.sum(p))
            for name, p in marginals.items()
        }
    )
    job = frame["job"].to_numpy()
    age = rng.normal(40, 9.5, n_rows)
    age[job == "student"] = rng.normal(24, 4, (job == "student").sum())
    age[job == "retired"] = rng.normal(64, 8, (job == "retired").sum())
    frame["age"] = np.clip(age, 17, 98).round().astype(int)
    frame["contact"] = np.where(
        rng.random(n_rows) < (0.81 if later else 0.635), "cellular", "telephone"
    )
    frame["campaign"] = np.minimum(1 + rng.geometric(0.55 if later else 0.42, n_rows) - 1, 56)
    previous = rng.choice(
        [0, 1, 2, 3, 4],
        size=n_rows,
        p=[0.41, 0.35, 0.15, 0.06, 0.03] if later else [0.863, 0.11, 0.019, 0.006, 0.002],
    )
    frame["previous"] = previous
    contacted = previous > 0
    success = contacted & (rng.random(n_rows) < (0.53 if later else 0.25))
    frame["poutcome"] = np.where(success, "success", np.where(contacted, "failure", "nonexistent"))
    frame["pdays"] = np.where(success, rng.integers(0, 27, n_rows), 999)
    regimes = _LATER_REGIMES if later else _REGIMES
    regime = rng.choice(len(regimes), size=n_rows, p=regimes[:, 5] / regimes[:, 5].sum())
    for i, name in enumerate(
        ("emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed")
    ):
        frame[name] = regimes[regime, i]
    if later:  # each month had its own rates
        frame["month"] = np.array(CATEGORIES["month"])[regimes[regime, 6].astype(int) - 1]
    frame["euribor3m"] = (frame["euribor3m"] + rng.normal(0, 0.02, n_rows)).round(3)

    age = frame["age"].to_numpy()
    cellular = frame["contact"].to_numpy() == "cellular"
    euribor = frame["euribor3m"].to_numpy()
    # Non-linear on purpose, as in the real data: rates matter below a threshold, age at both
    # ends, and a previous success matters more when the customer can be reached on a mobile.
    logit = (
        -3.3
        + np.where(success, np.where(cellular, 3.0, 1.2), 0.0)
        + 0.5 * (contacted & ~success)
        + 0.45 * cellular
        + np.where(euribor < 1.5, np.where(cellular, 1.6, 0.4), 0.0)
        + np.where((age < 25) | (age > 60), 1.5, 0.0)
        - np.where(frame["campaign"].to_numpy() > 3, 1.0, 0.0)
        + 0.8 * np.isin(frame["month"].to_numpy(), ["mar", "sep", "oct", "dec"])
        - 0.3 * (frame["default"].to_numpy() == "unknown")
        + rng.normal(0, 0.3, n_rows)
    )
    positive = rng.random(n_rows) < 1 / (1 + np.exp(-logit))
    frame[TARGET] = np.where(positive, "yes", "no")
    # Calls that end in a subscription last longer (the reason `duration` is a leak).
    frame["duration"] = np.round(rng.gamma(2.0, 110, n_rows) * np.where(positive, 2.5, 1.0)).astype(
        int
    )
    return frame[list(COLUMN_ORDER)]


def write_bank_marketing(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write in the UCI format (';'-separated), so generated data round-trips through the loader."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep=";", index=False)
    return path
