# h2spec, the HTTP/2 conformance suite the tests run against the v2 gRPC port (included by the
# top-level Makefile; `make test` depends on it).
#
#   make h2spec    build it from its Go module (tools/h2spec/build.sh; seconds with Go's caches
#                  warm, nothing when current) into .tools/h2spec/<inputs hash>/bin

.PHONY: h2spec

h2spec:
	bash tools/h2spec/build.sh >/dev/null
