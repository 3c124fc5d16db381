#!/usr/bin/env bash
# A real Kubernetes control plane on this machine, for tests: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, and kwok, whose fake nodes take the pods the
# scheduler places there and move them through their lifecycle (Running/Ready, Jobs'
# pods Succeeded, deletion) and bind PersistentVolumeClaims of the default StorageClass.
# The binaries come from tools/k8s/build.sh (`make k8s-tools`).
#
#   tools/control-plane.sh up     [--state-dir DIR] [--nodes N]   start; prints the kubeconfig
#   tools/control-plane.sh up     --real-node [--state-dir DIR]   the same with one real node
#                                 instead of kwok's (tools/node/node.sh; root; as root `make
#                                 node-tools` builds its parts)
#   tools/control-plane.sh down   [--state-dir DIR]               stop what `up` started there
#   tools/control-plane.sh status [--state-dir DIR]               which processes run, /readyz, nodes
#
# What is real: the API server with RBAC and Node authorization, the PodSecurity and
# NodeRestriction admission plugins, ServiceAccount token signing, every controller of
# kube-controller-manager (garbage collection, Deployments, StatefulSets, Jobs,
# EndpointSlices, PV binding, CSR signing), the scheduler. What is not: no container
# ever runs (kwok fakes the kubelet), so images, probes, networking, DNS, NetworkPolicy
# enforcement and volume contents are out of reach. With --real-node they are not: a kubelet,
# containerd, kube-proxy, CoreDNS and a local-path provisioner run pods for real
# (docs/adr/0010-real-node.md), and kwok does not run.
#
# Everything lives in the state dir (default .tools/control-plane, or $CONTROL_PLANE_DIR):
#   kubeconfig          admin access (client certificate, group system:masters)
#   pki/                CA, serving and client certificates, the service-account key (openssl)
#   logs/<component>.log, logs/audit.log (service accounts' requests), run/<component>.pid,
#   ports.env, etcd/ (data)
# `up` starts an empty cluster (it clears the data of a previous run in the same dir);
# `down` stops exactly the processes whose pid files are in the dir, after checking that
# each pid still belongs to a process started for this state dir, and leaves the logs.
# Ports are picked free at `up`, so several state dirs run side by side.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1           # the first address of SERVICE_CIDR: the `kubernetes` Service
POD_CIDR=10.244.0.0/16         # kwok hands fake pod IPs from it
WAIT="${CONTROL_PLANE_WAIT:-90}"

die() { echo "control-plane: error: $*" >&2; exit 1; }
say() { echo "control-plane: $*" >&2; }

command="${1:-}"
[ $# -gt 0 ] && shift
STATE_DIR="${CONTROL_PLANE_DIR:-$REPO/.tools/control-plane}"
NODES="${CONTROL_PLANE_NODES:-2}"
REAL_NODE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --state-dir) STATE_DIR="$2"; shift 2 ;;
    --state-dir=*) STATE_DIR="${1#*=}"; shift ;;
    --nodes) NODES="$2"; shift 2 ;;
    --nodes=*) NODES="${1#*=}"; shift ;;
    --real-node) REAL_NODE=1; shift ;;
    *) die "unknown argument '$1' (usage: $0 up|down|status [--state-dir DIR] [--nodes N] [--real-node])" ;;
  esac
done
mkdir -p "$STATE_DIR"
STATE_DIR="$(cd "$STATE_DIR" && pwd)"
PKI="$STATE_DIR/pki" LOGS="$STATE_DIR/logs" RUN="$STATE_DIR/run"
KUBECONFIG_FILE="$STATE_DIR/kubeconfig"
BIN_DIR="${K8S_BIN_DIR:-$(bash "$REPO/tools/k8s/build.sh" --bin-dir)}"
NODE_SCRIPT="$REPO/tools/node/node.sh"
REAL_NODE_MARK="$STATE_DIR/real-node"   # present while the dir's control plane has a real node
NODE_IP=10.244.0.1                      # tools/node/node.sh: the node's bridge address

