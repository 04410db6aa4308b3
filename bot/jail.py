"""The one reader of checked-out head files (S-05, S-06, S-12), for the pipeline and the agent's tools.

A pull request's head tree is hostile: it can hold symbolic links, hard links, FIFOs and sockets.
A path is walked one component at a time from a descriptor of the root, with ``O_NOFOLLOW`` at
every step: a symlink anywhere, a hard-linked file (git never checks one out; it could alias a
file outside the root), a device, a FIFO or a socket is refused without being opened for reading,
and a component swapped between ``lstat`` and ``open`` is detected by comparing inode numbers.
``tests/test_architecture.py`` checks that nothing else that handles the checkout reads files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_HEAD_FILE_BYTES = 2_000_000
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class Refused(Exception):
    """The path cannot be read through the jail; the message is safe to show (no content, no target)."""


def _display(parts: tuple[str, ...]) -> str:
    return "/".join(parts) or "."


def repo_parts(path: str) -> tuple[str, ...] | None:
    """The components of a repository path (from a diff), or None when it is not a plain relative one."""
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        return None
    parts = tuple(path.split("/"))
    if any(p in ("", ".", "..") or p.lower() == ".git" for p in parts):
        return None
    return parts


def open_beneath(root: str | Path, parts: tuple[str, ...]) -> tuple[int, os.stat_result]:
    """An ``O_NOFOLLOW`` descriptor of a regular file or directory ``parts`` under ``root``, opened one
    component at a time; :class:`Refused` otherwise. The caller closes the descriptor."""
    top = os.path.realpath(root)
    real = os.path.realpath(os.path.join(top, *parts))
    if os.path.commonpath([top, real]) != top:
        raise Refused("refused: the path leads outside the checkout")
    fd = os.open(top, _DIR_FLAGS)
    try:
        for i, name in enumerate(parts):
            shown = _display(parts[: i + 1])
            try:
                before = os.lstat(name, dir_fd=fd)
            except FileNotFoundError:
                raise Refused(f"not found: {shown}") from None
            except NotADirectoryError:
                raise Refused(f"not found: {_display(parts)}") from None
            mode = before.st_mode
            if stat.S_ISLNK(mode):
                raise Refused(f"refused: {shown} is a symbolic link; links are not followed")
            if stat.S_ISDIR(mode):
                flags = os.O_RDONLY | os.O_DIRECTORY
            elif stat.S_ISREG(mode) and before.st_nlink > 1:
                # git never checks out hard links: one here could alias a file outside the root
                raise Refused(f"refused: {shown} is a hard-linked file")
            elif stat.S_ISREG(mode) and i == len(parts) - 1:
                flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY
            elif stat.S_ISREG(mode):
                raise Refused(f"not found: {_display(parts)}")
            else:
                raise Refused(f"refused: {shown} is not a regular file or directory")
            try:
                nfd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError:
                raise Refused(f"refused: {shown} could not be opened") from None
            after = os.fstat(nfd)
            if (after.st_dev, after.st_ino, stat.S_IFMT(after.st_mode)) != (
                before.st_dev,
                before.st_ino,
                stat.S_IFMT(mode),
            ):
                os.close(nfd)
                raise Refused(f"refused: {shown} changed while it was being opened")
            os.close(fd)
            fd = nfd
        return fd, os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise


def read_fd(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes from a descriptor :func:`open_beneath` gave."""
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def list_fd(fd: int) -> list[tuple[str, str]]:
    """``(name, kind)`` of a directory descriptor's entries, kind one of link, dir, file, special;
    nothing is followed and .git (in any case) is left out."""
    out: list[tuple[str, str]] = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.name.lower() == ".git":
                continue
            if entry.is_symlink():
                kind = "link"
            elif entry.is_dir(follow_symlinks=False):
                kind = "dir"
            elif entry.is_file(follow_symlinks=False):
                kind = "file"
            else:
                kind = "special"
            out.append((entry.name, kind))
    return out


def _open_head(root: str | Path, path: str) -> tuple[int, os.stat_result] | None:
    """:func:`open_beneath` for a repository path; None when the jail refuses it or it is missing."""
    parts = repo_parts(path)
    if parts is None:
        return None
    try:
        return open_beneath(root, parts)
    except (Refused, OSError):
        return None


def read_head_file(root: str | Path, path: str, limit: int | None = None) -> bytes | None:
    """The head file ``path`` (a repository path), or None when the jail refuses it or it is missing.

    Without ``limit`` a file over :data:`MAX_HEAD_FILE_BYTES` is None; with it, its first ``limit`` bytes.
    """
    opened = _open_head(root, path)
    if opened is None:
        return None
    fd, st = opened
    try:
        if not stat.S_ISREG(st.st_mode) or (limit is None and st.st_size > MAX_HEAD_FILE_BYTES):
            return None
        return read_fd(fd, limit or MAX_HEAD_FILE_BYTES + 1)
    finally:
        os.close(fd)


def head_file_size(root: str | Path, path: str) -> int | None:
    """The size of the head file ``path``, or None when the jail refuses it or it is missing."""
    opened = _open_head(root, path)
    if opened is None:
        return None
    fd, st = opened
    os.close(fd)
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def is_plain_file(root: str | Path, path: str) -> bool:
    """Whether ``path`` (relative, as ``rg`` printed it) names a regular, singly linked file with no
    link on the way: a match ``rg`` found elsewhere is withheld (S-05)."""
    try:
        fd, st = open_beneath(root, tuple(p for p in path.split("/") if p not in ("", ".")))
    except (Refused, OSError):
        return False
    os.close(fd)
    return stat.S_ISREG(st.st_mode)
