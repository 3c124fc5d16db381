#!/usr/bin/env bash
# Makes the project's container images ready on this machine, for the tests
# under tests/containers (and for `make kind-up`):
#   1. the Docker engine and debootstrap from Debian's packages (apt-get), if missing;
#   2. dockerd in the background, if no engine answers (log and pid under $STATE_DIR);
#   3. the base image modelfactory/python:3.11-bookworm (tools/build-base-image.sh),
#      because no container registry can be reached to pull python:3.11-slim;
#   4. modelfactory-components and modelfactory-serving on it (tools/build-images.sh,
#      wheels built once on the host and served to the build: build containers
#      cannot reach PyPI).
# Idempotent: every image carries a label with a hash of the inputs it was built
# from (scripts, Dockerfiles, pyproject, the package sources, the base image's
# id); an image whose label matches is reused, so a rerun without changes takes
# seconds. Runs as root in a fresh clone with only apt and PyPI reachable.
#
#   .ci/containers.sh          # everything above
#   .ci/containers.sh stop     # stop the dockerd this script started (by its pid file)
#   .ci/containers.sh status   # what is there and whether it is current
#   .ci/containers.sh check    # exit 0 when every image exists and is current, 1 otherwise
# Exit status: 0 ready; 3 no Docker engine can run here (docker.io not installable, dockerd
# does not start or answer): the machine, not the project, so callers may report the
# container tests as not run (.ci/run does); anything else is a failure of the build.
# Env: BASE_IMAGE (modelfactory/python:3.11-bookworm), FORCE=1 (rebuild all),
#      STATE_DIR (/var/tmp/modelfactory-docker), DOCKER_WAIT (seconds, 60),
#      DOCKERD (the engine binary to start, dockerd; `DOCKERD=false` shows what CI does without one).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE="${BASE_IMAGE:-modelfactory/python:3.11-bookworm}"
VERSION="$(awk -F'"' '/^version = /{print $2; exit}' pyproject.toml)"
IMAGES=("modelfactory-components:$VERSION" "modelfactory-serving:$VERSION")
STATE_DIR="${STATE_DIR:-/var/tmp/modelfactory-docker}"
DOCKERD_LOG="$STATE_DIR/dockerd.log"
DOCKERD_PID="$STATE_DIR/dockerd.pid"
LABEL=io.modelfactory.inputs
FORCE="${FORCE:-0}"
export DEBIAN_FRONTEND=noninteractive

