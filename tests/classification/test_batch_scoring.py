"""Batch scoring of the real UCI file, broken rows included, gives what it gave before the
columnar path and the packed walk (issue 21): the probabilities of scikit-learn's pipeline
within the parity bound, the same predictions, and the same rejects with the same reasons,
from CSV, from Parquet holding text and from typed Parquet."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from mlflow.models import infer_signature

from modelfactory.classification.batch import BatchClassifier
from modelfactory.classification.served import PARITY_TOLERANCE, ServedClassifier
from modelfactory.classification.training import features
from modelfactory.data.bank_marketing import FEATURES, load_bank_marketing
from modelfactory.inference.schema import InputSchema
from modelfactory.scoring.sources import Source

TEXT_COLUMNS = ("age", "campaign", "euribor3m", "pdays")
BROKEN = {  # 0-based rows of the real file: (column, value) set on purpose
    4: [("age", "forty")],
    9: [("job", None)],
    19: [("campaign", 2.5)],
    30: [("euribor3m", "abc")],
    31: [("euribor3m", float("inf"))],
    40: [("age", None), ("month", None), ("campaign", "x")],
    50: [("job", "astronaut")],  # an unknown category is scored, as the encoder ignores it
    60: [("pdays", "12")],  # a number written as text is a number
    70: [("job", "")],  # empty text: missing in CSV, a category in Parquet
    80: [("age", 41.0)],
    90: [("campaign", -3.5)],
    100: [("euribor3m", None)],
}
# What batch scoring wrote for those rows before (commit b88dd42), by row key (file row, from 1).
REJECTS_BEFORE = {
    "csv": {
        "5": 'age: expected an integer, got "forty"',
        "10": "job: missing",
        "20": 'campaign: expected an integer, got "2.5"',
        "31": 'euribor3m: expected a number, got "abc"',
        "32": 'euribor3m: expected a number, got "inf"',
        "41": 'age: missing; month: missing; campaign: expected an integer, got "x"',
        "71": "job: missing",
        "91": 'campaign: expected an integer, got "-3.5"',
        "101": "euribor3m: missing",
    },
    "parquet of text": {
        "5": 'age: expected an integer, got "forty"',
        "10": "job: missing",
        "20": 'campaign: expected an integer, got "2.5"',
        "31": 'euribor3m: expected a number, got "abc"',
        "32": 'euribor3m: expected a number, got "inf"',
        "41": 'age: expected an integer, got "None"; month: missing; '
        'campaign: expected an integer, got "x"',
        "91": 'campaign: expected an integer, got "-3.5"',
        "101": 'euribor3m: expected a number, got "None"',
    },
}


@pytest.fixture(scope="module")
def batch(trained_on_real, real_bank):
    model = trained_on_real.model
    sample = features(real_bank.head(200))
    schema = InputSchema.from_signature(infer_signature(sample, model.predict_proba(sample)))
    served = ServedClassifier("bank-marketing", "1", None, schema, model)
    served.compiled, served.info = served._verified_fast_path(None)
    assert served.compiled is not None
    return BatchClassifier(served, threads=2)


@pytest.fixture(scope="module")
def sources(bank_file, tmp_path_factory):
    real = load_bank_marketing(bank_file)
    broken = real.astype({c: object for c in TEXT_COLUMNS})
    for row, changes in BROKEN.items():
        for column, value in changes:
            broken.loc[row, column] = value
    folder = tmp_path_factory.mktemp("real-batch")
    broken.to_csv(folder / "customers.csv", sep=";", index=False)
    text = broken.astype({c: str for c in TEXT_COLUMNS})
    text.to_parquet(folder / "text.parquet", row_group_size=10_000)
    real.to_parquet(folder / "typed.parquet", row_group_size=10_000)
    return {  # each source beside its records as pandas reads the file back
        "csv": (
            Source(str(folder / "customers.csv")),
            pd.read_csv(folder / "customers.csv", sep=";", low_memory=False),
        ),
        "parquet of text": (
            Source(str(folder / "text.parquet")),
            pd.read_parquet(folder / "text.parquet"),
        ),
        "typed parquet": (
            Source(str(folder / "typed.parquet")),
            pd.read_parquet(folder / "typed.parquet"),
        ),
    }


def _scored(batch, source):
    results, rejects = [], []
    for chunk in batch.score(source, 0, 1, 7_000):  # chunks that end mid-group and mid-file
        results.append(chunk.results.to_pandas())
        rejects.append(chunk.rejects.to_pandas())
    return pd.concat(results, ignore_index=True), pd.concat(rejects, ignore_index=True)


@pytest.mark.parametrize("kind", ["csv", "parquet of text", "typed parquet"])
def test_the_real_file_scores_as_before_rejects_included(batch, sources, trained_on_real, kind):
    source, read = sources[kind]
    results, rejects = _scored(batch, source)

    expected = REJECTS_BEFORE.get(kind, {})
    assert dict(zip(rejects["row_key"], rejects["reason"], strict=True)) == expected
    for key, record in zip(rejects["row_key"], rejects["record"], strict=True):
        as_read = read.loc[int(key) - 1, list(FEATURES)].to_dict()
        as_read = {
            k: None if isinstance(v, float) and np.isnan(v) else v for k, v in as_read.items()
        }
        assert json.loads(record) == as_read

    good = [i for i in range(len(read)) if str(i + 1) not in expected]
    assert results["row_key"].tolist() == [str(i + 1) for i in good]
    typed = read.iloc[good][list(FEATURES)].copy()
    for column in TEXT_COLUMNS:
        typed[column] = pd.to_numeric(typed[column])
    typed = typed.astype({"age": "int64", "campaign": "int64", "pdays": "int64"})
    reference = trained_on_real.model.predict_proba(typed)[:, 1]
    assert np.max(np.abs(results["probability"].to_numpy() - reference)) <= PARITY_TOLERANCE
    assert results["prediction"].tolist() == np.where(reference >= 0.5, "yes", "no").tolist()


def test_a_chunk_reports_the_seconds_of_its_stages(batch, sources):
    source, _ = sources["typed parquet"]
    chunk = next(iter(batch.score(source, 0, 1, 5_000)))
    assert set(chunk.stages.wall) == set(chunk.stages.cpu) == {"read", "check", "encode", "walk"}
    assert isinstance(chunk.results, pa.Table) and chunk.results.num_rows == 5_000
