"""Fuzz the HTTP API from its own OpenAPI document: whatever arrives, never a 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from modelfactory.config import ServingSettings
from modelfactory.inference.protocol.rest import build_api
from tests.support.serving import MODEL


def test_no_input_makes_a_server_error(make_endpoint):
    api = build_api(MODEL)
    # Small limits so the fuzzer also reaches the 413 and row-limit paths.
    api.state.endpoint = make_endpoint(
        options=ServingSettings(max_request_bytes=4096, max_records=5), log_url=False
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", api)
    # schemathesis' pytest plugin does not run on pytest 9 yet: drive hypothesis per operation
    # instead.
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        fuzz(operation)


def fuzz(operation) -> None:
    @given(case=operation.as_strategy(), aim=st.booleans())
    @settings(
        max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def run(case, aim):
        if aim and case.path_parameters and "name" in case.path_parameters:
            case.path_parameters["name"] = (
                MODEL  # reach inference, not only the 404 for unknown models
            )
        case.call_and_validate(checks=[not_a_server_error])

    run()
