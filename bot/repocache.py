"""The repository cache: one persistent bare repository per GitHub repository (issue 10, item 2).

A job fetches into the cache only the commits it lacks (by SHA, shallow, the token in that fetch's
environment only, K-02/S-12) and then checks the head out into its own scratch directory, whose git dir
borrows the cache's objects through ``objects/info/alternates``. Every git call is the hardened one of
:mod:`bot.checkout`, so nothing about S-01…S-12 changes: the checkout is still a fresh directory with
its git dir outside the tree, and the cache itself is never a working tree.

Layout, under ``<data_dir>/repos`` (mode 0700)::

    <key>/lock          flock: held exclusively while the entry changes (fetch, re-seed, eviction)
    <key>/current       the name of the live generation
    <key>/g-<id>/       that generation: a bare repository we created, with a config we wrote
    <key>/g-<id>.use    flock: shared by every job reading g-<id>, exclusive only to delete it
    <key>/verified      pack name, size, mtime and inode of every pack whose checksum was verified

Concurrency: jobs on one host serialise their fetches per repository on ``lock`` and then read in
parallel; a generation is deleted only when no job holds its ``.use`` lock. Healing: before each use the
generation is verified (our config byte for byte; nothing planted: no hooks, alternates, grafts, info
files or symlinks; no stale lock or temporary files; every new pack's trailing checksum); a generation
that fails, or whose git calls fail while a deeper check then finds it broken, is replaced by a fresh
one seeded from GitHub. Size: after each job, whole entries are evicted least recently used first until
the cache fits ``max_bytes``; an entry in use is never evicted.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bot.checkout import GitSource, _exec_git, fetch_history, remove_tree, run_git
from bot.errors import WorkspaceError
from bot.log import get_logger

log = get_logger(__name__)

# The whole config of a cache repository. `fetch.unpackLimit = 1` keeps every fetch a pack (no loose
# objects), so a generation holds a handful of files that can be verified and measured cheaply.
CONFIG = (
    b"[core]\n"
    b"\trepositoryformatversion = 0\n"
    b"\tfilemode = true\n"
    b"\tbare = true\n"
    b"\tlogAllRefUpdates = false\n"
    b"[fetch]\n"
    b"\tunpackLimit = 1\n"
)
_TOP_LEVEL = frozenset({"HEAD", "config", "objects", "refs", "shallow", "packed-refs"})
_PACK_FILE = re.compile(r"\Apack-[0-9a-f]{40,64}\.(?:pack|idx|rev)\Z")
_KEEP_REFS = 64  # negotiation tips kept per repository: enough for every open PR's recent heads
_LOCK_POLL = 0.02
_KEY_CHARS = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class Lease:
    """What a workspace borrows from the cache while it lives."""

    objects: Path  # the generation's objects directory, for objects/info/alternates
    shallow: bytes | None  # the generation's shallow list at the time of the lease
    merge_base: str | None


def cache_key(url: str) -> str:
    """A directory name for a remote: readable host/owner/name plus a hash of the whole URL."""
    parts = urllib.parse.urlsplit(url)
    readable = _KEY_CHARS.sub("-", f"{parts.hostname or 'local'}-{parts.path}".lower()).strip("-.")[:80]
    return f"{readable}-{hashlib.sha256(url.encode()).hexdigest()[:16]}"


class RepoCache:
    def __init__(self, root: Path, max_bytes: int, *, evict_interval: float = 0.0) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        # measuring every entry after every job costs a walk of the cache: the App spaces them out
        self.evict_interval = evict_interval
        self._last_evict = float("-inf")

    @contextlib.asynccontextmanager
    async def lease(
        self, source: GitSource, head_sha: str, base_sha: str | None, depth: int
    ) -> AsyncIterator[Lease]:
        """Make ``head_sha`` (and ``base_sha``, with their merge base) present in the cache and hold it
        readable until the block ends."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        entry = self.root / cache_key(source.url)
        _make_dirs(entry)
        use_fd: int | None = None
        try:
            async with _locked(entry / "lock"):
                _sweep(entry)
                gen = _current(entry)
                if gen is None or not _verify(entry, gen):
                    gen = await _seed(entry)
                use_fd = _use(entry, gen)
                try:
                    merge_base = await self._fill(entry, gen, source, head_sha, base_sha, depth)
                except WorkspaceError as exc:
                    if await _sound(entry, gen):
                        raise  # the cache is fine: the fetch itself failed (network, a missing SHA, …)
                    log.warning("repository cache broken; re-seeding", entry=entry.name, error=str(exc)[:200])
                    os.close(use_fd)
                    use_fd = None
                    gen = await _seed(entry)
                    use_fd = _use(entry, gen)
                    merge_base = await self._fill(entry, gen, source, head_sha, base_sha, depth)
                shallow = gen / "shallow"
                lease = Lease(gen / "objects", shallow.read_bytes() if shallow.exists() else None, merge_base)
                os.utime(entry / "current")  # the LRU clock
            yield lease
        finally:
            if use_fd is not None:
                os.close(use_fd)
            _sweep_if_idle(entry)
        await self.evict()

    async def condemn(self, objects: Path) -> bool:
        """Git failed on a leased generation: True when it is broken (it is dropped, so the next lease
        re-seeds) or was already replaced; False when it is sound (the failure lies elsewhere)."""
        gen = objects.parent
        entry = gen.parent
        async with _locked(entry / "lock"):
            if _current(entry) != gen:
                return True
            if await _sound(entry, gen):
                return False
            log.warning("repository cache broken; re-seeding", entry=entry.name)
            (entry / "current").unlink()
            return True

    async def _fill(
        self, entry: Path, gen: Path, source: GitSource, head_sha: str, base_sha: str | None, depth: int
    ) -> str | None:
        merge_base = await fetch_history(gen, source, head_sha, base_sha, depth)
        _verify_packs(entry, gen, full=False)
        await _keep_tips(gen, [s for s in (head_sha, base_sha) if s])
        return merge_base

    async def evict(self) -> None:
        """Delete whole entries, least recently used first, until the cache fits ``max_bytes``."""
        now = time.monotonic()
        if now - self._last_evict < self.evict_interval:
            return
        self._last_evict = now
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return
        sizes: list[tuple[float, int, Path]] = []
        for name in names:
            entry = self.root / name
            try:
                used = os.stat(entry / "current").st_mtime
            except FileNotFoundError:
                used = 0.0
            sizes.append((used, _size(entry), entry))
        total = sum(size for _, size, _ in sizes)
        for _used, size, entry in sorted(sizes):
            if total <= self.max_bytes:
                return
            if _evict_entry(entry):
                total -= size
                log.info("repository cache entry evicted", entry=entry.name, bytes=size)


