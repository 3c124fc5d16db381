"""A Kubeflow Pipelines REST endpoint that records what a real ``kfp.Client`` submits.

No KFP server runs here, so the retraining path's ``kfp.Client`` talks to this: it answers the
calls ``create_run_from_pipeline_package`` makes (health, find the experiment, create it,
create the run) and keeps each request body, so a test asserts on exactly what a cluster
would have been sent.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class KfpApi:
    def __init__(self):
        self.requests: list[tuple[str, str, dict | None]] = []
        self.runs: list[dict] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest's output clean
                pass

            def _answer(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                api.requests.append(("GET", self.path, None))
                if self.path.startswith("/apis/v2beta1/healthz"):
                    self._answer({"multi_user": False})
                else:  # the experiments list: none of that name yet
                    self._answer({"experiments": [], "total_size": 0})

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                api.requests.append(("POST", self.path, body))
                if self.path.startswith("/apis/v2beta1/experiments"):
                    self._answer({"experiment_id": "exp-1", **body})
                elif self.path.startswith("/apis/v2beta1/runs"):
                    run_id = f"run-{len(api.runs) + 1}"
                    api.runs.append(body)
                    self._answer({"run_id": run_id, **body, "state": "PENDING"})
                else:
                    self.send_error(404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def kfp_api():
    api = KfpApi()
    yield api
    api.close()
