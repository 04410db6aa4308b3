#!/usr/bin/env bash
# make compose-test: deploy/compose.yaml end to end with podman-compose — Postgres, a receiver and a
# worker against the fake GitHub on the host (tests/container/test_compose.py). Needs the image from
# `make image-test` (built here when missing) and the Postgres stand-in (built here, cached).
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/ci/podman-env.sh
command -v podman-compose >/dev/null || { echo "podman-compose is not installed" >&2; exit 1; }
t0=$SECONDS

podman image exists localhost/backend-review:latest || deploy/ci/image-test.sh
base=$(deploy/standin/make-base.sh)
# the stand-in is rebuilt when its files or the base change: the tag carries their hash
sum=$( (echo "$base"; cat deploy/standin/postgres.Containerfile deploy/standin/postgres-entrypoint.sh) \
  | sha256sum | cut -c1-12)
POSTGRES_IMAGE=localhost/backend-review-postgres-standin:15-$sum
if ! podman image exists "$POSTGRES_IMAGE"; then
  podman build --pull=never --build-arg BASE_IMAGE="$base" -f deploy/standin/postgres.Containerfile \
    -t "$POSTGRES_IMAGE" deploy/standin >"${TMPDIR:-/tmp}/backend-review-postgres-build.log" 2>&1 \
    || { tail -n 60 "${TMPDIR:-/tmp}/backend-review-postgres-build.log" >&2; exit 1; }
fi
echo "compose-test: images ready in $((SECONDS - t0))s ($POSTGRES_IMAGE)"
t1=$SECONDS

BACKEND_REVIEW_CONTAINER_TESTS=1 BACKEND_REVIEW_IMAGE=localhost/backend-review:latest \
  POSTGRES_IMAGE="$POSTGRES_IMAGE" \
  .venv/bin/pytest tests/container/test_compose.py -p no:randomly -o addopts='-q -p no:cacheprovider'
echo "compose-test: end to end $((SECONDS - t1))s; total $((SECONDS - t0))s"
