# Sourced by deploy/ci/*.sh: points podman (and podman-compose, which runs podman) at this directory's
# settings, then proves podman can run a container. If it cannot, this FAILS: CI must never skip the
# image and compose tests silently.
CI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONTAINERS_CONF="$CI_DIR/containers.conf" CONTAINERS_STORAGE_CONF="$CI_DIR/storage.conf"

if ! command -v podman >/dev/null; then
  echo "podman is not installed (apt-get install podman runc debootstrap podman-compose)" >&2
  exit 1
fi
if ! podman info >/dev/null 2>"${TMPDIR:-/tmp}/podman-info.err"; then
  echo "podman cannot run on this machine:" >&2
  cat "${TMPDIR:-/tmp}/podman-info.err" >&2
  exit 1
fi
