#!/usr/bin/env bash
# A real Kubernetes node on this machine, joined to a control plane of tools/control-plane.sh
# (`tools/control-plane.sh up --real-node` runs this; so does its `down`):
#   containerd with its own socket, root and state (beside Docker's), runc, a bridge CNI
#   network, the kubelet (client certificate system:node:<name> in system:nodes, so Node
#   authorization and NodeRestriction hold; its own serving certificate), kube-proxy
#   (iptables mode; NodePorts answer on 127.0.0.1 only), CoreDNS as a Deployment behind the
#   kube-dns Service, and rancher's local-path provisioner as the default StorageClass.
# Every part comes from tools/node/build.sh and tools/k8s/build.sh; images are imported,
# never pulled. docs/adr/0010-real-node.md says why it is shaped this way and what it took.
#
#   tools/node/node.sh up     --state-dir DIR   after the control plane in DIR is up
#   tools/node/node.sh down   --state-dir DIR   stop everything the node started, also after
#                                               a kill -9 of any part or of its caller
#   tools/node/node.sh status --state-dir DIR
#   tools/node/node.sh import --state-dir DIR ARCHIVE...   images into the node's containerd
#   tools/node/node.sh leftovers [--state-dir DIR]  what of a node is left on this machine
#                                               (processes, mounts, links, rules); exit 1 if any
#
# One real node per machine: its bridge, pod network and iptables chains are the machine's.
# Needs root, cgroups (v1 or v2), iptables, and ip (iproute2).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
NODE_NAME="${NODE_NAME:-modelfactory-node}"
BRIDGE=mfnode0                    # the CNI bridge; its address is the node's
POD_SUBNET=10.244.0.0/24
NODE_IP=10.244.0.1                # the bridge's (gateway) address: the node's InternalIP
CLUSTER_DNS_IP=10.96.0.10         # kube-dns, as kubeadm places it in 10.96.0.0/16
CGROUP_PARENT=modelfactory-node   # every pod's cgroup is under it, in each hierarchy
FORWARD_CHAIN=MODELFACTORY-NODE   # the only FORWARD rules this node adds
OWNER_FILE=/run/modelfactory-node.owner   # which state dir holds this machine's real node
WAIT="${NODE_WAIT:-120}"

die() { echo "node: error: $*" >&2; exit 1; }
say() { echo "node: $*" >&2; }

command="${1:-}"
[ $# -gt 0 ] && shift
STATE_DIR=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --state-dir) STATE_DIR="$2"; shift 2 ;;
    --state-dir=*) STATE_DIR="${1#*=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -z "$STATE_DIR" ] && [ "$command" = leftovers ] && [ -f "$OWNER_FILE" ]; then
  STATE_DIR="$(cat "$OWNER_FILE")"
fi
if [ -n "$STATE_DIR" ]; then
  [ -d "$STATE_DIR" ] || { [ "$command" = leftovers ] || die "no state dir $STATE_DIR"; }
  STATE_DIR="$(cd "$STATE_DIR" 2>/dev/null && pwd || echo "$STATE_DIR")"
fi
NODE="$STATE_DIR/node"
RUN="$STATE_DIR/run" LOGS="$STATE_DIR/logs" PKI="$STATE_DIR/pki"
SOCK="$NODE/containerd/containerd.sock"

