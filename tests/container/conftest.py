"""Container tests: collected only under `make image-test` / `make compose-test` (deploy/ci/*.sh).

Those scripts build the image and set BACKEND_REVIEW_CONTAINER_TESTS=1; they fail loudly when podman
cannot run, so CI never skips these silently. `make test` leaves this directory out: it has no image.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence

import pytest

from tests.support import waiting

ENABLED = os.environ.get("BACKEND_REVIEW_CONTAINER_TESTS") == "1"
collect_ignore_glob = [] if ENABLED else ["test_*.py"]

IMAGE = os.environ.get("BACKEND_REVIEW_IMAGE", "localhost/backend-review:ci")


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """podman with the settings deploy/ci/podman-env.sh exported (CONTAINERS_CONF, …)."""
    return subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def wait_for(
    what: str, predicate: Callable[[], object], timeout: float, on_timeout: Sequence[str] = ()
) -> None:
    """Containers answer slowly: poll every 0.2 s."""
    waiting.wait_for(what, predicate, timeout, interval=0.2, on_timeout=on_timeout)


@pytest.fixture(scope="session", autouse=True)
def _podman_runs() -> None:
    assert "CONTAINERS_CONF" in os.environ, "run through deploy/ci/*.sh (make image-test / compose-test)"
    podman("image", "exists", IMAGE)