# --- processes -----------------------------------------------------------------------------
pid_of() { cat "$RUN/$1.pid" 2>/dev/null || true; }
# A pid is ours only if that process was started for this state dir (every component's
# command line names a file in it): a pid file left over from a crash may name a pid that
# has since been given to an unrelated process.
is_ours() {
  local pid="$1"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$STATE_DIR/"
}
running() { is_ours "$(pid_of "$1")"; }

start() { # start NAME ARGS... : in its own session (a Ctrl-C aimed at the caller does not reach it)
  local name="$1"; shift
  # The wrapper writes its own pid and execs the binary, so the pid file names the component.
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$RUN/$name.pid" "$BIN_DIR/$name" "$@" \
    >>"$LOGS/$name.log" 2>&1 </dev/null &
  for _ in $(seq 50); do [ -s "$RUN/$name.pid" ] && return 0; sleep 0.1; done
  die "$name did not start (see $LOGS/$name.log)"
}

wait_for() { # wait_for NAME DESCRIPTION COMMAND...: until COMMAND succeeds, the process dies, or WAIT s
  local name="$1" what="$2" deadline=$(( $(date +%s) + WAIT )); shift 2
  until "$@" >/dev/null 2>&1; do
    running "$name" || { tail -n 30 "$LOGS/$name.log" >&2; die "$name exited before $what (log: $LOGS/$name.log)"; }
    [ "$(date +%s)" -lt "$deadline" ] || { tail -n 30 "$LOGS/$name.log" >&2; die "$name: no $what after ${WAIT}s (log: $LOGS/$name.log)"; }
    sleep 0.3
  done
}

