"""The spool under `bentoml serve`: a served model whose PostgreSQL store is down answers every
request, keeps its rows on the spool up to the bound, counts what it drops past it in /metrics,
and stores what it kept, in order, when the store is back."""

from __future__ import annotations

import httpx
import pytest

from tests.predictions.test_spool import stored_ids
from tests.support.postgres_server import PostgresServer
from tests.support.scrape import scrape
from tests.support.serving import MODEL, served_for_real, until

pytestmark = pytest.mark.integration


def test_a_model_served_while_its_store_is_down_logs_what_its_spool_holds_when_it_is_back(
    registered, sample_records, tmp_path
):
    uri = registered[0]
    requests = [f"q{n:04d}" for n in range(1200)]  # two records each: past a 1 MiB spool
    with PostgresServer() as store:
        store.stop()
        env = {
            "MODELFACTORY_PREDICTION_STORE_URL": store.url,
            "MODELFACTORY_PREDICTION_SPOOL_MAX_MB": "1",
        }
        with served_for_real(MODEL, uri, tmp_path, workers=1, env=env) as (process, _, _):
            with httpx.Client(timeout=10) as client:
                statuses = [
                    client.post(
                        f"{process.url}/predict",
                        json={"records": sample_records[:2]},
                        headers={"x-request-id": request_id},
                    ).status_code
                    for request_id in requests
                ]
            assert statuses == [200] * len(requests)
            spooled = ("modelfactory_prediction_log_spool_rows",)
            full = ("modelfactory_prediction_log_dropped_total", "spool_full")
            shown = until(
                lambda: (m := scrape(process.metrics_url)).get(full, 0) + m[spooled] == 2400 and m
            )
            dropped = shown[full]
            assert dropped > 0
            assert 0 < shown[("modelfactory_prediction_log_spool_bytes",)] <= 1 << 20
            store.start()
            until(lambda: scrape(process.metrics_url)[spooled] == 0, timeout=120)
            assert scrape(process.metrics_url)[("modelfactory_prediction_log_written_total",)] == (
                2400 - dropped
            )
        kept = (2400 - int(dropped)) // 2
        assert stored_ids(store.url) == [i for i in requests[:kept] for _ in range(2)]
