"""The Open Inference Protocol v2 over gRPC (``inference.GRPCInferenceService``), beside the
BentoML service.

BentoML 1.4 has no gRPC serving, so each BentoML worker starts this gRPC server on
``MODELFACTORY_GRPC_PORT`` with ``SO_REUSEPORT``: every worker binds the same port and the
kernel spreads connections across them, so gRPC scales with ``workers`` as HTTP does.

It runs on the worker's own event loop (started by an async BentoML startup hook; the HTTP/2
side is :mod:`modelfactory.inference.protocol.grpc_transport`) and predicts inline on that loop
as the HTTP routes do. Services whose predictions can block (``endpoint.would_block``: the
forecaster before its requests are parsed) predict in a thread. Why inline, one server per
worker, and not grpcio's servers: ADR 0001 (docs/adr/0001-grpc-on-h2.md).

The messages are tritonclient's generated classes (``tritonclient.grpc.service_pb2``): the
same ``inference`` package and field numbers as KServe's grpc_predict_v2.proto, a superset of
it. Using them rather than generating our own avoids registering a second, different
definition of ``inference.ModelInferRequest`` in protobuf's global descriptor pool, which fails
in any process that also imports tritonclient (tests, benchmarks, users' clients). They are
converted to and from the protocol's tensors in :mod:`modelfactory.inference.protocol.converters`.
RPCs beyond the v2 core answer UNIMPLEMENTED.

Metadata: ``x-model-version`` and ``x-request-key`` as in HTTP headers;
``authorization: Bearer <token>`` when ``MODELFACTORY_AUTH_TOKEN`` is set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

from tritonclient.grpc import service_pb2 as pb

from modelfactory import __version__
from modelfactory.inference.endpoint import InferenceEndpoint
from modelfactory.inference.protocol.converters import (
    infer_request_from_grpc,
    infer_response_to_grpc,
    model_metadata_to_grpc,
)
from modelfactory.inference.protocol.grpc_transport import (
    Call,
    GrpcError,
    StatusCode,
    UnaryMethod,
    UnaryServer,
)
from modelfactory.inference.protocol.headers import (
    AUTHORIZATION,
    MODEL_VERSION,
    REQUEST_ID,
    REQUEST_KEY,
)
from modelfactory.inference.protocol.v2 import V2Error

log = logging.getLogger("modelfactory.serving.grpc")

SERVICE = "/inference.GRPCInferenceService/"
STATUS = {
    "invalid": StatusCode.INVALID_ARGUMENT,
    "not_found": StatusCode.NOT_FOUND,
    "too_large": StatusCode.RESOURCE_EXHAUSTED,
    "unauthenticated": StatusCode.UNAUTHENTICATED,
    "unavailable": StatusCode.UNAVAILABLE,
}
OPEN_METHODS = ("ServerLive", "ServerReady")  # probes need no token
PROTOCOL = "v2_grpc"  # the metrics' protocol label


@contextmanager
def refusals_as_status() -> Iterator[None]:
    """The endpoint's refusals as gRPC status codes, in one place."""
    try:
        yield
    except V2Error as exc:
        raise GrpcError(STATUS[exc.kind], exc.detail()) from None


