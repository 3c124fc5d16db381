"""`python -m serving` (the serving image's command) serves the right service for its model."""

from __future__ import annotations

import subprocess
import sys

import pytest

from modelfactory.serving_process import FORECAST_SERVICE, PROJECT_ROOT, SERVICE
from serving.__main__ import serve_command


@pytest.mark.parametrize(
    ("model", "service"), [("store-sales", FORECAST_SERVICE), ("bank-marketing", SERVICE)]
)
def test_each_model_gets_its_service_on_the_configured_port(model, service):
    command = serve_command({"MODELFACTORY_MODEL_NAME": model, "MODELFACTORY_HTTP_PORT": "3900"})
    assert command[:3] == ["bentoml", "serve", service]
    assert command[command.index("--port") + 1] == "3900"


def test_without_a_model_name_it_stops_with_a_message_naming_the_variable():
    done = subprocess.run(
        [sys.executable, "-m", "serving"],
        cwd=PROJECT_ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "MODELFACTORY_MODEL_NAME is not set" in done.stderr
    assert "Traceback" not in done.stderr


def test_two_services_on_one_machine_keep_their_metrics_apart(tmp_path):
    """BentoML empties $BENTOML_HOME/prometheus_multiproc_dir when a server starts: two local
    services sharing one BENTOML_HOME lost each other's /metrics (seen with the benchmark's
    logging-on and logging-off services)."""
    from modelfactory.serving_process import FORECAST_SERVICE, ServingProcess

    home = {"MODELFACTORY_HOME": str(tmp_path)}
    classifier = ServingProcess("bank-marketing", "http://mlflow", 3100, extra_env=home)
    forecaster = ServingProcess(
        "store-sales", "http://mlflow", 3200, extra_env=home, service=FORECAST_SERVICE
    )
    homes = {p.environment()["BENTOML_HOME"] for p in (classifier, forecaster)}
    assert len(homes) == 2 and all(h.startswith(str(tmp_path)) for h in homes)
