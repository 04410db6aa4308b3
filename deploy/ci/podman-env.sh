# Sourced by deploy/ci/*.sh: points podman (and podman-compose, which runs podman) at this directory's
# containers.conf and at a storage configuration for this machine, then proves podman can run. If it
# cannot, this FAILS: CI must never skip the image and compose tests silently.
CI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${BACKEND_REVIEW_PODMAN_STATE:-/var/lib/containers/backend-review-ci}

if ! command -v podman >/dev/null; then
  echo "podman is not installed (apt-get install podman runc debootstrap podman-compose)" >&2
  exit 1
fi

# Storage driver: overlay where the kernel can mount it on this filesystem (copy-on-write: fast),
# else vfs (full copies: slow, but works inside sandboxes whose root is itself an overlay). Each
# driver gets its own graph root: podman refuses to reuse one written by another driver.
storage_driver() {
  local probe
  probe=$(mktemp -d "$STATE/overlay-probe.XXXXXX") || return 1
  mkdir "$probe"/{lower,upper,work,merged}
  if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" \
       "$probe/merged" 2>/dev/null; then
    umount "$probe/merged"
    echo overlay
  else
    echo vfs
  fi
  rm -rf "$probe"
}
mkdir -p "$STATE"
DRIVER=${BACKEND_REVIEW_PODMAN_DRIVER:-$(storage_driver)}
cat >"$STATE/storage-$DRIVER.conf" <<CONF
[storage]
driver = "$DRIVER"
runroot = "/run/containers/backend-review-ci-$DRIVER"
graphroot = "$STATE/$DRIVER"
CONF
export CONTAINERS_CONF="$CI_DIR/containers.conf" CONTAINERS_STORAGE_CONF="$STATE/storage-$DRIVER.conf"

if ! podman info >"$STATE/podman-info.txt" 2>&1; then
  echo "podman cannot run on this machine:" >&2
  cat "$STATE/podman-info.txt" >&2
  exit 1
fi
echo "podman: $(podman --version), storage $DRIVER, runtime runc, cgroup manager cgroupfs" >&2
