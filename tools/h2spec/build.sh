#!/usr/bin/env bash
# Builds h2spec (github.com/summerwind/h2spec), the HTTP/2 conformance suite the tests run
# against the v2 gRPC port (tests/serving/test_grpc_conformance.py), from the Go module at the
# version pinned in tools/h2spec/go.mod, into .tools/h2spec/<key>/bin, where <key> is a hash
# of the build inputs (go.mod, go.sum, this script). A second run with the same inputs finds
# the stamp and does nothing; the module and build caches are Go's defaults, as tools/k8s's.
#
#   bash tools/h2spec/build.sh            # build unless current; prints the bin dir last
#   bash tools/h2spec/build.sh --bin-dir  # only print where the binary is (or would be)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

inputs_hash="$(cd "$here" && cat go.mod go.sum build.sh | sha256sum | cut -c1-12)"
out="$root/.tools/h2spec/$inputs_hash"
version="$(awk '$1 == "github.com/summerwind/h2spec" { print $2 }' "$here/go.mod")"
version="${version%+incompatible}"  # v2.2.1: the release predates Go modules

if [ "${1:-}" = --bin-dir ]; then echo "$out/bin"; exit 0; fi
[ $# -eq 0 ] || { echo "usage: $0 [--bin-dir]" >&2; exit 2; }

if [ "$(cat "$out/stamp" 2>/dev/null)" = "$inputs_hash" ] && [ -x "$out/bin/h2spec" ]; then
  echo "h2spec $version is current: $out/bin" >&2
  echo "$out/bin"
  exit 0
fi

command -v go >/dev/null || { echo "error: go is not on PATH (it builds h2spec $version)" >&2; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly"

tmp="$out.partial"
rm -rf "$tmp"
mkdir -p "$tmp/bin"
echo "building h2spec $version into $out" >&2
cd "$here"
go build -trimpath -ldflags "-s -w -X main.VERSION=${version#v} -X main.COMMIT=module" \
  -o "$tmp/bin/" github.com/summerwind/h2spec/cmd/h2spec
echo "$inputs_hash" >"$tmp/stamp"
rm -rf "$out"
mv "$tmp" "$out"
echo "$out/bin"
