"""Wire protocols over the inference endpoint, split by concern as MLServer's are.

- ``v2``: the Open Inference Protocol's tensors and its JSON codec (pure);
- ``tabular``: tensors as a tabular model's records and predictions as tensors (pure);
- ``converters``: the v2 gRPC messages to and from those tensors (protobuf);
- ``headers``: the model API's own headers, the same as gRPC metadata keys;
- ``rest``: the HTTP route table and its thin handlers; ``openapi``: their OpenAPI document;
- ``grpc_service``: the v2 gRPC service; ``grpc_transport``: unary gRPC over HTTP/2 (ADR 0001);
- ``metrics_http``: Prometheus ``/metrics`` on its own port.
"""
