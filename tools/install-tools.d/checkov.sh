#!/usr/bin/env bash
# Installs checkov (the independent scanner the chart tests run over the rendered chart)
# into its own virtual environment, .tools/checkov, with a launcher at .tools/bin/checkov.
#
# Not in pyproject's dev extra: checkov 3.3 resolves together with the pinned product
# dependencies, but only by moving packaging (26 -> 23.2), python-dateutil (4.0 -> 2.9),
# importlib-metadata, cachetools, schema and tabulate back, so the tests would run on other
# versions than `pip install modelfactory` gives a user. A tool of its own avoids that.
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."

CHECKOV_VERSION="3.3.30"
VENV="$PWD/.tools/checkov"
BIN_DIR="$PWD/.tools/bin"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3

if [ -x "$VENV/bin/checkov" ] && [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("checkov"))' 2>/dev/null)" = "$CHECKOV_VERSION" ]; then
  echo "checkov $CHECKOV_VERSION already in $VENV"
else
  echo "installing checkov==$CHECKOV_VERSION from PyPI into $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  if [ -x .venv/bin/uv ]; then
    .venv/bin/uv pip install --python "$VENV/bin/python" -q "checkov==$CHECKOV_VERSION"
  else
    "$VENV/bin/pip" install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION"
  fi
fi
mkdir -p "$BIN_DIR"
ln -sfn ../checkov/bin/checkov "$BIN_DIR/checkov"
