"""Small helpers for tests that start real servers and processes: a free loopback port, and polling
until something holds (with what it was waiting for in the failure)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for(
    what: str,
    predicate: Callable[[], object],
    timeout: float = 30.0,
    *,
    interval: float = 0.05,
    on_timeout: Sequence[str] = (),
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n" + "\n".join(on_timeout))