stop_all() {
  local name pid i stopped=()
  # The real node first (it needs nothing of the control plane to stop: after a kill -9 of
  # anything it still finds every process, mount, link and rule by the state dir).
  if [ -e "$REAL_NODE_MARK" ]; then
    bash "$NODE_SCRIPT" down --state-dir "$STATE_DIR" || NODE_DOWN_FAILED=1
    rm -f "$REAL_NODE_MARK"
  fi
  for (( i=${#COMPONENTS[@]}-1; i>=0; i-- )); do  # reverse order: kwok first, etcd last
    name="${COMPONENTS[$i]}"
    pid="$(pid_of "$name")"
    [ -n "$pid" ] || continue
    if is_ours "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 100); do is_ours "$pid" || break; sleep 0.1; done
      if is_ours "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
      stopped+=("$name($pid)")
    fi
    rm -f "$RUN/$name.pid"
  done
  [ ${#stopped[@]} -eq 0 ] && say "nothing running in $STATE_DIR" || say "stopped ${stopped[*]}"
  [ "${NODE_DOWN_FAILED:-0}" = 0 ] || die "the real node left something behind (above)"
}

# --- certificates and kubeconfigs ------------------------------------------------------------
issue() { # issue NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]: an EC key, a cert signed by $CA_NAME (ca)
  local name="$1" subject="$2" eku="$3" san="${4:-}" ca="${CA_NAME:-ca}" ext
  ext="$(mktemp)"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$ext"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$ext" "$PKI/$name.csr"
}

make_pki() {
  command -v openssl >/dev/null || die "openssl is needed for the certificates (apt-get install openssl)"
  rm -rf "$PKI"; mkdir -p "$PKI"; chmod 700 "$PKI"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=modelfactory-control-plane-ca" -days 365 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/ca.crt" 2>/dev/null
  issue apiserver "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # The admin (and kwok, which plays every node's kubelet) are cluster admins through the
  # system:masters group; the controller manager and the scheduler get exactly the RBAC
  # roles Kubernetes bootstraps for their user names.
  issue admin "/O=system:masters/CN=modelfactory-admin" clientAuth
  issue kube-controller-manager "/CN=system:kube-controller-manager" clientAuth
  issue kube-scheduler "/CN=system:kube-scheduler" clientAuth
  issue kwok "/O=system:masters/CN=kwok-controller" serverAuth,clientAuth "IP:127.0.0.1,DNS:localhost"
  # The API server's client certificate towards kubelets (logs, exec, port-forward).
  issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  # The aggregation layer's front proxy: its own CA, so that only the API server's proxy
  # client can assert a user through the X-Remote-* headers to aggregated API servers.
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/front-proxy-ca.key" 2>/dev/null
  openssl req -x509 -new -key "$PKI/front-proxy-ca.key" -subj "/CN=modelfactory-front-proxy-ca" -days 365 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/front-proxy-ca.crt" 2>/dev/null
  CA_NAME=front-proxy-ca issue front-proxy-client "/CN=front-proxy-client" clientAuth
  # Signs ServiceAccount tokens (API server) and verifies them (API server, controller manager).
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/sa.key" 2>/dev/null
  openssl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}

write_kubeconfig() { # write_kubeconfig FILE CERT_NAME
  local file="$1" user="$2"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: modelfactory-control-plane
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/$user.crt")
    client-key-data: $(base64 -w0 <"$PKI/$user.key")
contexts:
- name: modelfactory-control-plane
  context:
    cluster: modelfactory-control-plane
    user: $user
current-context: modelfactory-control-plane
EOF
  chmod 600 "$file"
}

free_ports() { # free_ports N: N distinct TCP ports free on 127.0.0.1 right now
  python3 - "$1" <<'PY'
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # held until all are picked, so the kernel gives distinct ports
    held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))
PY
}

kubectl_() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
api_ready() { kubectl_ get --raw=/readyz; }
healthy() { curl -fsS --max-time 2 "$@"; }

# --- commands -------------------------------------------------------------------------------------
cmd_up() {
  local started name all=1 any=0 up_components=("${COMPONENTS[@]}")
  started=$(date +%s)
  # With a real node, kwok does not run: no fake node may take the pods meant to run.
  [ "$REAL_NODE" = 0 ] || up_components=("${COMPONENTS[@]/kwok}")
  for name in "${up_components[@]}"; do
    [ -n "$name" ] || continue
    if running "$name"; then any=1; else all=0; fi
  done
  if [ "$any" = 1 ]; then
    [ "$all" = 1 ] || die "a control plane in $STATE_DIR is partly running; run: $0 down --state-dir $STATE_DIR"
    say "already running in $STATE_DIR"
    echo "$KUBECONFIG_FILE"
    return 0
  fi
  for name in "${up_components[@]}" kubectl; do
    [ -n "$name" ] || continue
    [ -x "$BIN_DIR/$name" ] || die "$BIN_DIR/$name is missing: build the binaries with \`make k8s-tools\` (bash tools/k8s/build.sh)"
  done
  command -v curl >/dev/null || die "curl is needed for the health checks"

  rm -rf "$STATE_DIR/etcd" "$RUN" "$LOGS" "$STATE_DIR/kwok"
  mkdir -p "$RUN" "$LOGS" "$STATE_DIR/kwok"
  # A start that fails half-way stops what it started (the logs stay).
  trap '[ "${UP_DONE:-0}" = 1 ] || { say "up failed: stopping what it started"; stop_all; }' EXIT
  make_pki
  read -r ETCD_PORT ETCD_PEER_PORT API_PORT KCM_PORT SCHEDULER_PORT KWOK_PORT <<<"$(free_ports 6)"
  cat >"$STATE_DIR/ports.env" <<EOF
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
API_PORT=$API_PORT
KCM_PORT=$KCM_PORT
SCHEDULER_PORT=$SCHEDULER_PORT
KWOK_PORT=$KWOK_PORT
EOF
  # The address the `kubernetes` Service's endpoints name. It must not be a loopback address
  # (the API server then cannot publish them); nothing connects to it, the API listens on
  # 127.0.0.1 only.
  ADVERTISE_IP="$(hostname -I 2>/dev/null | awk '{print $1}')"
  ADVERTISE_IP="${ADVERTISE_IP:-10.255.255.254}"
  local bind_ip=127.0.0.1 node_flags=()
  if [ "$REAL_NODE" = 1 ]; then
    # Pods reach the API through the `kubernetes` Service, whose endpoint is the advertised
    # address: the node's bridge address, on this machine. The API then listens on all of the
    # machine's addresses (the bridge exists only once the node is up); clients outside pods
    # use 127.0.0.1 as before. It reaches the kubelet with its own client certificate and
    # checks the kubelet's serving certificate against the cluster CA.
    ADVERTISE_IP="$NODE_IP" bind_ip=0.0.0.0
    node_flags=(
      --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt"
      --kubelet-client-key="$PKI/apiserver-kubelet-client.key"
      --kubelet-certificate-authority="$PKI/ca.crt"
      --kubelet-preferred-address-types=InternalIP
    )
  fi
  write_kubeconfig "$KUBECONFIG_FILE" admin
  for name in kube-controller-manager kube-scheduler kwok; do
    write_kubeconfig "$STATE_DIR/$name.kubeconfig" "$name"
  done

  # etcd: plain HTTP on loopback only (the API server is its only client); no fsync, since
  # the data of a test cluster need not survive a power cut.
  start etcd \
    --name=control-plane --data-dir="$STATE_DIR/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="control-plane=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state=new \
    --auto-compaction-retention=1 --unsafe-no-fsync --log-level=warn
  wait_for etcd "/health on :$ETCD_PORT" healthy "http://127.0.0.1:$ETCD_PORT/health"

  # Requests of service accounts, at Metadata level (who, verb, resource; no bodies): the
  # operator's tests compare the verbs its Role grants with the verbs it used.
  cat >"$STATE_DIR/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
POLICY
  start kube-apiserver \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --audit-policy-file="$STATE_DIR/audit-policy.yaml" --audit-log-path="$LOGS/audit.log" \
    --audit-log-format=json --audit-log-maxsize=100 \
    --bind-address="$bind_ip" --advertise-address="$ADVERTISE_IP" --secure-port="$API_PORT" \
    ${node_flags[@]+"${node_flags[@]}"} \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction,PodSecurity \
    --allow-privileged=true \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --profiling=false
  wait_for kube-apiserver "/readyz on :$API_PORT" api_ready

  start kube-controller-manager \
    --kubeconfig="$STATE_DIR/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE_DIR/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE_DIR/kube-controller-manager.kubeconfig" \
    --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
    --leader-elect=false \
    --controllers='*,bootstrapsigner,tokencleaner' \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --allocate-node-cidrs=false \
    --profiling=false
  start kube-scheduler \
    --kubeconfig="$STATE_DIR/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$STATE_DIR/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE_DIR/kube-scheduler.kubeconfig" \
    --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" \
    --leader-elect=false \
    --profiling=false

  if [ "$REAL_NODE" = 1 ]; then
    wait_for kube-controller-manager "/healthz on :$KCM_PORT" healthy -k "https://127.0.0.1:$KCM_PORT/healthz"
    wait_for kube-scheduler "/healthz on :$SCHEDULER_PORT" healthy -k "https://127.0.0.1:$SCHEDULER_PORT/healthz"
    wait_for kube-controller-manager "ServiceAccount default/default" kubectl_ -n default get serviceaccount default
    local cp_seconds=$(( $(date +%s) - started ))
    touch "$REAL_NODE_MARK"
    bash "$NODE_SCRIPT" up --state-dir "$STATE_DIR" || die "the real node did not come up (logs: $LOGS)"
    UP_DONE=1
    say "up in $(( $(date +%s) - started ))s (control plane ${cp_seconds}s): Kubernetes $("$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_FILE" version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'), one real node, API https://127.0.0.1:$API_PORT"
    say "  export KUBECONFIG=$KUBECONFIG_FILE    (logs: $LOGS; stop: $0 down --state-dir $STATE_DIR)"
    echo "$KUBECONFIG_FILE"
    return 0
  fi

  # kwok's stages from the pinned kwok module (tools/k8s/build.sh copies them beside the binaries).
  local stages=() stage
  for stage in "$BIN_DIR"/../kwok-stages/*.yaml; do
    [ "$(basename "$stage")" = storage-class.yaml ] || stages+=(--config="$stage")
  done
  [ ${#stages[@]} -gt 0 ] || die "no kwok stages in $BIN_DIR/../kwok-stages (rebuild: make k8s-tools)"
  # `--config` replaces kwok's default (~/.kwok/kwok.yaml), so a user's own file is never read.
  start kwok \
    --kubeconfig="$STATE_DIR/kwok.kubeconfig" \
    "${stages[@]}" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr="$POD_CIDR" --node-ip=127.0.0.1 \
    --tls-cert-file="$PKI/kwok.crt" --tls-private-key-file="$PKI/kwok.key" \
    --server-address="127.0.0.1:$KWOK_PORT" --node-port="$KWOK_PORT" \
    --node-lease-duration-seconds=40

  wait_for kube-controller-manager "/healthz on :$KCM_PORT" healthy -k "https://127.0.0.1:$KCM_PORT/healthz"
  wait_for kube-scheduler "/healthz on :$SCHEDULER_PORT" healthy -k "https://127.0.0.1:$SCHEDULER_PORT/healthz"
  wait_for kwok "/healthz on :$KWOK_PORT" healthy -k "https://127.0.0.1:$KWOK_PORT/healthz"

  # Fake nodes (what `kwokctl scale node` creates) and the StorageClass kwok provisions for.
  local i nodes=""
  for (( i=0; i<NODES; i++ )); do
    nodes+="---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: \"0\"
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: \"\"
    type: kwok
status:
  allocatable: {cpu: \"32\", memory: 256Gi, pods: \"110\", ephemeral-storage: 1Ti}
  capacity: {cpu: \"32\", memory: 256Gi, pods: \"110\", ephemeral-storage: 1Ti}
"
  done
  printf '%s' "$nodes" | kubectl_ apply -f - >/dev/null
  kubectl_ apply -f "$BIN_DIR/../kwok-stages/storage-class.yaml" >/dev/null
  wait_for kwok "Ready nodes" kubectl_ wait --for=condition=Ready nodes --all --timeout=5s
  # Pods need their namespace's ServiceAccount; the controller manager makes `default` ones.
  wait_for kube-controller-manager "ServiceAccount default/default" kubectl_ -n default get serviceaccount default

  UP_DONE=1
  say "up in $(( $(date +%s) - started ))s: Kubernetes $("$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_FILE" version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'), $NODES kwok node(s), API https://127.0.0.1:$API_PORT"
  say "  export KUBECONFIG=$KUBECONFIG_FILE    (logs: $LOGS; stop: $0 down --state-dir $STATE_DIR)"
  echo "$KUBECONFIG_FILE"
}

cmd_status() {
  local name pid rc=0
  for name in "${COMPONENTS[@]}"; do
    [ "$name" != kwok ] || [ ! -e "$REAL_NODE_MARK" ] || continue
    pid="$(pid_of "$name")"
    if is_ours "$pid"; then printf '%-24s running (pid %s)\n' "$name" "$pid"
    else printf '%-24s not running\n' "$name"; rc=1; fi
  done
  if [ -f "$KUBECONFIG_FILE" ] && running kube-apiserver; then
    printf '%-24s %s\n' "kubeconfig" "$KUBECONFIG_FILE"
    printf '%-24s %s\n' "/readyz" "$(api_ready 2>&1 || true)"
    kubectl_ get nodes 2>&1 || true
  fi
  if [ -e "$REAL_NODE_MARK" ]; then bash "$NODE_SCRIPT" status --state-dir "$STATE_DIR" || rc=1; fi
  return "$rc"
}

case "$command" in
  up) cmd_up ;;
  down) stop_all ;;
  status) cmd_status ;;
  *) die "usage: $0 up|down|status [--state-dir DIR] [--nodes N]" ;;
esac
