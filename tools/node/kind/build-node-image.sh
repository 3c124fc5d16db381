#!/usr/bin/env bash
# A kind node image built on this machine, where no registry answers (kindest/node and kind's
# base cannot be pulled, and `kind build node-image` fetches images with `ctr content fetch`):
# kind v0.33's own steps, scripted (docs/adr/0010-real-node.md, "kind"):
#   1. a bookworm rootfs (debootstrap) with systemd 252 (trixie's 257 refuses cgroup v1)
#      and the packages of kind's base image, kind's base files from its Go module;
#   2. the node's binaries (tools/node/build.sh) and kubelet, kubeadm, kubectl (tools/k8s);
#   3. the control plane's images built FROM scratch (kube-proxy on the rootfs, for
#      iptables) plus the node's CoreDNS, pause and local-path images, preloaded into the
#      image's containerd (ctr import in a container of it, then docker commit);
#   4. no kindnetd (the proxy does not serve it): a bridge conflist for one node.
# Then, with dockerd running tools/node/kind/runc-without-sys-resource as its default runtime
# (this sandbox's root lacks CAP_SYS_RESOURCE, so every --privileged container fails):
#   bin=$(bash tools/node/kind/build-node-image.sh)        # prints the dir with `kind`
#   $bin/kind create cluster --image modelfactory/kind-node:v1.36.3 \
#       --config tools/node/kind/kind-config.yaml
# An experiment kept for the next part (the chart on kind); CI does not run it.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../../.." && pwd)"
# shellcheck source=../versions.env
. "$REPO/tools/node/versions.env"
# shellcheck source=../../k8s/versions.env
. "$REPO/tools/k8s/versions.env"
KIND_VERSION=v0.33.0
IMAGE="modelfactory/kind-node:$KUBERNETES_VERSION"
ETCD_TAG="${ETCD_VERSION#v}-0"   # kind-config.yaml names it (kubeadm's default is 3.6.8-0)
WORK="$REPO/.tools/kind-node"
say() { echo "kind node image: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "error: needs root (debootstrap, chroot)"; exit 1; }
for c in docker debootstrap jq go; do command -v "$c" >/dev/null || { say "error: $c is needed"; exit 1; }; done
started=$(date +%s)

NODE_OUT="$(bash "$REPO/tools/node/build.sh")"
K8S="$(bash "$REPO/tools/k8s/build.sh")"
mkdir -p "$WORK/bin"
export GOTOOLCHAIN=local
say "kubeadm (tools/k8s's module) and kind $KIND_VERSION (its own)"
(cd "$REPO/tools/k8s" && CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly" go build -trimpath \
  -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${KUBERNETES_VERSION#v1.}" \
  -o "$WORK/bin/kubeadm" k8s.io/kubernetes/cmd/kubeadm)
CGO_ENABLED=0 GOBIN="$WORK/bin" GOFLAGS=-buildvcs=false go install -trimpath "sigs.k8s.io/kind@$KIND_VERSION"
KIND_SRC="$(cd "$REPO/tools/k8s" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | jq -r .Dir)"

# 1. the rootfs, once (kind's base image's packages, from Debian bookworm)
if [ ! -x "$WORK/rootfs/usr/lib/systemd/systemd" ]; then
  say "debootstrap bookworm with systemd"
  rm -rf "$WORK/rootfs"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,conntrack,iptables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,bash,ca-certificates,curl,jq,procps \
    bookworm "$WORK/rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  chroot "$WORK/rootfs" apt-get clean
fi
R="$WORK/noderoot"
rm -rf "$R" && cp -a "$WORK/rootfs" "$R"
F="$KIND_SRC/images/base/files"
install -m 0755 "$F"/usr/local/bin/* "$R/usr/local/bin/"
mkdir -p "$R/kind" && cp -r "$F/kind/." "$R/kind/" && chmod -R a+rX "$R/kind"
chmod 0755 "$R"/kind/bin/* 2>/dev/null || true
cp -r "$F/etc/." "$R/etc/"
find "$R/lib/systemd/system/sysinit.target.wants/" -name "systemd-tmpfiles-setup.service" -delete
rm -f "$R"/lib/systemd/system/multi-user.target.wants/* "$R"/lib/systemd/system/local-fs.target.wants/* \
  "$R"/lib/systemd/system/sockets.target.wants/*udev* "$R"/lib/systemd/system/sockets.target.wants/*initctl* \
  "$R"/lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >>"$R/etc/systemd/journald.conf"
chroot "$R" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
chroot "$R" systemctl mask systemd-binfmt.service >/dev/null 2>&1
ln -sf /usr/lib/systemd/systemd "$R/sbin/init"
mkdir -p "$R/etc/kubernetes/manifests" "$R/opt/cni/bin" "$R/etc/cni/net.d" "$R/kind/manifests"

# 2. binaries
install -m 0755 "$NODE_OUT"/bin/{containerd,containerd-shim-runc-v2,ctr,crictl} "$R/usr/local/bin/"
install -m 0755 "$NODE_OUT/bin/runc" "$R/usr/local/sbin/runc"
install -m 0755 "$NODE_OUT"/cni/* "$R/opt/cni/bin/"
install -m 0755 "$K8S/kubelet" "$K8S/kubectl" "$WORK/bin/kubeadm" "$R/usr/bin/"
# kind's containerd config, with the sandbox's missing CAP_SYS_RESOURCE (as tools/node/node.sh)
# and the pause image built here.
sed -i -e 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' \
  -e "s|sandbox_image = \"registry.k8s.io/pause:[0-9.]*\"|sandbox_image = \"registry.k8s.io/pause:$PAUSE_VERSION\"|" \
  "$R/etc/containerd/config.toml"
"$NODE_OUT/bin/ctr" oci spec 2> >(grep -v 'cgroup v1 is deprecated' >&2) \
  | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
  | jq 'del(.process.rlimits)' >"$R/etc/containerd/cri-base.json"
echo -n "$KUBERNETES_VERSION" >"$R/kind/version"
echo "# no kindnetd here: disableDefaultCNI, and /etc/cni/net.d/10-bridge.conflist" >"$R/kind/manifests/default-cni.yaml"
sed -e "s|@PROVISIONER_IMAGE@|modelfactory.local/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION|" \
  -e "s|@HELPER_IMAGE@|modelfactory.local/local-path-helper:busybox-static|" -e "s|@PATH@|/var/local-path-provisioner|" \
  "$REPO/tools/node/manifests/local-path-storage.yaml" >"$R/kind/manifests/default-storage.yaml"
cat >"$R/etc/cni/net.d/10-bridge.conflist" <<'EOF'
{"cniVersion": "1.0.0", "name": "kind-bridge", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF

# 3. images kubeadm and kind name, preloaded
W="$WORK/images"
rm -rf "$W" && mkdir -p "$W"
image() { python3 "$REPO/tools/node/oci_image.py" "$@" >/dev/null; }
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  mkdir -p "$W/$b/usr/local/bin" && cp "$K8S/$b" "$W/$b/usr/local/bin/"
  image --name "registry.k8s.io/$b:$KUBERNETES_VERSION" --out "$W/$b.tar" --layer "$W/$b" --entrypoint "[\"/usr/local/bin/$b\"]"
done
mkdir -p "$W/etcd/usr/local/bin" && cp "$K8S/etcd" "$W/etcd/usr/local/bin/"
image --name "registry.k8s.io/etcd:$ETCD_TAG" --out "$W/etcd.tar" --layer "$W/etcd"
mkdir -p "$W/kube-proxy/usr/local/bin" && cp "$K8S/kube-proxy" "$W/kube-proxy/usr/local/bin/"
image --name "registry.k8s.io/kube-proxy:$KUBERNETES_VERSION" --out "$W/kube-proxy.tar" \
  --layer "$WORK/rootfs" --layer "$W/kube-proxy" --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# kubeadm's CoreDNS Deployment runs the image's user with NET_BIND_SERVICE: root here.
mkdir -p "$W/coredns" && cp "$NODE_OUT/bin/coredns" "$W/coredns/"
image --name "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" --out "$W/coredns.tar" --layer "$W/coredns" --entrypoint '["/coredns"]'
mkdir -p "$W/pause" && tar -xf "$NODE_OUT/images/pause.tar" -C "$W/pause" index.json blobs
python3 - "$W/pause" <<'PY'
import json, sys, tarfile
root = sys.argv[1]
index = json.load(open(f"{root}/index.json"))
blob = lambda d: f"{root}/blobs/sha256/{d.split(':')[1]}"
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
with tarfile.open(blob(manifest["layers"][0]["digest"])) as layer:
    layer.extractall(f"{root}/rootfs")
PY
image --name "registry.k8s.io/pause:$PAUSE_VERSION" --out "$W/pause-k8s.tar" --layer "$W/pause/rootfs" --entrypoint '["/pause"]' --user 65535:65535
cp "$NODE_OUT/images/local-path-provisioner.tar" "$NODE_OUT/images/local-path-helper.tar" "$W/"

say "docker import, preload, commit"
tar -C "$R" --numeric-owner -c . | docker import - "$IMAGE-rootfs" >/dev/null
docker rm -f kind-node-preload >/dev/null 2>&1 || true
docker run -d --name kind-node-preload --privileged -v "$W:/images:ro" --entrypoint /usr/local/bin/containerd "$IMAGE-rootfs" >/dev/null
for _ in $(seq 30); do docker exec kind-node-preload ctr version >/dev/null 2>&1 && break; sleep 0.5; done
for t in "$W"/*.tar; do
  docker exec kind-node-preload ctr -n k8s.io images import --all-platforms "/images/$(basename "$t")" >/dev/null 2>&1
done
docker stop kind-node-preload >/dev/null
docker commit --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' \
  --change 'ENV container=docker' kind-node-preload "$IMAGE" >/dev/null
docker rm kind-node-preload >/dev/null
docker image rm "$IMAGE-rootfs" >/dev/null 2>&1 || true
rm -rf "$R" "$W"
say "built $IMAGE in $(( $(date +%s) - started ))s"
echo "$WORK/bin"
