#!/usr/bin/env bash
# A STAND-IN for the official base image, for CI machines that cannot pull from a container registry.
#
# Users build deploy/Dockerfile on the official, digest-pinned `python:3.11-slim-bookworm`. This
# script makes an equivalent Debian bookworm root filesystem from Debian's own packages
# (debootstrap: python3.11, venv, ca-certificates), adds this machine's CA certificates (so that apt
# and pip inside the build trust the same TLS roots as the host, e.g. an egress proxy's CA), imports
# it with `podman import`, and prints the stand-in's digest-pinned reference, which `make image-test`
# passes as the Dockerfile's PYTHON_IMAGE build argument. The Dockerfile therefore keeps a digest pin
# in both cases: the official image's for users, the stand-in's own for CI.
#
# Cached: the image is reused while it exists in podman's storage, and the root filesystem tarball
# is kept in $STANDIN_CACHE (default /var/cache/backend-review-standin) so a machine that keeps that
# directory but not podman's storage re-imports it in seconds instead of re-running debootstrap.
# Delete the cache to pick up Debian's newest packages (security updates).
#
# Usage: deploy/standin/make-base.sh            (prints e.g. localhost/backend-review-base@sha256:…)
# Needs: root, debootstrap, podman (see deploy/standin/podman.env for the storage/runtime settings).
set -euo pipefail

IMAGE=${STANDIN_BASE_IMAGE:-localhost/backend-review-base:bookworm}
CACHE=${STANDIN_CACHE:-/var/cache/backend-review-standin}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates,tzdata
TARBALL="$CACHE/bookworm-python3.tar"
log() { echo "make-base: $*" >&2; }

digest_ref() { echo "${IMAGE%:*}@$(podman image inspect --format '{{.Digest}}' "$IMAGE")"; }

if podman image exists "$IMAGE"; then
  log "reusing $IMAGE"
  digest_ref
  exit 0
fi

mkdir -p "$CACHE"
if [[ ! -s "$TARBALL" ]]; then
  root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  chmod 0755 "$root"   # the image's /: mktemp made it 0700, which locks out every non-root user
  trap 'rm -rf "$root"' EXIT
  log "debootstrap bookworm into $root (a few minutes)"
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -n 30 "$CACHE/debootstrap.log" >&2; exit 1; }
  # the same suites as the official image: point releases and security updates (git's S-01 floor)
  cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF
  # this machine's extra roots (an egress proxy's CA, say) join Debian's bundle, as on the host
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  fi
  chroot "$root" update-ca-certificates >/dev/null
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/dev/* "$root"/proc/* "$root"/sys/*
  tar --numeric-owner -C "$root" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
else
  log "re-importing the cached root filesystem $TARBALL"
fi

podman import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' \
  --message "stand-in for python:3.11-slim-bookworm (deploy/standin/make-base.sh)" \
  "$TARBALL" "$IMAGE" >/dev/null
digest_ref
