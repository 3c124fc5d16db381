#!/usr/bin/env bash
# Builds the control plane the cluster tests start, from Go modules at the versions pinned
# in tools/k8s/versions.env (go.mod written by gen-go-mod.sh):
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok,
#   and the real node's kubelet and kube-proxy (tools/node/build.sh builds the rest of it)
# into .tools/k8s/<key>/bin, where <key> is the Kubernetes version and a hash of the build
# inputs (versions.env, go.mod, go.sum, this script). A second run with the same inputs
# finds the stamp and does nothing.
#
# All eight binaries come from ONE `go build`, so the packages they share (client-go,
# apimachinery, apiserver, grpc, ...) compile once. The module and build caches stay at Go's
# defaults under the home directory (GOMODCACHE ~/go/pkg/mod, GOCACHE ~/.cache/go-build),
# so a rebuild after a version bump recompiles only what changed.
# go.mod also lists kubeadm, which only a kind node image needs (tools/node/kind builds it).
#
#   bash tools/k8s/build.sh            # build unless current; prints the bin dir last
#   bash tools/k8s/build.sh --bin-dir  # only print where the binaries are (or would be)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"

inputs_hash="$(cd "$here" && cat versions.env go.mod go.sum build.sh | sha256sum | cut -c1-12)"
key="$KUBERNETES_VERSION-$inputs_hash"
out="$root/.tools/k8s/$key"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kubelet kube-proxy)

if [ "${1:-}" = --bin-dir ]; then echo "$out/bin"; exit 0; fi
[ $# -eq 0 ] || { echo "usage: $0 [--bin-dir]" >&2; exit 2; }

current() {
  [ "$(cat "$out/stamp" 2>/dev/null)" = "$key" ] || return 1
  for b in "${binaries[@]}"; do [ -x "$out/bin/$b" ] || return 1; done
}
if current; then
  echo "control plane binaries are current: $out/bin ($KUBERNETES_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION)" >&2
  echo "$out/bin"
  exit 0
fi

command -v go >/dev/null || { echo "error: go is not on PATH (Go 1.26 builds Kubernetes $KUBERNETES_VERSION)" >&2; exit 1; }
# Never fetch another toolchain: the pinned go.mod says go 1.26.0, which the local Go meets.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly"

cd "$here"
k8s_json="$(go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}} {{.Sum}}' k8s.io/kubernetes)"
release_date="${k8s_json% *}"     # the release's date, not today's: the same inputs give the same binaries
module_sum="${k8s_json#* }"       # no git commit is known for a module download; its checksum names the source
minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
ldflags=(-s -w)
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=(
    "-X $pkg.gitVersion=$KUBERNETES_VERSION"
    "-X $pkg.gitMajor=1"
    "-X $pkg.gitMinor=$minor"
    "-X $pkg.gitCommit=module-$module_sum"
    "-X $pkg.gitTreeState=archive"
    "-X $pkg.buildDate=$release_date"
  )
done

tmp="$out.partial"
rm -rf "$tmp"
mkdir -p "$tmp/bin" "$tmp/kwok-stages"
echo "building ${binaries[*]} (Kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION) into $out" >&2
echo "  one go build on $(nproc) cores; a cold build (empty caches) takes a while, a rebuild reuses ~/.cache/go-build" >&2
started=$(date +%s)
go build -trimpath -ldflags "${ldflags[*]}" -o "$tmp/bin/" \
  go.etcd.io/etcd/server/v3 \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl \
  k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kube-proxy \
  sigs.k8s.io/kwok/cmd/kwok
# go names the binary of a module path ending in /v3 after the element before it.
mv "$tmp/bin/server" "$tmp/bin/etcd"

# kwok's stages, from the same pinned module: the ones kwokctl uses by default for nodes
# (initialize, heartbeat with a lease) and pods (ready, Jobs' pods complete, delete), and
# its "fast" volume stages with their StorageClass, which bind PVCs to fake PVs (this
# cluster has no storage provisioner).
kwok_dir="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
             pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete \
             volume/fast/pvc-provision volume/fast/pv-bind volume/fast/pvc-delete \
             volume/fast/pv-delete volume/fast/storage-class; do
  cp "$kwok_dir/kustomize/stage/$stage.yaml" "$tmp/kwok-stages/"
done
chmod -R u+w "$tmp"

echo "$key" >"$tmp/stamp"
rm -rf "$out"
mv "$tmp" "$out"
# Builds of earlier pins are 400 MB each; the Go build cache keeps what a switch back needs.
find "$root/.tools/k8s" -mindepth 1 -maxdepth 1 -type d ! -name "$key" -exec rm -rf {} +
echo "built in $(( $(date +%s) - started ))s: $out/bin" >&2
echo "$out/bin"