t0=$(date +%s)
say() { printf '[containers %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
die() { echo "error: $*" >&2; exit 1; }
no_engine() { echo "error: no Docker engine on this machine: $*" >&2; exit 3; }

# --- inputs hashes ----------------------------------------------------------
hash_files() { # paths... -> one sha256 over the names and contents of the files under them
  find "$@" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*/.pytest_cache/*' \
       ! -path '*/tests/*' -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}
base_inputs() { hash_files tools/build-base-image.sh; }
images_inputs() { # the build context as .dockerignore lets it through, the recipes, and the base
  local base_id sources=(pyproject.toml docker .dockerignore tools/build-images.sh modelfactory components pipelines serving)
  [ -f README.md ] && sources+=(README.md)
  base_id="$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || echo none)"
  echo "$(hash_files "${sources[@]}")-${base_id#sha256:}" | cut -c1-29
}
label_of() { docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null || true; }
# Stamps an image with its inputs hash: a one-instruction build on top (no new layer, about a second).
stamp() {
  printf 'FROM %s\nLABEL %s=%s\n' "$1" "$LABEL" "$2" | docker build -q -t "$1" - >/dev/null
}

# --- stop / status ------------------------------------------------------------
if [ "${1:-}" = stop ]; then
  if [ -f "$DOCKERD_PID" ] && kill -0 "$(cat "$DOCKERD_PID")" 2>/dev/null; then
    pid="$(cat "$DOCKERD_PID")"
    kill "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    rm -f "$DOCKERD_PID"
    echo "stopped dockerd (pid $pid)"
  else
    echo "no dockerd started by this script is running"
  fi
  exit 0
fi
if [ "${1:-}" = status ]; then
  docker info >/dev/null 2>&1 || { echo "no Docker engine answers"; exit 1; }
  echo "$BASE_IMAGE: label $(label_of "$BASE_IMAGE" | sed 's/^$/-/'), current $(base_inputs)"
  want="$(images_inputs)"
  for image in "${IMAGES[@]}"; do echo "$image: label $(label_of "$image" | sed 's/^$/-/'), current $want"; done
  exit 0
fi
if [ "${1:-}" = check ]; then
  docker info >/dev/null 2>&1 || { echo "no Docker engine answers"; exit 1; }
  stale=()
  [ "$(label_of "$BASE_IMAGE")" = "$(base_inputs)" ] || stale+=("$BASE_IMAGE")
  want="$(images_inputs)"
  for image in "${IMAGES[@]}"; do [ "$(label_of "$image")" = "$want" ] || stale+=("$image"); done
  [ ${#stale[@]} -eq 0 ] && { echo "current: $BASE_IMAGE ${IMAGES[*]}"; exit 0; }
  echo "missing or older than their sources: ${stale[*]}"
  exit 1
fi
[ $# -eq 0 ] || die "unknown argument '$1' (use: stop, status, check, or nothing)"

# --- 1. packages --------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || no_engine "need ${missing[*]}: run as root, or apt-get install ${missing[*]}"
  say "apt-get install ${missing[*]}"
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || no_engine "apt-get install ${missing[*]} failed"
fi

# --- 2. the engine --------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || no_engine "none answers, and starting dockerd needs root"
  mkdir -p "$STATE_DIR"
  say "starting dockerd (log $DOCKERD_LOG)"
  # setsid: the engine outlives this script (the tests use it), in its own session.
  setsid "${DOCKERD:-dockerd}" >>"$DOCKERD_LOG" 2>&1 </dev/null &
  echo $! >"$DOCKERD_PID"
  for _ in $(seq "${DOCKER_WAIT:-60}"); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$(cat "$DOCKERD_PID")" 2>/dev/null || { tail -20 "$DOCKERD_LOG" >&2; no_engine "dockerd exited (log $DOCKERD_LOG)"; }
    sleep 1
  done
  docker info >/dev/null 2>&1 || { tail -20 "$DOCKERD_LOG" >&2; no_engine "dockerd did not answer in ${DOCKER_WAIT:-60}s (log $DOCKERD_LOG)"; }
  say "dockerd $(docker version -f '{{.Server.Version}}') is up (pid $(cat "$DOCKERD_PID"); stop it with: .ci/containers.sh stop)"
fi
# The docker CLI 23+ without the buildx plugin builds with the classic builder (and says so).
export DOCKER_BUILDKIT=0 DOCKER_CLI_HINTS=false

# --- 3. base image ------------------------------------------------------------
want="$(base_inputs)"
if [ "$FORCE" != 1 ] && [ "$(label_of "$BASE_IMAGE")" = "$want" ]; then
  say "$BASE_IMAGE is current (inputs $want)"
else
  [ "$(id -u)" = 0 ] || die "building $BASE_IMAGE needs root (debootstrap)"
  say "building $BASE_IMAGE"
  bash tools/build-base-image.sh "$BASE_IMAGE"
  stamp "$BASE_IMAGE" "$want"
fi

# --- 4. the project's images --------------------------------------------------------
want="$(images_inputs)"
stale=()
for image in "${IMAGES[@]}"; do
  [ "$FORCE" != 1 ] && [ "$(label_of "$image")" = "$want" ] || stale+=("$image")
done
if [ ${#stale[@]} -eq 0 ]; then
  say "${IMAGES[*]} are current (inputs $want)"
else
  say "building ${stale[*]} FROM $BASE_IMAGE (inputs $want)"
  names=()
  for image in "${stale[@]}"; do name="${image#modelfactory-}"; names+=("${name%%:*}"); done
  # The host's Python builds the wheelhouse: it must be the images' Python minor version.
  PYTHON="${PYTHON:-python3}"
  "$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null \
    || die "$PYTHON is not Python 3.11 (the images' Python); set PYTHON=python3.11"
  BASE_IMAGE="$BASE_IMAGE" WHEELHOUSE=1 PYTHON="$PYTHON" IMAGES="${names[*]}" VERSION="$VERSION" \
    bash tools/build-images.sh
  # A file edited while the build read the context: the image may hold either version, so
  # leave it unstamped (the next run rebuilds it) rather than vouch for the wrong hash.
  if [ "$(images_inputs)" = "$want" ]; then
    for image in "${stale[@]}"; do stamp "$image" "$want"; done
  else
    echo "warning: sources changed during the build; ${stale[*]} left unstamped (rerun to rebuild)" >&2
  fi
  # Earlier builds of our images, now untagged, hold a gigabyte each.
  docker image prune -f --filter "label=$LABEL" >/dev/null
fi
say "ready: $BASE_IMAGE ${IMAGES[*]}"
