"""A pipeline's database password comes from its task's environment (on a cluster, the key of a
Kubernetes Secret the compiled pipeline names), never from a parameter: the compiled anomaly
pipeline, run by the kfp local runner, writes its flags to a real PostgreSQL that refuses a
connection without the password, given a `staging_url` that names the user and no password."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from modelfactory.anomaly.staging import read_outliers
from modelfactory.data.taxi import simulate_rides, write_rides
from modelfactory.local.pipeline_runs import compiled_pipeline, run_locally
from modelfactory.pipeline_secrets import STAGING_PASSWORD
from tests.support.postgres import postgres_server

pytestmark = pytest.mark.integration
PASSWORD = "staging-secret-0123"


@pytest.fixture(scope="module")
def guarded_postgres():
    """(URL without password, password) of a PostgreSQL that asks every connection for the
    password (scram-sha-256)."""
    with postgres_server(password=PASSWORD) as url:
        yield url, PASSWORD


def test_the_staging_table_is_written_with_the_password_from_the_environment(
    guarded_postgres, mlflow_server, isolated_home, tmp_path, monkeypatch
):
    url, password = guarded_postgres
    with pytest.raises(sa.exc.OperationalError, match="password"):
        sa.create_engine(url).connect()  # the server asks for it
    rides = write_rides(
        simulate_rides(370, 10, seed=7, batch_date="2023-01-02"), tmp_path / "r.csv"
    )
    monkeypatch.setenv(STAGING_PASSWORD, password)  # what KFP sets from the Secret's key
    summary = run_locally(
        compiled_pipeline("anomaly"),  # the YAML users upload, its Secret references included
        {"source": str(rides), "mlflow_tracking_uri": mlflow_server, "staging_url": url},
        isolated_home / "secret-runs",
    )
    reader = sa.engine.make_url(url).set(password=password).render_as_string(hide_password=False)
    flags = read_outliers(reader, "2023-01-02")
    assert len(flags) == summary["rows"] == 400
