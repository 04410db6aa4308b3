"""Exec, egress and open audit through :func:`sys.addaudithook` (SECURITY.md §2 harness).

Audit hooks cannot be removed, so one hook is installed for the whole test session and records only
while a :func:`recording` block is active. It sees every child process started from Python
(``subprocess.Popen``, which asyncio's subprocesses use too, ``os.exec*``, ``os.posix_spawn``,
``os.spawn*``, ``os.system``), every ``socket.connect``/``socket.getaddrinfo`` and every ``open``.

    with recording() as audit:
        ...
    assert {Path(e.argv[0]).name for e in audit.execs} <= {"git", "rg"}
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Exec:
    event: str  # "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system"
    argv: object  # a list or tuple when argv was given as one; a str means a command string
    env: Mapping[str, str] | None


@dataclass
class Audit:
    execs: list[Exec] = field(default_factory=list)
    connects: list[object] = field(default_factory=list)  # socket addresses, e.g. ("127.0.0.1", 8080)
    lookups: list[tuple[object, object]] = field(default_factory=list)  # (host, port) of getaddrinfo
    opens: list[str] = field(default_factory=list)

    def programs(self) -> set[str]:
        """Base names of every executed program."""
        names = set()
        for e in self.execs:
            first = e.argv[0] if isinstance(e.argv, list | tuple) and e.argv else e.argv
            names.add(_text(first).rsplit("/", 1)[-1])
        return names


_lock = threading.Lock()
_current: Audit | None = None
_installed = False


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _env(value: object) -> Mapping[str, str] | None:
    if not isinstance(value, Mapping):
        return None
    return {_text(k): _text(v) for k, v in value.items()}


def _hook(event: str, args: tuple[Any, ...]) -> None:
    audit = _current
    if audit is None:
        return
    if event == "subprocess.Popen":  # executable, args, cwd, env
        audit.execs.append(Exec(event, args[1], _env(args[3])))
    elif event in ("os.exec", "os.posix_spawn"):  # path, argv, env
        audit.execs.append(Exec(event, args[1], _env(args[2])))
    elif event == "os.spawn":  # mode, path, args, env
        audit.execs.append(Exec(event, args[2], _env(args[3])))
    elif event == "os.system":  # command
        audit.execs.append(Exec(event, _text(args[0]), None))
    elif event == "socket.connect":  # socket, address
        audit.connects.append(args[1])
    elif event == "socket.getaddrinfo":  # host, port, family, type, protocol
        audit.lookups.append((args[0], args[1]))
    elif event == "open" and isinstance(args[0], str | bytes):  # path, mode, flags
        audit.opens.append(_text(args[0]))


@contextmanager
def recording() -> Iterator[Audit]:
    """Record audit events (from every thread) for the duration of the block. Not reentrant."""
    global _current, _installed
    with _lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True
        if _current is not None:
            raise RuntimeError("audit recording is already active")
        audit = _current = Audit()
    try:
        yield audit
    finally:
        _current = None


def argv_lists(execs: Sequence[Exec]) -> bool:
    """True when every child was started from an argv list (never a command string, P-07)."""
    return all(isinstance(e.argv, list | tuple) and e.argv for e in execs)


__all__ = ["Audit", "Exec", "argv_lists", "recording"]
