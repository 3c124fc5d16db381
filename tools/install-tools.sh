#!/usr/bin/env bash
# Installs the non-Python tools the tests use into .tools/bin. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tools/bin
for script in tools/install-*.d/*.sh; do
  [ -e "$script" ] || continue
  bash "$script"
done
