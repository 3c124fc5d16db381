#!/usr/bin/env bash
# Brings up modelfactory on a local kind cluster:
#   1. the cluster from kind-config.yaml (one node, NodePorts mapped to localhost),
#   2. the project's images, built and `kind load`ed (never pulled),
#   3. Kubeflow Pipelines from its pinned upstream release manifests (skipped, saying so,
#      where github.com cannot be reached),
#   4. charts/modelfactory with values-kind.yaml,
# then prints the URLs. Re-running it is safe: each step skips or upgrades.
#
# Needs docker, kind, kubectl and helm (tools/install-tools.sh puts helm and
# kubectl in .tools/bin), and network access to the registries the KFP
# manifests pull from.
# Env: CLUSTER_NAME (modelfactory), NAMESPACE (modelfactory), RELEASE
# (modelfactory), KFP_VERSION, BASE_IMAGE (for the image build), SKIP_BUILD=1,
# SKIP_KFP=1, TIMEOUT (helm/kubectl waits, default 15m).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/bin:$PATH"

CLUSTER_NAME="${CLUSTER_NAME:-modelfactory}"
NAMESPACE="${NAMESPACE:-modelfactory}"
RELEASE="${RELEASE:-modelfactory}"
# The KFP backend release that matches the kfp SDK pinned in pyproject.toml (2.17).
KFP_VERSION="${KFP_VERSION:-2.17.0}"
KFP_NAMESPACE=kubeflow
KFP_UI_NODE_PORT=30080          # mapped to localhost:30080 by kind-config.yaml
TIMEOUT="${TIMEOUT:-15m}"
VERSION="$(awk -F'"' '/^version = /{print $2; exit}' pyproject.toml)"
IMAGES=("modelfactory-components:$VERSION" "modelfactory-serving:$VERSION")

step() { printf '\n==> %s\n' "$*"; }
need() { command -v "$1" >/dev/null || { echo "error: $1 not found. $2" >&2; exit 1; }; }

need docker "Install Docker and start it."
need kind "Install kind: https://kind.sigs.k8s.io/docs/user/quick-start/"
need kubectl "Run tools/install-tools.sh (installs it into .tools/bin)."
need helm "Run tools/install-tools.sh (installs it into .tools/bin)."
docker info >/dev/null 2>&1 || { echo "error: the Docker engine does not answer" >&2; exit 1; }

step "cluster $CLUSTER_NAME"
if kind get clusters 2>/dev/null | grep -x "$CLUSTER_NAME" >/dev/null; then
  echo "exists; reusing it"
else
  kind create cluster --name "$CLUSTER_NAME" --config kind-config.yaml --wait 5m
fi
kubectl config use-context "kind-$CLUSTER_NAME" >/dev/null
KUBECTL=(kubectl --context "kind-$CLUSTER_NAME")

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  step "images ${IMAGES[*]}"
  bash tools/build-images.sh
fi
step "kind load"
for image in "${IMAGES[@]}"; do
  kind load docker-image "$image" --name "$CLUSTER_NAME"
done

# KFP's manifests come from github.com. Rendered first, so a machine that cannot reach them
# (KFP's backend cannot be built from what it can reach either, ADR 0010) still gets the
# chart, and is told that pipelines run with the kfp local runner (`modelfactory run`).
kfp_ui="http://localhost:$KFP_UI_NODE_PORT"
if [ "${SKIP_KFP:-0}" = 1 ]; then
  kfp_ui="not installed (SKIP_KFP=1)"
else
  step "Kubeflow Pipelines $KFP_VERSION"
  kfp_manifests="$(mktemp -d)"
  trap 'rm -rf "$kfp_manifests"' EXIT
  kfp_source="github.com/kubeflow/pipelines/manifests/kustomize"
  if "${KUBECTL[@]}" kustomize "$kfp_source/cluster-scoped-resources?ref=$KFP_VERSION" \
        >"$kfp_manifests/cluster.yaml" 2>"$kfp_manifests/error" &&
     "${KUBECTL[@]}" kustomize "$kfp_source/env/platform-agnostic?ref=$KFP_VERSION" \
        >"$kfp_manifests/platform.yaml" 2>"$kfp_manifests/error"; then
    "${KUBECTL[@]}" apply -f "$kfp_manifests/cluster.yaml"
    "${KUBECTL[@]}" wait --for condition=established --timeout=120s crd/applications.app.k8s.io
    "${KUBECTL[@]}" apply -f "$kfp_manifests/platform.yaml"
    # The UI on a fixed NodePort, which kind-config.yaml publishes on localhost.
    "${KUBECTL[@]}" -n "$KFP_NAMESPACE" patch service ml-pipeline-ui --type merge \
      -p '{"spec":{"type":"NodePort","ports":[{"port":80,"targetPort":3000,"protocol":"TCP","nodePort":30080}]}}'
    echo "waiting for the KFP deployments (first start pulls many images; up to $TIMEOUT)"
    "${KUBECTL[@]}" -n "$KFP_NAMESPACE" wait --for=condition=Available deployment --all --timeout="$TIMEOUT"
  else
    kfp_ui="not installed: its manifests could not be read from $kfp_source ($(tr -s '\n' ' ' <"$kfp_manifests/error"))"
    echo "KFP NOT INSTALLED: $kfp_source@$KFP_VERSION cannot be reached from this machine." >&2
    echo "  Pipelines still run with the kfp local runner: .venv/bin/modelfactory run <pipeline>" >&2
  fi
fi

step "helm upgrade --install $RELEASE (namespace $NAMESPACE)"
# No --wait: the serving Deployments turn ready only once a model version holds
# the champion alias, i.e. after the first pipeline run. Wait for the registry instead.
helm upgrade --install "$RELEASE" charts/modelfactory \
  --kube-context "kind-$CLUSTER_NAME" \
  --namespace "$NAMESPACE" --create-namespace \
  -f charts/modelfactory/values-kind.yaml
# The chart's object prefix: the release name alone when it contains "modelfactory".
case "$RELEASE" in *modelfactory*) FULLNAME="$RELEASE" ;; *) FULLNAME="$RELEASE-modelfactory" ;; esac
"${KUBECTL[@]}" -n "$NAMESPACE" rollout status "statefulset/$FULLNAME-postgresql" --timeout="$TIMEOUT"
"${KUBECTL[@]}" -n "$NAMESPACE" rollout status "deployment/$FULLNAME-mlflow" --timeout="$TIMEOUT"

cat <<MSG

modelfactory is up on kind cluster "$CLUSTER_NAME":
  Kubeflow Pipelines UI   $kfp_ui
  MLflow UI and API       http://localhost:30500
  bank-marketing HTTP     http://localhost:30300   (ready after the first pipeline run promotes a champion)
  bank-marketing gRPC     localhost:30801
Pipelines running in namespace $KFP_NAMESPACE reach MLflow at
  http://$FULLNAME-mlflow.$NAMESPACE.svc.cluster.local:5000
Check it:   helm test $RELEASE -n $NAMESPACE
Remove it:  tools/kind-down.sh
MSG
