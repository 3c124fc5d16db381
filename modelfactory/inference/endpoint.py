"""One inference endpoint for every protocol: route, predict, count, log.

The HTTP routes (plain JSON and v2 REST) and the gRPC servicer are thin
adapters over :class:`InferenceEndpoint`: they parse their wire format, call
:meth:`~InferenceEndpoint.predict` or :meth:`~InferenceEndpoint.infer`, and map
:class:`~modelfactory.inference.protocol.v2.V2Error` kinds to their status codes. Metrics
and the prediction log are fed here, and as the router's observer (fallbacks,
shadow predictions). Ground truth for logged predictions (``POST /feedback``) is checked and
stored here too (:meth:`~InferenceEndpoint.feedback`).
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from modelfactory.config import ServingSettings
from modelfactory.inference.metrics import ServingMetrics
from modelfactory.inference.protocol.tabular import (
    check_rectangular,
    output_tensors,
    tensors_to_records,
)
from modelfactory.inference.protocol.v2 import InferRequest, Tensor, V2Error
from modelfactory.inference.router import ModelRouter, Routed, RouterObserver, UnknownVersion
from modelfactory.inference.schema import InputNotFound, InvalidInput
from modelfactory.inference.served import ServedModel
from modelfactory.inference.shadow import ShadowResult
from modelfactory.predictions.feedback import (
    FeedbackStore,
    InvalidFeedback,
    UnknownRequests,
    parse_feedback,
)
from modelfactory.predictions.writer import PredictionLog
from modelfactory.rollout import RolloutState

UNAUTHENTICATED = "missing or wrong bearer token (Authorization: Bearer <token>)"


class InferenceEndpoint(RouterObserver):
    """``blocking_predictions``: a prediction may take long enough to stall an event loop (the
    forecaster runs Prophet on a cache miss, 100 ms and more), so adapters running on one
    call :meth:`predict` / :meth:`infer` in a worker thread instead of inline.

    ``check_actual`` (the use case's, :class:`~modelfactory.use_case.MonitoringSpec`) reads one
    ground-truth value; with it and a prediction log, :meth:`feedback` stores ground truth beside
    the log."""

    def __init__(
        self,
        router: ModelRouter,
        options: ServingSettings,
        metrics: ServingMetrics,
        prediction_log: PredictionLog | None = None,
        blocking_predictions: bool = False,
        check_actual: Callable[[Any], Any] | None = None,
        max_feedback_items: int = 10_000,
    ):
        self.router = router
        self.options = options
        self.metrics = metrics
        self.prediction_log = prediction_log
        self.blocking_predictions = blocking_predictions
        self.check_actual = check_actual
        self.max_feedback_items = max_feedback_items
        self.feedback_store = (
            FeedbackStore(prediction_log.url, router.name)
            if prediction_log is not None and check_actual is not None
            else None
        )
        router.observer = self
        self.name = router.name

    # checks shared by the protocols: each counts its refusal and raises V2Error ---------------
    def authorize(self, authorization: str | None, protocol: str) -> None:
        """Refuse a request without the bearer token, when ``MODELFACTORY_AUTH_TOKEN`` sets one."""
        token = self.options.auth_token
        if not token:
            return
        expected = f"Bearer {token}".encode()
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected):
            self.refuse("unauthenticated", protocol)
            raise V2Error("unauthenticated", UNAUTHENTICATED)

    def check_model(self, name: str, protocol: str, version: str | None = None) -> None:
        """Refuse a model name, or a version, that this process does not serve (404 / NOT_FOUND)."""
        if name != self.name:
            self.refuse("not_found", protocol)
            raise V2Error(
                "not_found", f"model {name!r} is not served here (this server serves {self.name!r})"
            )
        served = self.router.served_versions
        if version and version not in served:
            self.refuse("not_found", protocol)
            raise V2Error("not_found", str(UnknownVersion(version, served)))

    def served_model(self, name: str, protocol: str, version: str | None = None) -> ServedModel:
        """The loaded model answering for ``name`` (and ``version``), after the checks above."""
        self.check_model(name, protocol, version)
        model = self.router.model(version)
        if model is None:
            raise V2Error("unavailable", f"no champion of {name} is loaded yet")
        return model

    def refuse(self, reason: str, protocol: str, version: str = "") -> None:
        self.metrics.errors.labels(self.name, version, reason, protocol).inc()

    def would_block(self, records=None) -> bool:
        """Whether answering ``records`` (None: not parsed yet) may stall an event loop.

        Only with ``blocking_predictions``; then it does unless every served version says it
        will not (a model's optional ``would_block(records)``, e.g. a cached forecast), so
        warm requests stay on the loop and skip the hand-off to a thread."""
        if not self.blocking_predictions:
            return False
        if records is None:
            return True
        models = [self.router.model(version) for version in self.router.served_versions]
        return not models or any(
            getattr(model, "would_block", lambda _: True)(records) for model in models
        )

    # predictions ---------------------------------------------------------------------------------
    def predict(
        self,
        records,
        *,
        protocol: str,
        explicit_version: str | None = None,
        request_key: str | None = None,
        request_id: str | None = None,
    ) -> Routed:
        """Answer JSON records.

        Raises InvalidInput (its subclass InputNotFound for a 404), V2Error (not_found,
        unavailable).
        """
        try:
            routed = self.router.predict(
                records,
                explicit_version=explicit_version,
                request_key=request_key,
                request_id=request_id,
                max_records=self.options.max_records,
            )
        except InvalidInput as exc:
            self.refuse(exc.kind, protocol)
            raise
        except UnknownVersion as exc:
            self.refuse("not_found", protocol)
            raise V2Error("not_found", str(exc)) from None
        except LookupError as exc:
            self.refuse("not_ready", protocol)
            raise V2Error("unavailable", str(exc)) from None
        self._served(routed, records, protocol, request_id)
        return routed

    def infer(
        self,
        request: InferRequest,
        *,
        protocol: str,
        explicit_version: str | None = None,
        request_key: str | None = None,
    ) -> tuple[Routed, list[Tensor], str]:
        """Answer a v2 request: records from tensors, the routed prediction, output tensors,
        request id."""
        model = self.router.model(explicit_version) or self.router.model()
        if model is None:
            self.refuse("not_ready", protocol)
            raise V2Error("unavailable", f"no champion of {self.name} is loaded yet")
        try:
            records = tensors_to_records(request, model.input_tensors(), self.options.max_records)
            check_rectangular(records, model.output_tensors())
            if request.outputs is not None:  # refuse unknown outputs before predicting
                output_tensors([], model.output_tensors(), request.outputs)
        except V2Error:
            self.refuse("invalid", protocol)
            raise
        request_id = request.id or uuid.uuid4().hex
        try:
            routed = self.predict(
                records,
                protocol=protocol,
                explicit_version=explicit_version,
                request_key=request_key,
                request_id=request_id,
            )
        except InputNotFound as exc:
            raise V2Error("not_found", str(exc)) from None
        except InvalidInput as exc:
            raise V2Error("invalid", "the inputs do not match the model", exc.problems) from None
        tensors = output_tensors(routed.predictions, routed.model.output_tensors(), request.outputs)
        return routed, tensors, request_id

    def _served(
        self, routed: Routed, records: Sequence[Mapping], protocol: str, request_id: str | None
    ) -> None:
        model = routed.model
        requests, latency, score = self.metrics.per_version(
            model.name, model.version, routed.route.reason, protocol
        )
        requests.inc()
        latency.observe(routed.seconds)
        for prediction in routed.predictions:
            label, value = model.summarize(prediction)
            self.metrics.predictions.labels(model.name, model.version, label).inc()
            score.observe(value)
        if self.prediction_log is not None:
            self.prediction_log.record(
                model.name, model.version, records, routed.predictions, request_id
            )

    # ground truth --------------------------------------------------------------------------------
    def feedback(self, body: Any, protocol: str = "json") -> dict:
        """Store the ground truth in ``body`` (one item or a list; all or nothing).

        Blocks on the database: adapters on an event loop call it in a worker thread. Raises
        V2Error: invalid (items named), not_found (request ids named, or no feedback taken
        here), unavailable (the store does not answer).
        """
        if self.feedback_store is None or self.check_actual is None:
            self.refuse("not_found", protocol)
            raise V2Error(
                "not_found",
                f"{self.name} takes no feedback here: its predictions are not logged "
                "(MODELFACTORY_PREDICTION_LOG)",
            )
        try:
            items = parse_feedback(body, self.check_actual, self.max_feedback_items)
        except InvalidFeedback as exc:
            self.refuse("invalid", protocol)
            raise V2Error("invalid", "invalid feedback", exc.problems) from None
        try:
            return {"model": self.name, **self.feedback_store.record(items)}
        except UnknownRequests as exc:
            self.refuse("not_found", protocol)
            raise V2Error("not_found", str(exc), exc.problems) from None
        except sa.exc.OperationalError as exc:  # the store is down or locked: retry later
            self.refuse("not_ready", protocol)
            raise V2Error(
                "unavailable", f"the prediction store does not answer ({exc.orig}); retry later"
            ) from None

    def close(self) -> None:
        """Stop the router and the prediction log; release the feedback store's connections."""
        self.router.stop()
        if self.prediction_log is not None:
            self.prediction_log.close()
        if self.feedback_store is not None:
            self.feedback_store.close()

    # RouterObserver -------------------------------------------------------------------------
    def fallback(self, model: ServedModel, challenger: str, reason: str) -> None:
        self.metrics.fallbacks.labels(self.name, challenger, reason).inc()

    def challenger_error(self, model: ServedModel, kind: str) -> None:
        self.metrics.challenger_errors.labels(self.name, model.version, kind).inc()

    def shadow(
        self, challenger: ServedModel, results: Sequence[ShadowResult], seconds: float
    ) -> None:
        answered = [
            (result, result.predictions) for result in results if result.predictions is not None
        ]
        if not answered:
            return
        # Counted once per batch: the metrics are shared-memory writes, not free per request.
        version = challenger.version
        self.metrics.shadow_predictions.labels(self.name, version).inc(
            sum(len(predictions) for _, predictions in answered)
        )
        self.metrics.shadow_latency.labels(self.name, version).observe(seconds)
        disagreements = sum(
            1 for result, _ in answered for agree in result.agreements or () if not agree
        )
        if disagreements:
            self.metrics.shadow_disagreements.labels(self.name, version).inc(disagreements)
        if self.prediction_log is not None:
            for result, predictions in answered:
                self.prediction_log.record(
                    challenger.name,
                    version,
                    result.records,
                    predictions,
                    result.request_id,
                    role="shadow",
                )

    def challenger_called(self, model: ServedModel, mode: str) -> None:
        self.metrics.challenger_calls.labels(self.name, model.version, mode).inc()

    def challenger_latency(self, model: ServedModel, seconds: float) -> None:
        self.metrics.challenger_latency.labels(self.name, model.version).observe(seconds)

    def compared(self, challenger: str, agreements: Sequence[bool]) -> None:
        if agreements:
            self.metrics.compared.labels(self.name, challenger).inc(len(agreements))
            misses = sum(1 for agree in agreements if not agree)
            if misses:
                self.metrics.disagreed.labels(self.name, challenger).inc(misses)

    def shadow_skipped(self, challenger: str) -> None:
        self.metrics.shadow_skipped.labels(self.name, challenger).inc()

    def state_refresh_failed(self, error: Exception) -> None:
        self.metrics.rollout_refresh_failures.labels(self.name).inc()

    def state_changed(self, state: RolloutState) -> None:
        pass
