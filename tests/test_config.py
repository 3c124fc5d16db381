"""One settings model: environment over the config file over the defaults, the same names
everywhere."""

from __future__ import annotations

import pytest

from modelfactory.config import ConfigurationError, load_settings


def test_defaults_then_file_then_environment(tmp_path, monkeypatch):
    config = tmp_path / "modelfactory.yaml"
    config.write_text(
        "mlflow_port: 5100\n"
        "serving: {max_records: 50, http_port: 3100}\n"
        "forecast_cache: {models: 8}\n"
        "predictions: {store_url: 'sqlite:///from-file.db'}\n"
        "monitoring: {max_rows: 50000, kfp_host: 'http://file:8888'}\n"
    )
    monkeypatch.setenv("MODELFACTORY_CONFIG", str(config))
    monkeypatch.setenv("MODELFACTORY_HTTP_PORT", "3200")  # the environment wins over the file
    monkeypatch.setenv("MODELFACTORY_FORECAST_CACHE_MB", "16")
    monkeypatch.setenv("MODELFACTORY_MONITORING_KFP_HOST", "http://ml-pipeline:8888")
    settings = load_settings()
    assert settings.mlflow_port == 5100
    assert (settings.serving.max_records, settings.serving.http_port) == (50, 3200)
    assert (settings.forecast_cache.models, settings.forecast_cache.mb) == (8, 16)
    assert settings.prediction_store_url == "sqlite:///from-file.db"
    assert settings.monitoring.max_rows == 50_000
    assert settings.monitoring.kfp_host == "http://ml-pipeline:8888"
    assert settings.serving.grpc_port == 8001  # a default neither sets


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("MODELFACTORY_MAX_RECORDS", "many", "MODELFACTORY_MAX_RECORDS"),
        ("MODELFACTORY_PREDICTION_LOG", "maybe", "MODELFACTORY_PREDICTION_LOG"),
        ("MODELFACTORY_FORECAST_CACHE_MB", "1.5x", "MODELFACTORY_FORECAST_CACHE_MB"),
        ("MODELFACTORY_MLFLOW_PORT", "http", "MODELFACTORY_MLFLOW_PORT"),
        ("MODELFACTORY_MONITORING_MAX_ROWS", "10", "MODELFACTORY_MONITORING_MAX_ROWS"),
    ],
)
def test_a_value_that_cannot_be_read_names_its_variable(monkeypatch, variable, value, named):
    monkeypatch.delenv("MODELFACTORY_CONFIG", raising=False)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=named):
        load_settings()


def test_a_config_file_that_is_not_a_mapping_is_refused_naming_it(tmp_path, monkeypatch):
    config = tmp_path / "settings.yaml"
    config.write_text("- just\n- a list\n")
    monkeypatch.setenv("MODELFACTORY_CONFIG", str(config))
    with pytest.raises(ConfigurationError, match="settings.yaml: expected a mapping"):
        load_settings()
