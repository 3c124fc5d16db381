#!/usr/bin/env bash
# Builds a Python 3.11 base image from Debian packages alone, for machines that
# cannot pull python:3.11-slim (no container registry reachable):
#   debootstrap bookworm (python3 is 3.11 there) -> docker import -> a small
#   Dockerfile on top that sets the environment python:3.11-slim users expect.
# The project's images then build on it with
#   --build-arg BASE_IMAGE=modelfactory/python:3.11-bookworm
#
# Needs root, debootstrap and a running Docker engine (apt-get install
# debootstrap docker.io; dockerd &).
# Usage: tools/build-base-image.sh [TAG]      (env: DEBIAN_MIRROR, SUITE)
set -euo pipefail
cd "$(dirname "$0")/.."

TAG="${1:-modelfactory/python:3.11-bookworm}"
SUITE="${SUITE:-bookworm}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python3-venv brings ensurepip, which the images' build stage uses to make
# their virtual environment; ca-certificates for any HTTPS the app does.
PACKAGES="python3,python3-venv,python3-pip,python-is-python3,ca-certificates,tzdata"

for tool in debootstrap docker; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found (apt-get install debootstrap docker.io)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "error: debootstrap needs root" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "error: no Docker engine answers (start dockerd first)" >&2; exit 1; }

rootfs="$(mktemp -d /tmp/modelfactory-rootfs.XXXXXX)"
ctx="$(mktemp -d /tmp/modelfactory-base.XXXXXX)"
trap 'rm -rf "$rootfs" "$ctx"' EXIT

start=$(date +%s)
echo "debootstrap $SUITE (minbase + $PACKAGES) from $DEBIAN_MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$ctx/debootstrap.log" 2>&1 \
  || { tail -30 "$ctx/debootstrap.log" >&2; exit 1; }

# Trim what a runtime image never needs, as the official slim images do.
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* \
       "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
       "$rootfs"/usr/share/locale/* "$rootfs"/tmp/* "$rootfs"/root/.cache
find "$rootfs"/usr/lib/python3* -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null || true
# The egress of the build host is not the image's business.
: >"$rootfs"/etc/resolv.conf

echo "docker import"
tar -C "$rootfs" --numeric-owner -c . | docker import - "$TAG-rootfs" >/dev/null

cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $TAG-rootfs
ENV LANG=C.UTF-8 \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1
CMD ["python3"]
DOCKERFILE
docker build -q -t "$TAG" "$ctx" >/dev/null
docker image rm "$TAG-rootfs" >/dev/null 2>&1 || true  # the tag only; layers stay under $TAG

docker run --rm "$TAG" python3 -c 'import sys, ensurepip; assert sys.version_info[:2] == (3, 11), sys.version; print("python", sys.version.split()[0])'
echo "built $TAG in $(( $(date +%s) - start ))s, $(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}')"
