"""Wire protocols over the inference endpoint: the Open Inference Protocol v2 codec, the REST routes
(JSON and v2), the v2 gRPC service and its HTTP/2 transport."""
