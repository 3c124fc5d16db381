#!/usr/bin/env bash
# Builds the parts of a real Kubernetes node from Go modules and Debian packages, pinned in
# tools/node/versions.env (go.mod written by gen-go-mod.sh), never pulled:
#   bin/   containerd, containerd-shim-runc-v2, ctr, runc, crictl, coredns, local-path-provisioner
#   cni/   the CNI plugins bridge, loopback, host-local, portmap
#   images/*.tar  OCI archives for `ctr -n k8s.io images import`: pause (the kubernetes module's
#          pause.c, gcc -static), CoreDNS, the local-path provisioner and its helper (Debian's
#          busybox-static), each FROM scratch; PostgreSQL from Debian's packages (debootstrap)
# into .tools/node/<key>/, where <key> is a hash of the build inputs; a second run with the
# same inputs finds the stamp and does nothing. kubelet and kube-proxy come from the same
# k8s.io/kubernetes build as the control plane (tools/k8s/build.sh, which this runs first).
#
# containerd, the CNI plugins and CoreDNS are one `go build` (CGO_ENABLED=0, containerd's tags
# no_btrfs no_devmapper no_zfs); the local-path provisioner a second in the same module, runc
# a third (cgo, with libseccomp); crictl alone comes from its own module (below, why). The Go
# caches stay at their defaults under the home directory and are shared with tools/k8s: the
# dependencies both resolve to the same versions (gen-go-mod.sh) compile once. The PostgreSQL
# image is cached on its own (~/.cache/modelfactory/node-images/, outside the work tree), since
# it only changes with its own inputs.
#
# Needs Go, gcc, and as root: apt-get (libseccomp-dev, debootstrap) on a Debian machine.
#   bash tools/node/build.sh            # build unless current; prints the output dir last
#   bash tools/node/build.sh --out-dir  # only print where the parts are (or would be)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"

inputs_hash="$(cd "$root" && cat tools/node/versions.env tools/node/go.mod tools/node/go.sum \
  tools/node/build.sh tools/node/oci_image.py tools/node/coredns/main.go | sha256sum | cut -c1-12)"
out="$root/.tools/node/$inputs_hash"
postgres_hash="$(cd "$root" && cat <(grep '^POSTGRES_MAJOR=' tools/node/versions.env) tools/node/oci_image.py \
  docker/postgres/docker-entrypoint.sh <(sed -n '/^# --- postgres/,/^# --- end postgres/p' tools/node/build.sh) \
  | sha256sum | cut -c1-12)"
# Outside the work tree, like the Go caches: a fresh clone (CI's) reuses it instead of
# running debootstrap again (1.5-3 min, bound by the mirror).
postgres_tar="${XDG_CACHE_HOME:-$HOME/.cache}/modelfactory/node-images/postgres-$POSTGRES_MAJOR-$postgres_hash.tar"
binaries=(containerd containerd-shim-runc-v2 ctr runc crictl coredns local-path-provisioner)
cni_plugins=(bridge loopback host-local portmap)
images=(pause coredns local-path-provisioner local-path-helper)