# ------------------------------------------------------------------------------------------ locking


@contextlib.asynccontextmanager
async def _locked(path: Path) -> AsyncIterator[int]:
    """An exclusive flock on ``path``, polled so that waiting stays cancellable.

    The lock file is checked to still be the one at ``path`` after locking: an eviction may have
    removed the entry between our open and our lock."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except FileNotFoundError:  # the entry was just evicted: make it again
            _make_dirs(path.parent)
            continue
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(_LOCK_POLL)
            try:
                same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield fd
                return
        finally:
            os.close(fd)  # closing releases the lock
        _make_dirs(path.parent)


def _try_lock(path: Path, mode: int) -> int | None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _use(entry: Path, gen: Path) -> int:
    """A shared hold on ``gen`` (we hold the entry lock, so no deleter holds it exclusively)."""
    fd = _try_lock(entry / f"{gen.name}.use", fcntl.LOCK_SH)
    if fd is None:
        raise WorkspaceError("the repository cache generation is being deleted")
    return fd


def _evict_entry(entry: Path) -> bool:
    lock = _try_lock(entry / "lock", fcntl.LOCK_EX)
    if lock is None:
        return False  # a job is fetching into it
    try:
        holds: list[int] = []
        try:
            for use in entry.glob("g-*.use"):
                fd = _try_lock(use, fcntl.LOCK_EX)
                if fd is None:
                    return False  # a job is reading it
                holds.append(fd)
            remove_tree(entry)  # the lock file goes too: a waiter re-checks its inode and retries
            return True
        finally:
            for fd in holds:
                os.close(fd)
    except OSError as exc:
        log.error("could not evict a repository cache entry", entry=entry.name, error=type(exc).__name__)
        return False
    finally:
        os.close(lock)


# ------------------------------------------------------------------------------------- generations


def _make_dirs(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _current(entry: Path) -> Path | None:
    try:
        name = (entry / "current").read_text().strip()
    except FileNotFoundError:
        return None
    if not re.fullmatch(r"g-[0-9a-f]{16}", name):
        return None
    return entry / name


async def _seed(entry: Path) -> Path:
    """A fresh, empty generation, made current (the previous one is deleted once nobody reads it)."""
    gen = entry / f"g-{secrets.token_hex(8)}"
    await run_git(["init", "--quiet", "--bare", "--template=", str(gen)], cwd=entry)
    (gen / "config").write_bytes(CONFIG)
    with contextlib.suppress(FileNotFoundError):
        (entry / "verified").unlink()
    tmp = entry / "current.tmp"
    tmp.write_text(gen.name + "\n")
    os.replace(tmp, entry / "current")
    log.info("repository cache generation created", entry=entry.name, generation=gen.name)
    return gen


def _sweep(entry: Path) -> None:
    """Delete generations other than the current one that no job reads any more."""
    live = _current(entry)
    for path in entry.glob("g-*"):
        if path.suffix == ".use" or (live is not None and path.name == live.name):
            continue
        use = entry / f"{path.name}.use"
        fd = _try_lock(use, fcntl.LOCK_EX)
        if fd is None:
            continue
        try:
            remove_tree(path)
            use.unlink()
        except OSError as exc:
            log.error("could not delete an old cache generation", entry=entry.name, error=type(exc).__name__)
        finally:
            os.close(fd)


def _sweep_if_idle(entry: Path) -> None:
    """After a lease: drop generations nobody reads any more, unless another job holds the entry."""
    fd = _try_lock(entry / "lock", fcntl.LOCK_EX)
    if fd is None:
        return
    try:
        _sweep(entry)
    finally:
        os.close(fd)


def _size(path: Path) -> int:
    total = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for item in entries:
                    if item.is_dir(follow_symlinks=False):
                        stack.append(Path(item.path))
                    else:
                        with contextlib.suppress(OSError):
                            total += item.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


# -------------------------------------------------------------------------------------- verification


def _verify(entry: Path, gen: Path) -> bool:
    """The cheap check before every use: our config, nothing planted, stale debris removed, packs whole."""
    try:
        problem = _structure(gen) or _verify_packs(entry, gen, full=False)
    except OSError as exc:
        problem = f"unreadable: {type(exc).__name__}"
    if problem:
        log.warning("repository cache failed verification; re-seeding", entry=entry.name, problem=problem)
        return False
    return True


def _structure(gen: Path) -> str | None:
    st = os.lstat(gen)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        return "the generation is not our directory"
    if (gen / "config").read_bytes() != CONFIG:
        return "config changed"
    for name in os.listdir(gen):
        path = gen / name
        if name.endswith(".lock") or name.startswith("tmp"):
            _discard(path)  # a killed git's debris: we hold the entry lock, so nobody else owns it
        elif name not in _TOP_LEVEL:
            return f"unexpected {name!r}"
        elif os.path.islink(path):
            return f"{name!r} is a symlink"
    objects = gen / "objects"
    for name in os.listdir(objects):
        if name not in ("pack", "info"):
            return f"unexpected objects/{name}"
    for name in os.listdir(objects / "info"):
        return f"unexpected objects/info/{name}"  # alternates, grafts, …: nothing belongs there
    for name in os.listdir(objects / "pack"):
        path = objects / "pack" / name
        if name.startswith("tmp_") or name.endswith(".lock"):
            _discard(path)
        elif not _PACK_FILE.match(name) or not stat.S_ISREG(os.lstat(path).st_mode):
            return f"unexpected objects/pack/{name}"
    refs = gen / "refs"
    for dirpath, dirnames, filenames in os.walk(refs):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if os.path.islink(path):
                return "a symlink under refs"
            if name.endswith(".lock"):
                _discard(path)
    return None


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        remove_tree(path)


def _verify_packs(entry: Path, gen: Path, *, full: bool) -> str | None:
    """Check each pack's trailing checksum; packs already verified (same name, size, mtime, inode) are
    skipped unless ``full``. Returns the problem, or None."""
    record = entry / "verified"
    try:
        known: dict[str, list[int]] = {} if full else json.loads(record.read_text())
    except (FileNotFoundError, ValueError):
        known = {}
    seen: dict[str, list[int]] = {}
    for name in known:
        if not (gen / "objects" / "pack" / name).is_file():
            return f"pack {name} vanished"
    for path in sorted((gen / "objects" / "pack").glob("pack-*.pack")):
        st = os.stat(path, follow_symlinks=False)
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        if known.get(path.name) != stamp:
            if not _pack_checksum_ok(path):
                return f"pack {path.name} fails its checksum"
            if not (path.with_suffix(".idx")).is_file():
                return f"pack {path.name} has no index"
        seen[path.name] = stamp
    tmp = entry / "verified.tmp"
    tmp.write_text(json.dumps(seen))
    os.replace(tmp, record)
    return None


def _pack_checksum_ok(path: Path) -> bool:
    """A pack ends with the SHA-1 (or SHA-256) of everything before it."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        for algo in ("sha1", "sha256"):
            h = hashlib.new(algo)
            trailer = h.digest_size
            if size < 12 + trailer:
                continue
            fh.seek(0)
            left = size - trailer
            while left:
                chunk = fh.read(min(left, 1 << 20))
                if not chunk:
                    return False
                h.update(chunk)
                left -= len(chunk)
            # not a secret, but the house rule (W-03) is one constant-time compare for every digest
            if hmac.compare_digest(fh.read(trailer), h.digest()):
                return True
    return False