# --- processes (the same conventions as tools/control-plane.sh) ---------------------------------
pid_of() { cat "$RUN/$1.pid" 2>/dev/null || true; }
is_ours() {
  local pid="$1"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$STATE_DIR/"
}
running() { is_ours "$(pid_of "$1")"; }
start() { # start NAME BINARY ARGS...
  local name="$1"; shift
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$RUN/$name.pid" "$@" \
    >>"$LOGS/$name.log" 2>&1 </dev/null &
  for _ in $(seq 50); do [ -s "$RUN/$name.pid" ] && return 0; sleep 0.1; done
  die "$name did not start (see $LOGS/$name.log)"
}
wait_for() { # wait_for NAME DESCRIPTION COMMAND...
  local name="$1" what="$2" deadline=$(( $(date +%s) + WAIT )); shift 2
  until "$@" >/dev/null 2>&1; do
    running "$name" || { tail -n 30 "$LOGS/$name.log" >&2; die "$name exited before $what (log: $LOGS/$name.log)"; }
    [ "$(date +%s)" -lt "$deadline" ] || { tail -n 30 "$LOGS/$name.log" >&2; die "$name: no $what after ${WAIT}s (log: $LOGS/$name.log)"; }
    sleep 0.5
  done
}
# Every process whose command line names the node's dir (not the control plane's processes,
# which name only the state dir): the node's daemons and containerd's shims (their -address
# is the socket in it). Container processes are found by their cgroup instead.
state_pids() {
  local p
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    [ "$p" != $$ ] && [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$NODE/" && echo "$p"
  done
  return 0
}

cgroup_dirs() { # the node's cgroup parent in every mounted hierarchy, deepest paths first
  local mnt
  awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/mounts | while read -r mnt; do
    [ -d "$mnt/$CGROUP_PARENT" ] && find "$mnt/$CGROUP_PARENT" -depth -type d
  done
  return 0
}
cgroup_pids() {
  local d
  cgroup_dirs | while read -r d; do cat "$d/cgroup.procs" 2>/dev/null; done | sort -un
}

node_mounts() { # mount points under the node's dir, deepest first
  awk -v prefix="$NODE/" 'index($5, prefix) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

kube_chains() { # TABLE BINARY: the chains of kube-proxy, the CNI plugins and this node
  "$2" -w 5 -t "$1" -S 2>/dev/null | awk '$1 == "-N" && ($2 ~ /^(KUBE-|CNI-)/ || $2 == "'"$FORWARD_CHAIN"'") { print $2 }'
}
kube_rules() { # TABLE BINARY: rules in built-in chains that jump to those chains
  "$2" -w 5 -t "$1" -S 2>/dev/null | awk '$1 == "-A" && $2 !~ /^(KUBE-|CNI-)/ && $2 != "'"$FORWARD_CHAIN"'" {
    for (i = 3; i <= NF; i++) if ($i == "-j" && ($(i+1) ~ /^(KUBE-|CNI-)/ || $(i+1) == "'"$FORWARD_CHAIN"'")) { print; break } }'
}

# --- leftovers: what a node leaves on the machine, for down's check and the tests ------------------
cmd_leftovers() {
  local found=0 out
  if [ -n "$STATE_DIR" ]; then
    out="$(state_pids | tr '\n' ' ')"; [ -z "$out" ] || { echo "processes: $out"; found=1; }
    out="$(node_mounts | tr '\n' ' ')"; [ -z "$out" ] || { echo "mounts: $out"; found=1; }
  fi
  out="$(cgroup_dirs | tr '\n' ' ')"; [ -z "$out" ] || { echo "cgroups: $out"; found=1; }
  out="$(cgroup_pids | tr '\n' ' ')"; [ -z "$out" ] || { echo "pod processes: $out"; found=1; }
  if ip link show "$BRIDGE" >/dev/null 2>&1; then echo "link: $BRIDGE"; found=1; fi
  out="$(ip -o link show type veth 2>/dev/null | awk -F': ' '/master '"$BRIDGE"'/ { print $2 }' | tr '\n' ' ')"
  [ -z "$out" ] || { echo "veths: $out"; found=1; }
  local table bin
  for bin in iptables ip6tables; do
    command -v "$bin" >/dev/null || continue
    for table in filter nat mangle raw; do
      out="$(kube_chains "$table" "$bin" | tr '\n' ' ')"
      [ -z "$out" ] || { echo "$bin -t $table chains: $out"; found=1; }
      out="$(kube_rules "$table" "$bin")"
      [ -z "$out" ] || { echo "$bin -t $table rules: $(echo "$out" | tr '\n' ';')"; found=1; }
    done
  done
  if command -v ipset >/dev/null; then
    out="$(ipset list -n 2>/dev/null | grep -E '^KUBE-(SRC|DST)-' | tr '\n' ' ' || true)"
    [ -z "$out" ] || { echo "ipsets: $out"; found=1; }
  fi
  [ ! -f "$OWNER_FILE" ] || { echo "owner file: $OWNER_FILE ($(cat "$OWNER_FILE"))"; found=1; }
  return "$found"
}

# --- down ----------------------------------------------------------------------------------------
kill_wait() { # kill_wait SIGNAL SECONDS PIDS...: signal, then wait until they are gone
  local sig="$1" secs="$2" p alive; shift 2
  [ $# -gt 0 ] || return 0
  kill "-$sig" "$@" 2>/dev/null || true
  for _ in $(seq $(( secs * 10 ))); do
    alive=0
    for p in "$@"; do [ -d "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  return 1
}

cmd_down() {
  [ -n "$STATE_DIR" ] || die "down needs --state-dir"
  local name pid pids stopped=() bin table chain rule
  # 1. the kubelet and kube-proxy first, so nothing restarts containers while they go.
  for name in kubelet kube-proxy; do
    pid="$(pid_of "$name")"
    if is_ours "$pid"; then kill_wait TERM 10 "$pid" || kill_wait KILL 5 "$pid" || true; stopped+=("$name"); fi
    rm -f "$RUN/$name.pid"
  done
  # 2. every container process, by the cgroup parent all pods live under (a shim killed by
  #    kill -9 leaves its containers running, reparented: only their cgroup still finds them).
  for _ in 1 2 3 4 5; do
    pids="$(cgroup_pids | tr '\n' ' ')"
    [ -n "${pids// }" ] || break
    # shellcheck disable=SC2086
    kill_wait KILL 5 $pids || true
    stopped+=("pods")
  done
  # 3. containerd's shims and containerd (their command lines name the state dir), and any
  #    other process started for it. The shims' sockets live in containerd's fixed
  #    /run/containerd/s/, named by a hash of the socket, namespace and container id.
  local sockets=()
  for pid in $(state_pids); do
    local cmdline id ns
    cmdline="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    if grep -qx -- -id <<<"$cmdline"; then
      id="$(grep -x -A1 -- -id <<<"$cmdline" | tail -1)"
      ns="$(grep -x -A1 -- -namespace <<<"$cmdline" | tail -1)"
      sockets+=("/run/containerd/s/$(printf '%s' "$SOCK/$ns/$id" | sha256sum | cut -c1-64)")
    fi
  done
  pids="$(state_pids | tr '\n' ' ')"
  if [ -n "${pids// }" ]; then
    # shellcheck disable=SC2086
    kill_wait TERM 10 $pids || kill_wait KILL 5 $(state_pids) || true
    stopped+=("containerd+shims")
  fi
  rm -f "$RUN/containerd.pid" "${sockets[@]}"
  # 4. mounts under the node's dir: container root filesystems, sandboxes' /dev/shm, the pod
  #    network namespaces (netns_mounts_under_state_dir), the kubelet's volume mounts.
  local m n=0
  for _ in 1 2 3; do
    for m in $(node_mounts); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; n=$((n + 1)); done
    [ -z "$(node_mounts)" ] && break
  done
  [ "$n" = 0 ] || stopped+=("$n mounts")
  # 5. cgroups (empty now), the bridge and any veth left on it.
  cgroup_dirs | while read -r m; do rmdir "$m" 2>/dev/null || true; done
  for m in $(ip -o link show type veth 2>/dev/null | awk -F': ' '/master '"$BRIDGE"'/ { split($2, a, "@"); print a[1] }'); do
    ip link del "$m" 2>/dev/null || true
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE" && stopped+=("bridge $BRIDGE"); fi
  # 6. iptables: the rules in built-in chains that jump to KUBE-*, CNI-* or this node's chain,
  #    then those chains; Docker's and anyone else's rules stay.
  for bin in iptables ip6tables; do
    command -v "$bin" >/dev/null || continue
    for table in filter nat mangle raw; do
      while IFS= read -r rule; do
        [ -n "$rule" ] || continue
        # shellcheck disable=SC2086
        eval "$bin -w 5 -t $table ${rule/-A /-D }" 2>/dev/null || true
      done < <(kube_rules "$table" "$bin")
      for chain in $(kube_chains "$table" "$bin"); do "$bin" -w 5 -t "$table" -F "$chain" 2>/dev/null || true; done
      for chain in $(kube_chains "$table" "$bin"); do "$bin" -w 5 -t "$table" -X "$chain" 2>/dev/null || true; done
    done
  done
  # ipsets of a NetworkPolicy engine (kube-router's KUBE-SRC-*/KUBE-DST-*), unused once its
  # rules are gone (docs/adr/0010-real-node.md: kube-router enforces here).
  if command -v ipset >/dev/null; then
    for chain in $(ipset list -n 2>/dev/null | grep -E '^KUBE-(SRC|DST)-' || true); do ipset destroy "$chain" 2>/dev/null || true; done
  fi
  # 7. what kube-proxy changed in the kernel's settings, as it was before `up`.
  if [ -f "$NODE/sysctl.saved" ]; then
    while read -r key value; do sysctl -qw "$key=$value" 2>/dev/null || true; done <"$NODE/sysctl.saved"
    rm -f "$NODE/sysctl.saved"
  fi
  if [ -f "$OWNER_FILE" ] && [ "$(cat "$OWNER_FILE")" = "$STATE_DIR" ]; then rm -f "$OWNER_FILE"; fi
  [ ${#stopped[@]} -eq 0 ] && say "nothing of a node running in $STATE_DIR" || say "stopped ${stopped[*]}"
  local left
  if ! left="$(cmd_leftovers)"; then
    echo "$left" >&2
    say "error: left behind after down (above)"
    return 1
  fi
}

# --- up --------------------------------------------------------------------------------------------
issue_node_certs() {
  local ext
  ext="$(mktemp)"
  cert() { # cert NAME SUBJECT EKU [SAN]
    {
      echo "basicConstraints=critical,CA:FALSE"
      echo "keyUsage=critical,digitalSignature,keyEncipherment"
      echo "extendedKeyUsage=$3"
      [ -z "${4:-}" ] || echo "subjectAltName=$4"
    } >"$ext"
    openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$1.key" 2>/dev/null
    openssl req -new -key "$PKI/$1.key" -subj "$2" -out "$PKI/$1.csr" 2>/dev/null
    openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
      -days 365 -sha256 -extfile "$ext" -out "$PKI/$1.crt" 2>/dev/null
    rm -f "$PKI/$1.csr"
  }
  # The kubelet as the API sees it: Node authorization and NodeRestriction key on this name.
  cert kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  cert kubelet-serving "/O=system:nodes/CN=system:node:$NODE_NAME" serverAuth "IP:$NODE_IP,DNS:$NODE_NAME"
  # kube-proxy: the user the bootstrap ClusterRoleBinding system:node-proxier names.
  cert kube-proxy "/CN=system:kube-proxy" clientAuth
  rm -f "$ext"
}

kubeconfig_for() { # kubeconfig_for FILE CERT_NAME
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: modelfactory-control-plane
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    client-certificate: $PKI/$2.crt
    client-key: $PKI/$2.key
contexts:
- name: default
  context: {cluster: modelfactory-control-plane, user: $2}
current-context: default
EOF
  chmod 600 "$1"
}

free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))
PY
}

ctr_() { "$OUT/bin/ctr" --address "$SOCK" -n k8s.io "$@"; }
kubectl_() { "$K8S_BIN/kubectl" --kubeconfig "$STATE_DIR/kubeconfig" "$@"; }

# ctr warns on every call that cgroup v1 is deprecated (this machine has v1): that line is
# dropped, anything else it says is kept.
import_archive() {
  ctr_ images import --all-platforms "$1" 2> >(grep -v 'support for cgroup v1 is deprecated' >&2) >/dev/null
}

cmd_import() { # ARCHIVES...: OCI or docker-save archives into the node's containerd
  [ ${#args[@]} -gt 0 ] || die "import needs archives (docker save -o FILE IMAGE, or an OCI archive)"
  OUT="$(bash "$REPO/tools/node/build.sh" --out-dir)"
  local a t
  for a in "${args[@]}"; do
    t=$(date +%s)
    import_archive "$a" || die "ctr images import $a failed"
    say "imported $a in $(( $(date +%s) - t ))s"
  done
}

cmd_up() {
  [ -n "$STATE_DIR" ] || die "up needs --state-dir"
  [ "$(id -u)" = 0 ] || die "a real node needs root (containerd, runc, mounts, iptables)"
  [ -s "$STATE_DIR/ports.env" ] && [ -f "$STATE_DIR/kubeconfig" ] || die "no control plane in $STATE_DIR (tools/control-plane.sh up --real-node)"
  [ ${#SOCK} -lt 100 ] || die "state dir path too long for containerd's socket ($SOCK); use a shorter --state-dir"
  local c
  for c in iptables ip openssl mount; do command -v "$c" >/dev/null || die "$c is needed"; done
  grep -qw cgroup /proc/mounts || grep -qw cgroup2 /proc/mounts || die "no cgroup filesystem is mounted"
  if [ -f "$OWNER_FILE" ] && [ "$(cat "$OWNER_FILE")" != "$STATE_DIR" ]; then
    local other; other="$(cat "$OWNER_FILE")"
    if NODE="$other/node" state_pids | grep -q .; then
      die "a real node already runs on this machine (state dir $other); stop it: tools/control-plane.sh down --state-dir $other"
    fi
    say "clearing what a node of $other left (it is not running)"
    bash "$0" down --state-dir "$other" || true
  fi
  if running kubelet || running containerd; then die "a node already runs in $STATE_DIR"; fi
  # shellcheck disable=SC1091
  . "$STATE_DIR/ports.env"
  K8S_BIN="$(bash "$REPO/tools/k8s/build.sh" --bin-dir)"
  OUT="$(bash "$REPO/tools/node/build.sh" --out-dir)"
  local b
  for b in "$K8S_BIN/kubelet" "$K8S_BIN/kube-proxy" "$OUT/bin/containerd" "$OUT/bin/runc" "$OUT/cni/bridge" "$OUT/images/pause.tar"; do
    [ -e "$b" ] || die "$b is missing: build the node with \`make node-tools\` (bash tools/node/build.sh, as root)"
  done
  # shellcheck source=versions.env
  . "$REPO/tools/node/versions.env"
  local started; started=$(date +%s)

  # Leftovers of an earlier node in this dir (a killed run) go first; then a clean node dir.
  cmd_down >/dev/null 2>&1 || true
  rm -rf "$NODE"
  mkdir -p "$NODE"/{containerd,kubelet,cni/net.d,cni/ipam,local-path} "$RUN" "$LOGS"
  echo "$STATE_DIR" >"$OWNER_FILE"
  trap '[ "${UP_DONE:-0}" = 1 ] || { say "up failed: stopping what it started"; cmd_down || true; }' EXIT
  issue_node_certs
  kubeconfig_for "$NODE/kubelet.kubeconfig" kubelet-client
  kubeconfig_for "$NODE/kube-proxy.kubeconfig" kube-proxy
  read -r KUBELET_PORT KUBELET_HEALTHZ PROXY_METRICS PROXY_HEALTHZ <<<"$(free_ports 4)"
  printf 'KUBELET_PORT=%s\nKUBELET_HEALTHZ=%s\nPROXY_METRICS=%s\nPROXY_HEALTHZ=%s\n' \
    "$KUBELET_PORT" "$KUBELET_HEALTHZ" "$PROXY_METRICS" "$PROXY_HEALTHZ" >"$NODE/ports.env"

  # The bridge before anything: the API server advertises its address as the `kubernetes`
  # Service's endpoint, the kubelet serves on it. The CNI bridge plugin adopts it.
  ip link add "$BRIDGE" type bridge
  ip addr add "$NODE_IP/${POD_SUBNET#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Pod traffic the host routes: between pods of the bridge (also through a Service's DNAT).
  # Nothing else: pods cannot reach beyond this machine (Docker's FORWARD policy stays DROP).
  iptables -w 5 -N "$FORWARD_CHAIN"
  iptables -w 5 -A "$FORWARD_CHAIN" -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
  iptables -w 5 -I FORWARD 1 -m comment --comment "modelfactory real node" -j "$FORWARD_CHAIN"
  # kube-proxy sets route_localnet for NodePorts on 127.0.0.1; down puts it back.
  echo "net.ipv4.conf.all.route_localnet $(sysctl -n net.ipv4.conf.all.route_localnet)" >"$NODE/sysctl.saved"

  # Pods' cgroups: under one parent per hierarchy, so down finds every container process.
  local mnt
  for mnt in $(awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/mounts); do
    mkdir -p "$mnt/$CGROUP_PARENT"
    if [ -f "$mnt/cpuset.cpus" ] && [ -f "$mnt/$CGROUP_PARENT/cpuset.cpus" ]; then
      cat "$mnt/cpuset.cpus" >"$mnt/$CGROUP_PARENT/cpuset.cpus"
      cat "$mnt/cpuset.mems" >"$mnt/$CGROUP_PARENT/cpuset.mems"
    fi
  done

  # --- containerd ---
  cat >"$NODE/cni/net.d/10-modelfactory.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "modelfactory-node",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$NODE/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  cat >"$NODE/containerd.toml" <<EOF
# containerd for the real node of $STATE_DIR (tools/node/node.sh); Docker's stays apart.
version = 3
root = "$NODE/containerd/root"
state = "$NODE/containerd/state"
temp = "$NODE/containerd/tmp"
plugin_dir = ""
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE/containerd/opt"

[plugins."io.containerd.cri.v1.runtime"]
  # This sandbox's root lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below
  # containerd's own, so containers get at least containerd's (docs/adr/0010-real-node.md).
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = false
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$OUT/bin/runc"
        Root = "$NODE/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$OUT/cni"]
    conf_dir = "$NODE/cni/net.d"
    max_conf_num = 1

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "modelfactory.local/pause:$PAUSE_VERSION"

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
  # The shim is found on PATH; runc by its absolute path (BinaryName).
  start containerd env PATH="$OUT/bin:$PATH" "$OUT/bin/containerd" --config "$NODE/containerd.toml" --log-level warn
  wait_for containerd "its socket $SOCK" ctr_ version
  local t; t=$(date +%s)
  local images=("$OUT/images/pause.tar" "$OUT/images/coredns.tar" "$OUT/images/local-path-provisioner.tar" "$OUT/images/local-path-helper.tar")
  for b in "${images[@]}"; do import_archive "$b" || die "ctr images import $b failed"; done
  say "containerd $CONTAINERD_VERSION up; imported pause, CoreDNS, local-path images in $(( $(date +%s) - t ))s"

  # --- kubelet ---
  cat >"$NODE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 (kubelet v1.36 refuses it unless told) and no systemd as PID 1.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_PARENT
containerRuntimeEndpoint: unix://$SOCK
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
clusterDomain: cluster.local
clusterDNS: [$CLUSTER_DNS_IP]
resolvConf: /etc/resolv.conf
failSwapOn: false
rotateCertificates: false
serverTLSBootstrap: false
registerNode: true
# Disk: the host's filesystem is shared with everything else on it; evict only when nearly full.
evictionHard:
  nodefs.available: "2%"
  imagefs.available: "2%"
  memory.available: "200Mi"
imageGCHighThresholdPercent: 98
imageGCLowThresholdPercent: 95
# Images are imported, never pulled (no registry answers here).
serializeImagePulls: false
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 5s
EOF
  start kubelet "$K8S_BIN/kubelet" \
    --config="$NODE/kubelet.yaml" \
    --kubeconfig="$NODE/kubelet.kubeconfig" \
    --root-dir="$NODE/kubelet" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
    --node-labels="modelfactory.io/node=real" \
    --v=1

  # --- kube-proxy ---
  cat >"$NODE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $NODE/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_SUBNET
# NodePorts answer on 127.0.0.1 only: tests reach Services there, never on other addresses.
nodePortAddresses: ["127.0.0.1/32"]
metricsBindAddress: 127.0.0.1:$PROXY_METRICS
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ
iptables:
  localhostNodePorts: true
  minSyncPeriod: 1s
  syncPeriod: 30s
# Leave the machine's conntrack settings alone (0: do not change).
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
  start kube-proxy "$K8S_BIN/kube-proxy" --config="$NODE/kube-proxy.yaml" --v=1

  wait_for kubelet "/healthz on 127.0.0.1:$KUBELET_HEALTHZ" curl -fsS --max-time 2 "http://127.0.0.1:$KUBELET_HEALTHZ/healthz"
  wait_for kube-proxy "/healthz on 127.0.0.1:$PROXY_HEALTHZ" curl -fsS --max-time 2 "http://127.0.0.1:$PROXY_HEALTHZ/healthz"
  wait_for kubelet "node $NODE_NAME Ready" kubectl_ wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
  say "node $NODE_NAME Ready in $(( $(date +%s) - started ))s"

  # --- CoreDNS and the local-path provisioner ---
  sed -e "s|@IMAGE@|modelfactory.local/coredns:$COREDNS_VERSION|" -e "s|@CLUSTER_DNS_IP@|$CLUSTER_DNS_IP|" \
    "$REPO/tools/node/manifests/coredns.yaml" | kubectl_ apply -f - >/dev/null
  sed -e "s|@PROVISIONER_IMAGE@|modelfactory.local/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION|" \
    -e "s|@HELPER_IMAGE@|modelfactory.local/local-path-helper:busybox-static|" -e "s|@PATH@|$NODE/local-path|" \
    "$REPO/tools/node/manifests/local-path-storage.yaml" | kubectl_ apply -f - >/dev/null
  wait_for kubelet "CoreDNS available" kubectl_ -n kube-system wait --for=condition=Available deployment/coredns --timeout=5s
  wait_for kubelet "local-path provisioner available" kubectl_ -n local-path-storage wait --for=condition=Available deployment/local-path-provisioner --timeout=5s
  UP_DONE=1
  say "up in $(( $(date +%s) - started ))s: node $NODE_NAME ($NODE_IP, pods $POD_SUBNET), containerd $CONTAINERD_VERSION, CoreDNS at $CLUSTER_DNS_IP, StorageClass standard (local-path)"
}

cmd_status() {
  local name pid
  for name in containerd kubelet kube-proxy; do
    pid="$(pid_of "$name")"
    if is_ours "$pid"; then printf '%-24s running (pid %s)\n' "$name" "$pid"; else printf '%-24s not running\n' "$name"; fi
  done
  if [ -S "$SOCK" ]; then
    OUT="$(bash "$REPO/tools/node/build.sh" --out-dir)"
    printf '%-24s %s\n' "containers (k8s.io)" "$(ctr_ containers ls -q 2>/dev/null | wc -l)"
  fi
}

case "$command" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  import) cmd_import ;;
  leftovers) cmd_leftovers ;;
  *) die "usage: $0 up|down|status|import|leftovers --state-dir DIR" ;;
esac
