"""Clients calling a served classifier at a steady rate, counting every answer that is not a 200:
what the demo and the rollout tests send while a challenger goes out."""

from __future__ import annotations

import random
import threading
import time

import httpx

from modelfactory.data.bank_marketing import FEATURES, generate_bank_marketing


class Load:
    """One client thread posting two records to ``url``/predict ``rate`` times a second."""

    def __init__(self, url: str, rate: float = 60, records: list[dict] | None = None):
        self.url, self.pause = url, 1 / rate
        self.records = records or generate_bank_marketing(500, seed=5)[list(FEATURES)].to_dict(
            "records"
        )
        self.answers = self.failures = 0
        self.errors: list[str] = []  # what the first failures were (status and body, or error)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                body = {"records": random.sample(self.records, 2)}
                try:
                    answer = client.post(f"{self.url}/predict", json=body)
                    error = (
                        None
                        if answer.status_code == 200
                        else f"{answer.status_code} {answer.text[:200]}"
                    )
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                self.answers += 1
                if error:
                    self.failures += 1
                    if len(self.errors) < 10:
                        self.errors.append(error)
                time.sleep(self.pause)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