class InferenceServicer:
    """The v2 RPCs; each takes the request message and its :class:`Call`."""

    def __init__(self, endpoint: InferenceEndpoint):
        self.endpoint = endpoint

    def ServerLive(self, request, call: Call):
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, call: Call):
        return pb.ServerReadyResponse(ready=self.endpoint.router.ready)

    def ServerMetadata(self, request, call: Call):
        return pb.ServerMetadataResponse(name="modelfactory", version=__version__)

    def ModelReady(self, request, call: Call):
        with refusals_as_status():
            self.endpoint.check_model(request.name, PROTOCOL, request.version or None)
        ready = (
            self.endpoint.router.ready
            and self.endpoint.router.model(request.version or None) is not None
        )
        return pb.ModelReadyResponse(ready=ready)

    def ModelMetadata(self, request, call: Call):
        with refusals_as_status():
            model = self.endpoint.served_model(request.name, PROTOCOL, request.version or None)
        return model_metadata_to_grpc(
            request.name,
            self.endpoint.router.served_versions,
            model.input_tensors(),
            model.output_tensors(),
        )

    def ModelInfer(self, request, call: Call):
        endpoint = self.endpoint
        with refusals_as_status():
            endpoint.check_model(request.model_name, PROTOCOL)
            try:
                v2_request = infer_request_from_grpc(request)
            except V2Error:
                endpoint.refuse("invalid", PROTOCOL)
                raise
            infer = partial(
                endpoint.infer,
                v2_request,
                protocol=PROTOCOL,
                explicit_version=request.model_version or call.metadata.get(MODEL_VERSION) or None,
                request_key=call.metadata.get(REQUEST_KEY) or None,
            )
            # Inline on the loop, like the HTTP routes, unless a prediction can take long
            # (a cold Prophet forecast): then in a thread, so the worker keeps answering.
            if endpoint.would_block(None):  # the same decision as the HTTP routes
                return self._infer_in_thread(request, call, infer)
            return self._reply(request, call, *infer())

    async def _infer_in_thread(self, request, call: Call, infer: Callable):
        with refusals_as_status():
            answer = await asyncio.to_thread(infer)
        return self._reply(request, call, *answer)

    def _reply(self, request, call: Call, routed, tensors, request_id: str):
        response = infer_response_to_grpc(
            request.model_name, routed.model.version, request.id or None, tensors
        )
        call.trailing_metadata += [
            (MODEL_VERSION, routed.model.version),
            (REQUEST_ID, request_id),
        ]
        return response


_REQUESTS = {
    "ServerLive": pb.ServerLiveRequest,
    "ServerReady": pb.ServerReadyRequest,
    "ServerMetadata": pb.ServerMetadataRequest,
    "ModelReady": pb.ModelReadyRequest,
    "ModelMetadata": pb.ModelMetadataRequest,
    "ModelInfer": pb.ModelInferRequest,
}


def _with_bearer_token(endpoint: InferenceEndpoint, handle: Callable) -> Callable:
    def checked(request, call: Call):
        with refusals_as_status():
            endpoint.authorize(call.metadata.get(AUTHORIZATION), PROTOCOL)
        return handle(request, call)

    return checked


def inference_methods(endpoint: InferenceEndpoint) -> dict[str, UnaryMethod]:
    """Path -> method for ``inference.GRPCInferenceService``; RPCs not listed answer UNIMPLEMENTED.

    With a token configured (``MODELFACTORY_AUTH_TOKEN``) every RPC but the liveness and
    readiness probes asks for ``authorization: Bearer <token>``.
    """
    servicer = InferenceServicer(endpoint)
    methods = {}
    for name, request_type in _REQUESTS.items():
        handle = getattr(servicer, name)
        if endpoint.options.auth_token and name not in OPEN_METHODS:
            handle = _with_bearer_token(endpoint, handle)
        methods[SERVICE + name] = UnaryMethod(request_type.FromString, handle)
    return methods


async def start_grpc_server(
    endpoint: InferenceEndpoint,
    port: int,
    host: str = "0.0.0.0",
    reuse_port: bool = True,
) -> UnaryServer:
    """Serve v2 gRPC on ``host:port`` on the running event loop; returns the started server.

    A request message over ``max_request_bytes`` is refused with RESOURCE_EXHAUSTED before
    it is read whole.
    """
    server = UnaryServer(inference_methods(endpoint), endpoint.options.max_request_bytes)
    try:
        await server.start(host, port, reuse_port=reuse_port)
    except OSError as exc:
        raise OSError(f"could not bind gRPC port {host}:{port}: {exc}") from exc
    log.info("v2 gRPC on %s:%d", host, port)
    return server
