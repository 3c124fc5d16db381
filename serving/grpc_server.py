"""The Open Inference Protocol v2 over gRPC (``inference.GRPCInferenceService``), beside the BentoML service.

BentoML 1.4 has no gRPC serving, so each BentoML worker starts this grpcio
server on ``MODELFACTORY_GRPC_PORT`` with ``SO_REUSEPORT``: every worker binds
the same port and the kernel spreads connections across them, so gRPC scales
with ``workers`` like HTTP does (one process owning the port would leave the
other workers idle for gRPC; see benchmarks/serving.py).

It is a ``grpc.aio`` server on the worker's own event loop (started by an async
BentoML startup hook), and it predicts inline on that loop exactly as the HTTP
routes do: a prediction takes a fraction of a millisecond, so handing each call
to a thread pool (grpcio's synchronous server) costs more in GIL hand-offs than
the prediction itself; measured, the thread-pool server served less than half
the HTTP route's throughput at 8 concurrent calls. Services whose predictions can
block (``endpoint.would_block``: the forecaster before its requests are parsed) predict in
a thread.

The message and service definitions are tritonclient's generated stubs
(``tritonclient.grpc.service_pb2``): the same ``inference`` package and field
numbers as KServe's grpc_predict_v2.proto, a superset of it. Using them rather
than generating our own avoids registering a second, different definition of
``inference.ModelInferRequest`` in protobuf's global descriptor pool, which
fails in any process that also imports tritonclient (tests, benchmarks, users'
clients). RPCs beyond the v2 core answer UNIMPLEMENTED.

Metadata: ``x-model-version`` and ``x-request-key`` as in HTTP headers;
``authorization: Bearer <token>`` when ``MODELFACTORY_AUTH_TOKEN`` is set.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from modelfactory import __version__
from modelfactory.inference.endpoint import InferenceEndpoint
from modelfactory.inference.v2 import V2Error, fill_grpc_response, grpc_request_tensors

log = logging.getLogger("modelfactory.serving.grpc")

STATUS = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "too_large": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
}
OPEN_METHODS = (
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
)


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, endpoint: InferenceEndpoint):
        self.endpoint = endpoint

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.endpoint.router.ready)

    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name="modelfactory", version=__version__)

    async def _check(self, context, name: str, version: str) -> None:
        try:
            self.endpoint.check_model(name)
            if version and version not in self.endpoint.router.served_versions:
                raise V2Error(
                    "not_found",
                    f"version {version!r} of {name} is not served here (served: "
                    f"{', '.join(self.endpoint.router.served_versions) or 'none'})",
                )
        except V2Error as exc:
            self.endpoint.refuse(exc.kind, "v2_grpc")
            await context.abort(STATUS[exc.kind], exc.message)

    async def ModelReady(self, request, context):
        await self._check(context, request.name, request.version)
        ready = (
            self.endpoint.router.ready
            and self.endpoint.router.model(request.version or None) is not None
        )
        return pb.ModelReadyResponse(ready=ready)

    async def ModelMetadata(self, request, context):
        await self._check(context, request.name, request.version)
        model = self.endpoint.router.model(request.version or None)
        if model is None:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"no champion of {request.name} is loaded yet"
            )
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=request.name,
            versions=self.endpoint.router.served_versions,
            platform="modelfactory",
            inputs=[
                tensor(name=t.name, datatype=t.datatype, shape=t.shape)
                for t in model.input_tensors()
            ],
            outputs=[
                tensor(name=t.name, datatype=t.datatype, shape=t.shape)
                for t in model.output_tensors()
            ],
        )

    async def ModelInfer(self, request, context):
        endpoint = self.endpoint
        try:
            try:
                endpoint.check_model(request.model_name)
            except V2Error:
                endpoint.refuse("not_found", "v2_grpc")
                raise
            try:
                v2_request = grpc_request_tensors(request)
            except V2Error:
                endpoint.refuse("invalid", "v2_grpc")
                raise
            metadata = dict(context.invocation_metadata())
            infer = partial(
                endpoint.infer,
                v2_request,
                protocol="v2_grpc",
                explicit_version=request.model_version or metadata.get("x-model-version") or None,
                request_key=metadata.get("x-request-key") or None,
            )
            # Inline on the loop, like the HTTP routes, unless a prediction can take long
            # (a cold Prophet forecast): then in a thread, so the worker keeps answering.
            if endpoint.would_block(None):  # the same decision as the HTTP routes
                routed, tensors, request_id = await asyncio.to_thread(infer)
            else:
                routed, tensors, request_id = infer()
        except V2Error as exc:
            await context.abort(STATUS[exc.kind], exc.detail())
        response = pb.ModelInferResponse()
        fill_grpc_response(
            response, request.model_name, routed.model.version, request.id or None, tensors
        )
        context.set_trailing_metadata(
            (("x-model-version", routed.model.version), ("x-request-id", request_id))
        )
        return response


class BearerToken(grpc.aio.ServerInterceptor):
    """Refuses calls without ``authorization: Bearer <token>``; liveness and readiness stay open for probes."""

    def __init__(self, endpoint: InferenceEndpoint):
        self.endpoint = endpoint

        async def deny(request, context):
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or wrong bearer token (metadata authorization: Bearer <token>)",
            )

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    async def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method in OPEN_METHODS:
            return await continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        if self.endpoint.authorized(metadata.get("authorization")):
            return await continuation(handler_call_details)
        self.endpoint.refuse("unauthenticated", "v2_grpc")
        return self._deny


async def start_grpc_server(
    endpoint: InferenceEndpoint,
    port: int,
    host: str = "0.0.0.0",
    reuse_port: bool = True,
) -> grpc.aio.Server:
    """Serve v2 gRPC on ``host:port`` on the running event loop; returns the started server."""
    limit = endpoint.options.max_request_bytes
    server = grpc.aio.server(
        interceptors=[BearerToken(endpoint)] if endpoint.options.auth_token else None,
        options=[
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            # Over the limit, grpcio answers RESOURCE_EXHAUSTED before any of our code runs.
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", max(limit, 4 << 20)),
        ],
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(endpoint), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"could not bind gRPC port {host}:{port}")
    await server.start()
    log.info("v2 gRPC on %s:%d", host, port)
    return server
