"""Child processes (git, rg): the one place their environment is built, and ending them cleanly.

K-03/T-02: a child never inherits ``os.environ`` (which holds the webhook secret, the model key and the
App's private key). :func:`child_env` builds the whole environment from scratch; every spawn in the
package passes it (or a caller-specific extension of it) explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Mapping

_BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


def child_path() -> str:
    """A fixed PATH, plus the directory git was found in when it is elsewhere (e.g. a pyenv/nix git)."""
    found = shutil.which("git")
    directory = os.path.dirname(found) if found else ""
    return f"{directory}:{_BASE_PATH}" if directory and directory not in _BASE_PATH.split(":") else _BASE_PATH


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The entire environment of a child process: nothing from ``os.environ``, plus ``extra``."""
    env = {
        "PATH": child_path(),
        "HOME": "/nonexistent",
        "XDG_CONFIG_HOME": "/nonexistent",
        "LANG": "C",
        "LC_ALL": "C",
    }
    env.update(extra or {})
    return env


def kill_group(proc: asyncio.subprocess.Process) -> None:
    # the child was started with start_new_session, so it leads its group: this also ends its helpers
    # (git-remote-https, rg's worker threads' children) rather than only the direct child
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def reap(proc: asyncio.subprocess.Process) -> None:
    """Drain and wait for a killed child so no pipe or transport is left open."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(proc.communicate(), 5)
