"""Serving a registered model, the same for every use case and protocol.

- ``served``: what a served model offers (load, predict, its input and output tensors);
- ``endpoint``: the one data plane every protocol calls (token, model, version and readiness
  checks, metrics, the prediction log);
- ``router``: which version answers (canary, shadow, fallback to the champion), following the
  registry; ``shadow``: predictions on the side, off the request path;
- ``schema``: records checked against the model's inputs; ``metrics``: Prometheus metrics;
- ``runtime``: what one serving worker runs, for the use case its adapter passes in;
- ``protocol/``: the wire formats (v2 codec, tabular convention, gRPC converters, REST routes and
  their OpenAPI document, the gRPC service and its HTTP/2 transport).
"""
