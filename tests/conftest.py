"""Fixtures shared by the whole suite: the real datasets (``tests/support/data.py`` says where),
one real MLflow server per session, a small forecasting model set (3 synthetic stores, Prophet,
trained once per session); the serving and PostgreSQL fixtures come from ``tests/support``."""

from __future__ import annotations

import os
import signal

import pytest

from tests.support.data import BANK_MARKETING, shared_file

pytest_plugins = [
    "tests.support.serving_fixtures",
    "tests.support.postgres",
    "tests.support.kfp_api",
    "tests.support.monitoring",
]
# MLflow's telemetry thread sets and unsets an environment variable while other threads read the
# environment (urllib's proxy lookup), which fails requests at random: no telemetry in tests.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


_PYTEST_PID = os.getpid()


def _stop_as_if_interrupted(signum, frame):
    if os.getpid() != _PYTEST_PID:  # a forked child inherited the handler: die as by default
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config) -> None:
    """SIGTERM (`timeout`, a CI job cancelled, `kill`) stops the run as Ctrl-C does, so session
    fixtures still tear down what they started. Without it pytest dies at once and leaves the
    control planes, the real node, MLflow and PostgreSQL servers running, their parents gone."""
    signal.signal(signal.SIGTERM, _stop_as_if_interrupted)


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory):
    """Nothing a test does lands in the user's real modelfactory home or registry."""
    home = tmp_path_factory.mktemp("modelfactory-home")
    saved = {k: os.environ.get(k) for k in ("MODELFACTORY_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["MODELFACTORY_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from modelfactory.config import get_settings

    get_settings.cache_clear()
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def bank_file():
    return shared_file(BANK_MARKETING)


@pytest.fixture(scope="session")
def real_bank(bank_file):
    from modelfactory.data.bank_marketing import load_bank_marketing, validate_bank_marketing

    return validate_bank_marketing(load_bank_marketing(bank_file), str(bank_file))


@pytest.fixture(scope="session")
def bank_months(real_bank):
    """The real file's May-August 2008 rows, and its June 2009 - November 2010 rows: two economic
    regimes (``calendar_months`` dates the rows)."""
    from modelfactory.data.bank_marketing import calendar_months

    calendar = calendar_months(real_bank)
    return real_bank[calendar.between("2008-05", "2008-08")], real_bank[calendar >= "2009-06"]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` (sqlite + served artifacts) on a free port, for the whole session."""
    from modelfactory.local.mlflow_server import EmbeddedMlflow
    from modelfactory.local.ports import free_port

    server = EmbeddedMlflow(tmp_path_factory.mktemp("mlflow"), port=free_port())
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def synthetic_sales():
    from modelfactory.data.rossmann import synthetic_rossmann

    return synthetic_rossmann(n_stores=3, start="2013-06-01", end="2015-07-31", seed=7)


@pytest.fixture(scope="session")
def synthetic_result(synthetic_sales):
    from modelfactory.forecasting.config import ForecastConfig
    from modelfactory.forecasting.factory import train_model_factory

    return train_model_factory(
        synthetic_sales, ForecastConfig(holdout_weeks=4, uncertainty_samples=200)
    )


@pytest.fixture(scope="session")
def model_set_dir(synthetic_result, tmp_path_factory):
    """A model-set directory with stores 1, 2 and 3."""
    from modelfactory.forecasting.model_set import save_model_set

    directory = tmp_path_factory.mktemp("model_set")
    save_model_set(directory, synthetic_result, metadata={"source": "synthetic"})
    return directory


@pytest.fixture(scope="session")
def model_set(model_set_dir):
    """The model set as serving loads it (the registered pyfunc, stores loaded lazily)."""
    from types import SimpleNamespace

    from modelfactory.forecasting.registered import ARTIFACT, ModelSetPyfunc

    loaded = ModelSetPyfunc()
    loaded.load_context(SimpleNamespace(artifacts={ARTIFACT: str(model_set_dir)}))
    return loaded
