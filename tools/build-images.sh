#!/usr/bin/env bash
# Builds the project's images: modelfactory-components and modelfactory-serving.
#
#   tools/build-images.sh                     # FROM python:3.11-slim, pip from the index
#   BASE_IMAGE=modelfactory/python:3.11-bookworm WHEELHOUSE=1 tools/build-images.sh
#
# WHEELHOUSE=1 is for machines whose containers cannot reach a package index
# (no registry, a TLS-intercepting proxy): the host builds every wheel into
# build/wheelhouse, serves that folder on 127.0.0.1 for the duration of the
# build, and the images' build stage installs with --no-index from it (the
# build runs with --network host so it sees that loopback server). No wheel
# and no pip setting reaches the final image.
#
# Env: BASE_IMAGE, VERSION (tag, default from pyproject), IMAGES ("components
# serving"), WHEELHOUSE (0/1), WHEELHOUSE_PORT (default 8765), PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
BASE_IMAGE="${BASE_IMAGE:-python:3.11-slim}"
VERSION="${VERSION:-$(awk -F'"' '/^version = /{print $2; exit}' pyproject.toml)}"
IMAGES="${IMAGES:-components serving}"
WHEELHOUSE="${WHEELHOUSE:-0}"
WHEELHOUSE_PORT="${WHEELHOUSE_PORT:-8765}"

command -v docker >/dev/null || { echo "error: docker not found" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "error: no Docker engine answers (is dockerd running?)" >&2; exit 1; }

build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

if [ "$WHEELHOUSE" = 1 ]; then
  start=$(date +%s)
  mkdir -p build/wheelhouse
  echo "building wheels for .[postgres] into build/wheelhouse"
  "$PYTHON" -m pip wheel --quiet --constraint requirements/constraints.txt --find-links build/wheelhouse \
    --wheel-dir build/wheelhouse ".[postgres]" "setuptools>=69" wheel
  echo "wheelhouse ready in $(( $(date +%s) - start ))s ($(du -sh build/wheelhouse | cut -f1))"
  "$PYTHON" -m http.server --bind 127.0.0.1 --directory build/wheelhouse "$WHEELHOUSE_PORT" >/dev/null 2>&1 &
  server_pid=$!
  for _ in $(seq 50); do
    "$PYTHON" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$WHEELHOUSE_PORT/', timeout=1)" 2>/dev/null && break
    sleep 0.2
  done
  build_args+=(--network host
               --build-arg "PIP_FIND_LINKS=http://127.0.0.1:$WHEELHOUSE_PORT/"
               --build-arg "PIP_NO_INDEX=1")
fi

for image in $IMAGES; do
  tag="modelfactory-$image:$VERSION"
  start=$(date +%s)
  echo "building $tag FROM $BASE_IMAGE"
  docker build "${build_args[@]}" -f "docker/$image.Dockerfile" -t "$tag" .
  size=$(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')
  echo "built $tag in $(( $(date +%s) - start ))s, $size"
done
