#!/usr/bin/env bash
# make image-test: build deploy/Dockerfile with podman from the lock, then smoke-test the container
# hardened as compose runs it (tests/container/test_image.py). Run as root; see deploy/ci/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/ci/podman-env.sh
IMAGE=${BACKEND_REVIEW_IMAGE:-localhost/backend-review:ci}
t0=$SECONDS

# the digest-pinned stand-in for the official python:3.11-slim-bookworm (cached; deploy/standin/)
base=$(deploy/standin/make-base.sh)
t1=$SECONDS
echo "image-test: base $base (${t1}s after start)"

# --pull=never: nothing may come from a registry; tagged :latest too, the name compose.yaml uses
podman build --pull=never --build-arg PYTHON_IMAGE="$base" -f deploy/Dockerfile \
  -t "$IMAGE" -t localhost/backend-review:latest . >"${TMPDIR:-/tmp}/backend-review-build.log" 2>&1 \
  || { tail -n 60 "${TMPDIR:-/tmp}/backend-review-build.log" >&2; exit 1; }
t2=$SECONDS
echo "image-test: built $IMAGE in $((t2 - t1))s ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"

BACKEND_REVIEW_CONTAINER_TESTS=1 BACKEND_REVIEW_IMAGE="$IMAGE" \
  .venv/bin/pytest tests/container/test_image.py -p no:randomly -o addopts='-q -p no:cacheprovider'
echo "image-test: smoke tests $((SECONDS - t2))s; total $((SECONDS - t0))s"
