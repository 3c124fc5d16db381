"""Serving a registered model: the model interface, the endpoint every protocol calls (auth, version
and readiness checks), the canary/shadow router, metrics and the serving runtime; ``protocol/``
holds the wire formats (v2 codec, REST routes, gRPC service, HTTP/2 gRPC transport)."""
