"""Run the ``backend-review`` CLI with an audit hook that records every child process it starts (K-03).

``python -m tests.support.audited_cli LOG COMMAND [ARGS…]`` behaves like ``backend-review COMMAND
[ARGS…]`` and appends one JSON line per spawn to LOG: the event, argv and the child's environment as
passed (an inherited environment is recorded as this process's whole ``os.environ``). The hook sees
``subprocess``, ``asyncio`` subprocesses, ``os.exec*``, ``os.posix_spawn``, ``os.spawn*`` and
``os.system``, so a spawn anywhere in the real server, worker, CI or local code cannot escape it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from tests.support.audit import _argv, _env


def _install(log_path: str) -> None:
    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "subprocess.Popen":
            argv, env = _argv(args[1]), _env(args[3])
        elif event in ("os.exec", "os.posix_spawn"):
            argv, env = _argv(args[1]), _env(args[2])
        elif event == "os.spawn":
            argv, env = _argv(args[2]), _env(args[3])
        elif event == "os.system":
            argv, env = _argv(args[0]), None
        else:
            return
        record = {"event": event, "argv": argv, "env": dict(os.environ) if env is None else dict(env)}
        record["inherited"] = env is None
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(record) + "\n").encode())
        finally:
            os.close(fd)

    sys.addaudithook(hook)


def main() -> int:
    _install(sys.argv[1])
    from bot.cli import main as cli

    return cli(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
