"""The classifier trained once on the real UCI file, for every test here that needs it."""

import pytest

from modelfactory.classification.training import ClassifierConfig, train_classifier
from modelfactory.data.split import RandomSplit


@pytest.fixture(scope="session")
def real_split(real_bank):
    return RandomSplit(0.2, seed=42, stratify_on="y").split(real_bank)


@pytest.fixture(scope="session")
def trained_on_real(real_split):
    return train_classifier(real_split.train, ClassifierConfig())