if [ "${1:-}" = --out-dir ]; then echo "$out"; exit 0; fi
[ $# -eq 0 ] || { echo "usage: $0 [--out-dir]" >&2; exit 2; }

current() {
  [ "$(cat "$out/stamp" 2>/dev/null)" = "$inputs_hash" ] || return 1
  local b
  for b in "${binaries[@]}"; do [ -x "$out/bin/$b" ] || return 1; done
  for b in "${cni_plugins[@]}"; do [ -x "$out/cni/$b" ] || return 1; done
  for b in "${images[@]}"; do [ -s "$out/images/$b.tar" ] || return 1; done
  [ -s "$out/images/postgres.tar" ]
}
say() { echo "node build: $*" >&2; }
started=$(date +%s)

# kubelet and kube-proxy (and the control plane): one go build in tools/k8s, a no-op when current.
k8s_bin="$(bash "$root/tools/k8s/build.sh")"
if current; then
  say "current: $out (Kubernetes $(basename "$(dirname "$k8s_bin")"), containerd $CONTAINERD_VERSION, runc $RUNC_VERSION)"
  echo "$out"
  exit 0
fi

# --- Debian packages: libseccomp for runc's seccomp filter, gcc for pause.c and cgo,
# debootstrap for the PostgreSQL image; busybox-static is unpacked, never installed.
need_pkgs=()
[ -e /usr/include/seccomp.h ] || need_pkgs+=(libseccomp-dev)
command -v gcc >/dev/null || need_pkgs+=(gcc libc6-dev)
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
command -v pkg-config >/dev/null || need_pkgs+=(pkg-config)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { say "error: need ${need_pkgs[*]}: run as root, or apt-get install ${need_pkgs[*]}"; exit 1; }
  say "apt-get install ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
command -v go >/dev/null || { say "error: go is not on PATH"; exit 1; }
export GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -mod=readonly"

tmp="$out.partial"
rm -rf "$tmp"
mkdir -p "$tmp/bin" "$tmp/cni" "$tmp/images" "$tmp/work"
cd "$here"

# --- Go: every pure-Go part in one build ----------------------------------------------------
t=$(date +%s)
say "go build: containerd $CONTAINERD_VERSION, CNI plugins $CNI_PLUGINS_VERSION, CoreDNS $COREDNS_VERSION"
ldflags=(-s -w
  "-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
  "-X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2"
  "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION"
  "-X github.com/coredns/coredns/coremain.GitCommit=module-$COREDNS_VERSION"
  "-X main.VERSION=$LOCAL_PATH_PROVISIONER_VERSION")
CGO_ENABLED=0 go build -trimpath -tags "no_btrfs no_devmapper no_zfs" -ldflags "${ldflags[*]}" \
  -o "$tmp/work/" \
  github.com/containerd/containerd/v2/cmd/containerd \
  github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
  github.com/containerd/containerd/v2/cmd/ctr \
  github.com/containernetworking/plugins/plugins/main/bridge \
  github.com/containernetworking/plugins/plugins/main/loopback \
  github.com/containernetworking/plugins/plugins/ipam/host-local \
  github.com/containernetworking/plugins/plugins/meta/portmap \
  ./coredns
for b in "${cni_plugins[@]}"; do mv "$tmp/work/$b" "$tmp/cni/"; done
for b in containerd containerd-shim-runc-v2 ctr coredns; do mv "$tmp/work/$b" "$tmp/bin/"; done
say "  pure-Go parts in $(( $(date +%s) - t ))s"

# The local-path provisioner builds in this module too, but in a go build of its own: it
# imports github.com/Sirupsen/logrus (v0.11, the module's old capitalised path), which in one
# build with containerd's lowercase path is a "case-insensitive import collision". crictl
# cannot share the module at all: v1.37 requires the v0.37 staging modules, and v1.34 does
# not compile against v0.36's CRI client; it is installed from its own pinned module.
t=$(date +%s)
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.VERSION=$LOCAL_PATH_PROVISIONER_VERSION" \
  -o "$tmp/bin/local-path-provisioner" github.com/rancher/local-path-provisioner
say "  local-path-provisioner $LOCAL_PATH_PROVISIONER_VERSION in $(( $(date +%s) - t ))s"
t=$(date +%s)
CGO_ENABLED=0 GOBIN="$tmp/bin" GOFLAGS=-buildvcs=false go install -trimpath \
  -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION" \
  "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"
say "  crictl $CRI_TOOLS_VERSION (its own module) in $(( $(date +%s) - t ))s"

# runc: cgo for libseccomp (the RuntimeDefault seccomp profile pods of the restricted level use).
t=$(date +%s)
CGO_ENABLED=1 go build -trimpath -tags seccomp \
  -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" -o "$tmp/bin/runc" github.com/opencontainers/runc
say "  runc $RUNC_VERSION (cgo, seccomp) in $(( $(date +%s) - t ))s"

# --- images FROM scratch ---------------------------------------------------------------------
t=$(date +%s)
image() { python3 "$here/oci_image.py" "$@" >&2; }
k8s_src="$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)"
mkdir -p "$tmp/work/pause"
gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-modelfactory" \
  -o "$tmp/work/pause/pause" "$k8s_src/build/pause/linux/pause.c"
strip "$tmp/work/pause/pause"
image --name "modelfactory.local/pause:$PAUSE_VERSION" --out "$tmp/images/pause.tar" \
  --layer "$tmp/work/pause" --entrypoint '["/pause"]' --user 65535:65535

# CoreDNS as non-root (65532, as upstream's image): the Deployment lets it bind :53 with the
# namespaced sysctl net.ipv4.ip_unprivileged_port_start instead of a capability.
mkdir -p "$tmp/work/coredns"
cp "$tmp/bin/coredns" "$tmp/work/coredns/coredns"
image --name "modelfactory.local/coredns:$COREDNS_VERSION" --out "$tmp/images/coredns.tar" \
  --layer "$tmp/work/coredns" --entrypoint '["/coredns"]' --user 65532:65532 \
  --port 53/udp --port 53/tcp --port 9153/tcp

mkdir -p "$tmp/work/local-path-provisioner"
cp "$tmp/bin/local-path-provisioner" "$tmp/work/local-path-provisioner/"
image --name "modelfactory.local/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION" \
  --out "$tmp/images/local-path-provisioner.tar" --layer "$tmp/work/local-path-provisioner" \
  --entrypoint '["/local-path-provisioner"]' --user 65532:65532

# The provisioner's helper pods run its setup/teardown scripts (mkdir, rm) in a shell.
(cd "$tmp/work" && apt-get download -qq busybox-static >/dev/null 2>&1) \
  || { apt-get update -qq && (cd "$tmp/work" && apt-get download -qq busybox-static); }
dpkg-deb -x "$tmp/work"/busybox-static_*.deb "$tmp/work/busybox-deb"
mkdir -p "$tmp/work/helper/bin"
cp "$tmp/work/busybox-deb/bin/busybox" "$tmp/work/helper/bin/busybox"
for applet in sh mkdir rm chmod ls cat; do ln -s busybox "$tmp/work/helper/bin/$applet"; done
image --name "modelfactory.local/local-path-helper:busybox-static" \
  --out "$tmp/images/local-path-helper.tar" --layer "$tmp/work/helper" --env PATH=/bin
say "  pause, CoreDNS, local-path-provisioner and helper images in $(( $(date +%s) - t ))s"

# --- postgres: PostgreSQL from Debian's packages on a debootstrapped bookworm ------------------
# The official image's conventions the chart relies on: the postgres user is uid/gid 999,
# the binaries are on PATH, the entrypoint honours POSTGRES_* and /docker-entrypoint-initdb.d.
if [ ! -s "$postgres_tar" ]; then
  [ "$(id -u)" = 0 ] || { say "error: the PostgreSQL image needs root (debootstrap)"; exit 1; }
  t=$(date +%s)
  rootfs="$tmp/work/postgres"
  say "debootstrap bookworm with postgresql-$POSTGRES_MAJOR (the PostgreSQL image)"
  debootstrap --variant=minbase --include="postgresql-$POSTGRES_MAJOR" bookworm "$rootfs" \
    "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$tmp/work/debootstrap.log" 2>&1 \
    || { tail -30 "$tmp/work/debootstrap.log" >&2; exit 1; }
  old_uid="$(chroot "$rootfs" id -u postgres)" old_gid="$(chroot "$rootfs" id -g postgres)"
  chroot "$rootfs" sh -c "groupmod -g 999 postgres && usermod -u 999 -g 999 postgres \
    && find / -xdev \\( -uid $old_uid -o -gid $old_gid \\) -exec chown -h 999:999 {} +"
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* \
         "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
         "$rootfs"/usr/share/locale/* "$rootfs"/tmp/* "$rootfs"/var/lib/postgresql/*
  : >"$rootfs"/etc/resolv.conf
  install -m 0755 "$root/docker/postgres/docker-entrypoint.sh" "$rootfs/usr/local/bin/docker-entrypoint.sh"
  mkdir -p "$rootfs/docker-entrypoint-initdb.d" "$rootfs/var/lib/postgresql/data"
  chown 999:999 "$rootfs/var/lib/postgresql" "$rootfs/var/lib/postgresql/data"
  mkdir -p "$(dirname "$postgres_tar")"
  image --name "modelfactory.local/postgres:$POSTGRES_MAJOR-bookworm" --out "$postgres_tar" \
    --layer "$rootfs" --entrypoint '["docker-entrypoint.sh"]' --cmd '["postgres"]' --user 999:999 \
    --env "PATH=/usr/lib/postgresql/$POSTGRES_MAJOR/bin:/usr/local/bin:/usr/bin:/bin" \
    --env LANG=C.UTF-8 --env PGDATA=/var/lib/postgresql/data --port 5432/tcp --stop-signal SIGINT
  rm -rf "$rootfs"
  find "$(dirname "$postgres_tar")" -name 'postgres-*.tar' ! -path "$postgres_tar" -delete
  say "  PostgreSQL $POSTGRES_MAJOR image in $(( $(date +%s) - t ))s"
fi
# --- end postgres
ln -f "$postgres_tar" "$tmp/images/postgres.tar" 2>/dev/null || cp "$postgres_tar" "$tmp/images/postgres.tar"

rm -rf "$tmp/work"
echo "$inputs_hash" >"$tmp/stamp"
rm -rf "$out"
mv "$tmp" "$out"
find "$root/.tools/node" -mindepth 1 -maxdepth 1 -type d ! -name "$inputs_hash" -exec rm -rf {} +
say "built in $(( $(date +%s) - started ))s (kubelet and kube-proxy: $k8s_bin): $out"
echo "$out"
