"""`python -m modelfactory_serving` (the serving image's command, and what `modelfactory serve`
runs) serves the model it is told, through the use case that serves it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from modelfactory_serving.__main__ import SERVICE, serve_command

from modelfactory.local.serving import ServingProcess
from modelfactory.use_cases import CLASSIFICATION, FORECASTING, served_use_case


def test_the_service_is_served_on_the_configured_port():
    command = serve_command(
        {"MODELFACTORY_MODEL_NAME": "store-sales", "MODELFACTORY_HTTP_PORT": "3900"}
    )
    assert command[1:5] == ["-m", "bentoml", "serve", SERVICE]
    assert command[command.index("--port") + 1] == "3900"


@pytest.mark.parametrize(
    ("model", "explicit", "case", "route"),
    [
        ("store-sales", None, FORECASTING, "POST /forecast"),
        ("bank-marketing", None, CLASSIFICATION, "POST /predict"),
        # a classifier registered under another name by the classification pipeline
        ("bank-marketing-eu", None, CLASSIFICATION, "POST /predict"),
        ("sales-eu", "forecasting", FORECASTING, "POST /forecast"),
    ],
)
def test_each_model_is_served_by_its_use_case(model, explicit, case, route):
    served = served_use_case(model, explicit)
    assert served is case and served.serving.route == route


def test_a_use_case_without_a_served_model_is_refused_by_name():
    with pytest.raises(ValueError, match="the anomaly use case has no model to serve"):
        served_use_case("taxi-anomaly", "anomaly")
    with pytest.raises(ValueError, match="unknown use case 'regression'"):
        served_use_case("m", "regression")


def test_without_a_model_name_it_stops_with_a_message_naming_the_variable():
    done = subprocess.run(
        [sys.executable, "-m", "modelfactory_serving"],
        env={"PATH": "/usr/bin:/bin"},
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
    home = {"MODELFACTORY_HOME": str(tmp_path)}
    classifier = ServingProcess("bank-marketing", "http://mlflow", 3100, extra_env=home)
    forecaster = ServingProcess("store-sales", "http://mlflow", 3200, extra_env=home)
    homes = {p.environment()["BENTOML_HOME"] for p in (classifier, forecaster)}
    assert len(homes) == 2 and all(h.startswith(str(tmp_path)) for h in homes)
