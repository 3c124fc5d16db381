#!/usr/bin/env bash
# Deletes the kind cluster tools/kind-up.sh made (with everything in it,
# volumes included). Env: CLUSTER_NAME (modelfactory).
set -euo pipefail
CLUSTER_NAME="${CLUSTER_NAME:-modelfactory}"
command -v kind >/dev/null || { echo "error: kind not found" >&2; exit 1; }
if kind get clusters 2>/dev/null | grep -x "$CLUSTER_NAME" >/dev/null; then
  kind delete cluster --name "$CLUSTER_NAME"
else
  echo "no kind cluster named $CLUSTER_NAME"
fi