async def _sound(entry: Path, gen: Path) -> bool:
    """The deeper check after a git failure: structure, every pack's checksum and object connectivity."""
    if _structure(gen) or _verify_packs(entry, gen, full=True):
        return False
    rc, _, _ = await _exec_git(
        ["--git-dir", str(gen), "fsck", "--connectivity-only", "--no-dangling", "--no-progress"],
        cwd=gen,
        extra_env=None,
        timeout=300,
        input=None,
    )
    return rc == 0


async def _keep_tips(gen: Path, shas: list[str]) -> None:
    """Refs on recent heads: the tips a later fetch names as "have", so only new objects are sent."""
    stamp = f"{time.time_ns():020d}"
    lines = [f"update refs/tips/{stamp}-{sha[:12]} {sha}" for sha in dict.fromkeys(shas)]
    try:  # loose refs only: nothing here ever packs them (no gc, no pack-refs)
        existing = sorted(f"refs/tips/{name}" for name in os.listdir(gen / "refs" / "tips"))
    except FileNotFoundError:
        existing = []
    again = {f"-{sha[:12]}" for sha in shas}
    stale = [ref for ref in existing if ref[-13:] in again]  # re-stamped below
    rest = [ref for ref in existing if ref not in stale]
    stale += rest[: max(0, len(rest) + len(lines) - _KEEP_REFS)]
    lines += [f"delete {ref}" for ref in stale]
    await run_git(
        ["--git-dir", str(gen), "update-ref", "--stdin"], cwd=gen, input="\n".join(lines).encode() + b"\n"
    )


__all__ = ["CONFIG", "Lease", "RepoCache", "cache_key"]
