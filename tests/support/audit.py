"""Exec, egress and open audit for tests (SECURITY.md §2), plus a connection-counting sink.

``sys.addaudithook`` hooks cannot be removed, so one hook is installed for the process and records
only while a :func:`recording` block is active. It sees every ``subprocess.Popen`` (which is also how
``asyncio.create_subprocess_exec`` starts children), ``os.exec*``, ``os.posix_spawn``, ``os.system``,
``socket.connect``/``getaddrinfo`` and ``open`` made by this interpreter. Connections made by child
processes (git) are not Python events: :class:`Sink` listeners count those.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Exec:
    event: str
    argv: tuple[str, ...] | str  # a str means a command string reached the exec layer
    env: Mapping[str, str] | None  # None: the child inherits os.environ

    @property
    def program(self) -> str:
        first = self.argv if isinstance(self.argv, str) else (self.argv[0] if self.argv else "")
        return os.path.basename(first)


@dataclass
class Audit:
    execs: list[Exec] = field(default_factory=list)
    connects: list[Any] = field(default_factory=list)
    lookups: list[tuple[Any, Any]] = field(default_factory=list)  # (host, port) of getaddrinfo
    opens: list[str] = field(default_factory=list)

    def child_envs(self) -> list[Mapping[str, str]]:
        """Every child environment; an inherited one counts as the parent's full environment."""
        return [dict(os.environ) if e.env is None else e.env for e in self.execs]

    def programs(self) -> set[str]:
        """Base names of every executed program."""
        return {e.program for e in self.execs}

    def assert_only_git_and_rg(self) -> None:
        """The exec audit is clean: only git and rg ran, always with argv lists (invariant 1)."""
        assert self.execs, "the audit saw no child process at all: nothing was exercised"
        for e in self.execs:
            assert e.event == "subprocess.Popen", e
            assert not isinstance(e.argv, str), f"command string executed: {e}"
            assert e.program in ("git", "rg"), f"unexpected program executed: {e.argv}"


_lock = threading.Lock()
_active: Audit | None = None
_installed = False


def _text(value: object) -> str:
    return os.fsdecode(value) if isinstance(value, (str, bytes, os.PathLike)) else repr(value)


def _argv(args: object) -> tuple[str, ...] | str:
    if isinstance(args, (str, bytes, os.PathLike)):
        return _text(args)
    if isinstance(args, Sequence):
        return tuple(_text(a) for a in args)
    return repr(args)


def _env(env: object) -> Mapping[str, str] | None:
    if env is None:
        return None
    if isinstance(env, Mapping):
        return {_text(k): _text(v) for k, v in env.items()}
    return {"<unrecognised env>": repr(env)}


def _hook(event: str, args: tuple[Any, ...]) -> None:
    audit = _active
    if audit is None:
        return
    if event == "subprocess.Popen":
        executable, argv, _cwd, env = args
        seq = _argv(argv)
        if executable is not None and not isinstance(seq, str):
            seq = (_text(executable), *seq[1:])
        audit.execs.append(Exec(event, seq, _env(env)))
    elif event in ("os.exec", "os.posix_spawn"):
        audit.execs.append(Exec(event, _argv(args[1]), _env(args[2])))
    elif event == "os.spawn":  # mode, path, args, env
        audit.execs.append(Exec(event, _argv(args[2]), _env(args[3])))
    elif event == "os.system":
        audit.execs.append(Exec(event, _text(args[0]), None))
    elif event == "socket.connect":
        audit.connects.append(args[1])
    elif event == "socket.getaddrinfo":
        audit.lookups.append((args[0], args[1]))
    elif event == "open" and args[0] is not None and not isinstance(args[0], int):
        audit.opens.append(_text(args[0]))


@contextlib.contextmanager
def recording() -> Iterator[Audit]:
    """Record every audited event of this process until the block ends (one recorder at a time)."""
    global _active, _installed
    with _lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True
        assert _active is None, "audit recorders do not nest"
        audit = Audit()
        _active = audit
    try:
        yield audit
    finally:
        _active = None


class Sink:
    """A loopback listener standing in for an attacker URL: counts every connection made to it."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self.port: int = self._sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Sink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.setblocking(False)
        with contextlib.suppress(OSError):  # connections still queued in the backlog count too
            while True:
                self._sock.accept()[0].close()
                self.connections += 1
        self._sock.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()


def argv_lists(execs: Sequence[Exec]) -> bool:
    """True when every child was started from an argv list (never a command string, P-07)."""
    return all(not isinstance(e.argv, str) and e.argv for e in execs)


__all__ = ["Audit", "Exec", "Sink", "argv_lists", "recording"]
