"""Ending child processes (git, rg) cleanly: the whole group, then drain, so nothing is left open."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal


def kill_group(proc: asyncio.subprocess.Process) -> None:
    # the child was started with start_new_session, so it leads its group: this also ends its helpers
    # (git-remote-https, rg's worker threads' children) rather than only the direct child
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def reap(proc: asyncio.subprocess.Process) -> None:
    """Drain and wait for a killed child so no pipe or transport is left open."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(proc.communicate(), 5)
