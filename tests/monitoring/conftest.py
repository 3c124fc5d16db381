"""The champion the monitoring tests check: trained on the real UCI file's summer of 2008 and
registered in the session's MLflow server."""

from __future__ import annotations

import pytest

from tests.support.monitoring import MODEL, train_champion


@pytest.fixture(scope="session")
def champion(mlflow_server, bank_months, tmp_path_factory):
    """(tracking uri, version, fitted model) of ``bank-drift``: 8,000 rows of May-August 2008."""
    early, _ = bank_months
    folder = tmp_path_factory.mktemp("champion")
    version, model = train_champion(
        mlflow_server, early.sample(8000, random_state=0), MODEL, folder
    )
    return mlflow_server, version, model
