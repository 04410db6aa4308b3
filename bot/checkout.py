"""Hardened git: fetch exactly one head (and base) SHA into a throwaway scratch directory (S-01…S-12).

Everything a pull request controls stays data. Every git call:

- runs as an argv list (never a shell) with a minimal environment built from scratch, so none of
  the worker's model keys or tokens reach git (invariant 2, T-05);
- carries ``-c`` overrides that switch off hooks, symlinks, fsmonitor, submodules, every transport
  protocol, LFS and filter drivers, external diff drivers and attribute files (S-01…S-03);
- ignores the system and global config (``GIT_CONFIG_NOSYSTEM``, ``GIT_CONFIG_GLOBAL=/dev/null``);
- is killed with its whole process group on timeout or cancellation, and reports failures as
  :class:`~bot.errors.WorkspaceError` whose text is scrubbed of secrets (K-03).

Layout of a workspace (the scratch directory is mode 0700 and always removed, S-11)::

    <scratch>/git/    the git dir: outside the working tree, so the tools can never reach it (S-12)
    <scratch>/tree/   the head commit's files; symlinks are plain files holding the target (S-05)

The fetch credential travels only in ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_0``/``GIT_CONFIG_VALUE_0``
of the fetch process: never in argv, the URL or ``.git/config`` (S-12).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import os
import re
import shutil
import stat
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import BudgetExceeded, WorkspaceError
from bot.log import get_logger
from bot.process import child_env, kill_group, reap
from bot.redact import PLACEHOLDER, SECRETS, SecretSet, redact_patterns

if TYPE_CHECKING:
    from bot.repocache import RepoCache

log = get_logger(__name__)

# git fsck's message ids about .gitmodules (git 2.39+ knows all of them; an unknown id is fatal).
GITMODULES_FSCK_IDS: tuple[str, ...] = (
    "gitmodulesBlob",
    "gitmodulesLarge",
    "gitmodulesMissing",
    "gitmodulesName",
    "gitmodulesParse",
    "gitmodulesPath",
    "gitmodulesSymlink",
    "gitmodulesUpdate",
    "gitmodulesUrl",
)

# Overrides given to every git call. Each is a real git option (see git-config(1)).
HARDENING: tuple[str, ...] = (
    "core.hooksPath=/dev/null",  # no hook from anywhere ever runs (S-01)
    "core.symlinks=false",  # links are checked out as plain files holding the target (S-05)
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    "core.attributesFile=/dev/null",
    "core.askPass=",
    "core.protectNTFS=true",  # refuse tree entries that alias .git on other filesystems (S-08)
    "core.protectHFS=true",
    "credential.helper=",  # an empty value resets the helper list
    "submodule.recurse=false",  # submodules are never initialised or fetched (S-02)
    "fetch.recurseSubmodules=false",
    "protocol.allow=never",  # every transport is off; a fetch re-enables only its own scheme
    "protocol.file.allow=never",
    "protocol.version=2",  # v2 serves any reachable object, so a fetch can name a bare SHA (C-05)
    "transfer.fsckObjects=true",  # malformed objects and trees are rejected at fetch (S-08)
    "fetch.fsckObjects=true",
    "receive.fsckObjects=true",
    # S-02: every fsck check stays on except the .gitmodules ones. Submodules are never initialised, so
    # a hostile .gitmodules is inert data to us; rejecting the pack would let any author opt a PR out of
    # review. The offline rule `gitmodules-hostile` reports such entries instead.
    *(f"fetch.fsck.{msg_id}=ignore" for msg_id in GITMODULES_FSCK_IDS),
    "filter.lfs.smudge=",  # no LFS download, no LFS endpoint contacted (S-03)
    "filter.lfs.clean=",
    "filter.lfs.process=",
    "filter.lfs.required=false",
    "diff.external=",
    "http.followRedirects=false",  # the auth header must not follow a redirect elsewhere
    "gc.auto=0",  # no background gc/maintenance child outliving the call
    "maintenance.auto=false",
    "safe.bareRepository=explicit",  # a bare repo embedded in a checkout is never auto-discovered
    "advice.detachedHead=false",
    "init.defaultBranch=main",
)

_SHA = re.compile(r"\A(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
_STDERR_TAIL = 2000
_DEFAULT_DEPTH = 50
_MAX_DEPTH = 20_000
# S-09: deeper trees are refused before checkout. Real projects stay far below this (deep Java packages
# reach ~15); a path nested this deep still fits well within PATH_MAX for git's own checkout.
DEFAULT_MAX_DEPTH = 256
_LOOPBACK_NAMES = frozenset({"localhost"})

# S-01: the first patched release in each affected series (CVE-2025-48384 and friends).
_PATCHED: dict[int, int] = {43: 7, 44: 4, 45: 4, 46: 4, 47: 3, 48: 2, 49: 1, 50: 1}


def check_git_version(version_text: str) -> str | None:
    """A warning when ``git --version`` output names a release older than the S-01 patched ones.

    It warns rather than refuses: distributions backport fixes without changing the version.
    """
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", version_text)
    if not m:
        return f"could not parse the git version from {version_text.strip()[:80]!r}; make sure git is patched"
    major, minor, patch = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    found = f"{major}.{minor}.{patch}"
    advice = "use at least 2.43.7/2.44.4/2.45.4/2.46.4/2.47.3/2.48.2/2.49.1/2.50.1 in its series"
    if major < 2 or (major == 2 and minor < min(_PATCHED)):
        return f"git {found} predates the fixes for CVE-2025-48384 and related bugs; {advice}"
    if major == 2 and minor in _PATCHED and patch < _PATCHED[minor]:
        return f"git {found} lacks the fixes for CVE-2025-48384 and related bugs; {advice}"
    return None


def git_env(extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a git child, built from scratch: nothing from ``os.environ``."""
    env = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_SYSTEM": "/dev/null",
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_LFS_SKIP_SMUDGE": "1",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_PAGER": "cat",
    }
    env.update(extra_env or {})
    return child_env(env)


def _git_executable() -> str:
    found = shutil.which("git")
    if found is None:
        raise WorkspaceError("git is not installed")
    return found


def _credential_values(extra_env: Mapping[str, str]) -> list[str]:
    """Every form of a credential passed through GIT_CONFIG_VALUE_n: whole, per word, decoded."""
    out: list[str] = []
    for key, value in extra_env.items():
        if not key.startswith("GIT_CONFIG_VALUE_"):
            continue
        out.append(value)
        for word in value.split():
            out.append(word)
            with contextlib.suppress(ValueError):
                decoded = base64.b64decode(word, validate=True).decode("utf-8")
                out.append(decoded)
                out.extend(decoded.split(":"))
    return [v for v in out if len(v) >= 8]


def _scrub(text: str, extra_env: Mapping[str, str], secrets: SecretSet) -> str:
    """git's error output without the credentials of this call (``extra_env``) nor ``secrets``."""
    local = SecretSet(_credential_values(extra_env))
    for value in sorted(_credential_values(extra_env), key=len, reverse=True):
        text = text.replace(value, PLACEHOLDER)
    text = redact_patterns(secrets.scrub(local.scrub(text)))
    if local.find(text) or secrets.find(text):
        return "[git output withheld: it contained a secret]"
    return text


async def _exec_git(
    args: Sequence[str],
    *,
    cwd: Path | None,
    extra_env: Mapping[str, str] | None,
    timeout: float,  # noqa: ASYNC109 - on expiry the whole process group is killed
    input: bytes | None,
) -> tuple[int, bytes, str]:
    extra = dict(extra_env or {})
    argv = [_git_executable(), "--no-pager"]
    for option in HARDENING:
        argv += ["-c", option]
    argv += list(args)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=git_env(extra),
            start_new_session=True,
        )
    except OSError as exc:
        raise WorkspaceError(f"could not run git: {exc.strerror or type(exc).__name__}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), timeout)
    except TimeoutError:
        kill_group(proc)
        await reap(proc)
        raise WorkspaceError(f"git {_verb(args)} timed out after {timeout:g} s") from None
    except BaseException:  # cancellation: never leave git running in a directory being removed
        kill_group(proc)
        await asyncio.shield(reap(proc))
        raise
    rc = proc.returncode if proc.returncode is not None else -1
    return rc, out, _scrub(err.decode("utf-8", "replace")[-_STDERR_TAIL:].strip(), extra, SECRETS)


def _verb(args: Sequence[str]) -> str:
    """The git subcommand in ``args`` (skipping leading global options), for error messages."""
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a in ("-c", "-C", "--git-dir", "--work-tree"):
            skip = True
        elif not a.startswith("-"):
            return a
    return "command"


async def run_git(
    args: Sequence[str],
    *,
    cwd: Path | None,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 120,  # noqa: ASYNC109 - on expiry the whole process group is killed
    input: bytes | None = None,
) -> bytes:
    """Run hardened git with ``args``; return stdout. Any failure raises a scrubbed WorkspaceError."""
    rc, out, err = await _exec_git(args, cwd=cwd, extra_env=extra_env, timeout=timeout, input=input)
    if rc != 0:
        raise WorkspaceError(f"git {_verb(args)} failed (exit {rc}): {err or 'no message'}")
    return out


@dataclass(frozen=True)
class GitSource:
    """Where to fetch from; only the remote and its authentication differ between sources."""

    url: str
    auth_header: str | None = field(default=None, repr=False)

    @classmethod
    def local(cls, path: Path) -> GitSource:
        return cls(str(Path(path).resolve()))

    @classmethod
    def https(cls, url: str, token: str) -> GitSource:
        """An https remote with an installation token as the ``x-access-token`` basic credential.

        Plain ``http`` is accepted only for loopback hosts (the test harness's git remote).
        """
        parts = urllib.parse.urlsplit(url)
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise WorkspaceError("credentials must not be part of the git URL")
        if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
            raise WorkspaceError("plain http is allowed only for loopback git remotes")
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise WorkspaceError("the git remote must be an https URL")
        if any(ord(c) < 0x21 for c in url):
            raise WorkspaceError("the git URL contains control characters or spaces")
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        return cls(url, f"AUTHORIZATION: basic {basic}")

    @property
    def is_local(self) -> bool:
        return self.url.startswith("/")

    def fetch_config(self) -> tuple[list[str], dict[str, str]]:
        """The ``-c`` arguments and environment that let exactly this remote be fetched."""
        if self.is_local:
            # A plain local path counts as the "file" protocol. Allowing it here is safe: only for
            # this top-level fetch, and the path is the user's own repository (the local CLI), never
            # a value from a pull request; submodules stay impossible because nothing recurses.
            args = ["-c", "protocol.file.allow=always"]
        else:
            args = ["-c", f"protocol.{urllib.parse.urlsplit(self.url).scheme}.allow=always"]
        env: dict[str, str] = {}
        if self.auth_header:
            env = {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": self.auth_header,
            }
        return args, env


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_sha(sha: str, what: str) -> str:
    if not isinstance(sha, str) or not _SHA.match(sha):
        raise WorkspaceError(f"{what} must be a full lowercase commit SHA")
    return sha


@dataclass
class _Pending:
    """What a lazy workspace has written so far."""

    full: bool = False
    written: set[str] = field(default_factory=set)
    index: frozenset[str] = frozenset()  # every path of the head tree in the index


@dataclass(frozen=True)
class Workspace:
    """A checkout of ``head_sha`` at ``path``; its git dir lives outside the tree at ``git_dir``."""

    path: Path
    head_sha: str
    base_sha: str | None
    merge_base: str | None
    git_dir: Path
    source: GitSource | None = field(default=None, repr=False, compare=False)
    depth: int = field(default=_DEFAULT_DEPTH, repr=False, compare=False)
    pending: _Pending | None = field(default=None, repr=False, compare=False)  # lazy: files not yet written

    async def materialize(self, paths: Iterable[str]) -> None:
        """Write these head files into the tree (a lazy workspace); paths not in the head are ignored."""
        pending = self.pending
        if pending is None or pending.full:
            return
        wanted = sorted({p for p in paths if p in pending.index} - pending.written)
        if wanted:
            data = "\0".join(wanted).encode("utf-8", "surrogateescape") + b"\0"
            await self._tree_git(["checkout-index", "--force", "-z", "--stdin"], data)
            pending.written.update(wanted)

    async def materialize_all(self) -> None:
        """Write the whole head tree (before anything, such as the agent's tools, may read any file)."""
        pending = self.pending
        if pending is None or pending.full:
            return
        await self._tree_git(["checkout-index", "--all", "--force"])
        pending.full = True

    async def _tree_git(self, args: Sequence[str], data: bytes | None = None) -> bytes:
        common = ["--git-dir", str(self.git_dir), "--work-tree", str(self.path)]
        return await run_git([*common, *args], cwd=self.path, timeout=300, input=data)

    async def git(self, args: Sequence[str]) -> bytes:
        """Run hardened git against this workspace's git dir (no working tree)."""
        return await run_git(["--git-dir", str(self.git_dir), *args], cwd=self.git_dir)

    async def has_commit(self, sha: str) -> bool:
        return await _has_commit(self.git_dir, sha)

    async def ensure_commit(self, sha: str) -> bool:
        """Fetch ``sha`` (by SHA, from the same source) when it is missing; False when it cannot be had."""
        if not _SHA.fullmatch(sha):
            return False
        if await self.has_commit(sha):
            return True
        if self.source is None:
            return False
        try:
            await _fetch(self.git_dir, self.source, [sha], self.depth)
        except WorkspaceError:
            return False
        return await self.has_commit(sha)

    async def is_ancestor(self, sha: str) -> bool:
        """Whether ``sha`` is an ancestor of the head (false after a force-push rewrote history)."""
        if not await self.ensure_commit(sha):
            return False
        rc, _, _ = await _exec_git(
            ["--git-dir", str(self.git_dir), "merge-base", "--is-ancestor", sha, self.head_sha],
            cwd=self.git_dir,
            extra_env=None,
            timeout=30,
            input=None,
        )
        return rc == 0

    async def read_blobs(self, rev: str, paths: Sequence[str], max_bytes: int) -> dict[str, bytes]:
        """The files ``paths`` as of ``rev`` (one ``git cat-file --batch``); missing/larger ones omitted."""
        if not paths or not _SHA.fullmatch(rev):
            return {}
        found = await self.read_objects([f"{rev}:{p}" for p in paths], max_bytes)
        return {name.partition(":")[2]: data for name, data in found.items()}

    async def read_objects(self, names: Sequence[str], max_bytes: int) -> dict[str, bytes]:
        """Blobs by object name (``<sha>`` or ``<rev>:<path>``) in one ``git cat-file --batch``; missing,
        non-blob and larger ones are omitted."""
        wanted = [n for n in names if "\n" not in n]
        if not wanted:
            return {}
        _, out, _ = await _exec_git(
            ["--git-dir", str(self.git_dir), "cat-file", "--batch"],
            cwd=self.git_dir,
            extra_env=None,
            timeout=60,
            input="".join(f"{n}\n" for n in wanted).encode(),
        )
        found: dict[str, bytes] = {}
        pos = 0
        for name in wanted:
            nl = out.find(b"\n", pos)
            if nl < 0:
                break
            header = out[pos:nl].split()
            pos = nl + 1
            if len(header) != 3 or header[1] != b"blob":
                continue  # "<name> missing", or a tree/submodule
            size = int(header[2])
            if size <= max_bytes:
                found[name] = out[pos : pos + size]
            pos += size + 1
        return found

    async def diff(self, *, context: int = 3, base: str | None = None) -> str:
        """The unified diff from the merge base (or ``base``, e.g. a previously reviewed head) to head."""
        start = base if base is not None else (self.merge_base or self.base_sha)
        if start is None:
            raise WorkspaceError("no base commit to diff against")
        _check_sha(start, "diff base")
        if base is not None and not await self.ensure_commit(base):
            raise WorkspaceError(f"commit {base[:12]} is not available from the repository")
        out = await self.git(
            [
                "diff",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                "--find-renames",
                "--submodule=short",
                "--src-prefix=a/",
                "--dst-prefix=b/",
                f"-U{max(0, int(context))}",
                start,
                self.head_sha,
                "--",
            ]
        )
        return out.decode("utf-8", "replace")


async def _fetch(
    git_dir: Path, source: GitSource, shas: Iterable[str], depth: int | None, *, unshallow: bool = False
) -> None:
    config, env = source.fetch_config()
    depth_args = ["--unshallow"] if unshallow else [f"--depth={depth}"] if depth else []
    await run_git(
        [
            "--git-dir",
            str(git_dir),
            *config,
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-recurse-submodules",
            "--no-write-fetch-head",
            *depth_args,
            "--",
            source.url,
            *shas,
        ],
        cwd=git_dir,
        extra_env=env,
        timeout=300,
    )


async def _is_shallow(git_dir: Path) -> bool:
    out = await run_git(["--git-dir", str(git_dir), "rev-parse", "--is-shallow-repository"], cwd=git_dir)
    return out.strip() == b"true"


async def _merge_base_in(git_dir: Path, a: str, b: str) -> str | None:
    rc, out, err = await _exec_git(
        ["--git-dir", str(git_dir), "merge-base", a, b], cwd=git_dir, extra_env=None, timeout=60, input=None
    )
    if rc == 1 and not out.strip():
        return None
    if rc != 0:
        raise WorkspaceError(f"git merge-base failed (exit {rc}): {err or 'no message'}")
    return out.decode().strip() or None


@dataclass(frozen=True)
class TreeCaps:
    """S-09: what a head tree may hold; each None is unlimited. Checked from the listing, before checkout."""

    max_files: int | None = None
    max_bytes: int | None = None
    max_depth: int | None = DEFAULT_MAX_DEPTH


async def _check_size(git_dir: Path, sha: str, caps: TreeCaps) -> frozenset[str]:
    """S-09: refuse an oversized tree from its listing, before anything is written to disk.

    Returns the tree's paths (what a lazy workspace may write)."""
    out = await run_git(["--git-dir", str(git_dir), "ls-tree", "-r", "-l", "-z", sha], cwd=git_dir)
    files = 0
    total = 0
    depth = 0
    paths: list[str] = []
    for entry in out.split(b"\0"):
        if not entry:
            continue
        meta, _, name = entry.partition(b"\t")
        fields = meta.split()
        files += 1
        paths.append(name.decode("utf-8", "surrogateescape"))
        depth = max(depth, name.count(b"/") + 1)
        if len(fields) == 4 and fields[3].isdigit():
            total += int(fields[3])
    if caps.max_files is not None and files > caps.max_files:
        raise BudgetExceeded(f"the head tree has {files:,} files (limit {caps.max_files:,})")
    if caps.max_bytes is not None and total > caps.max_bytes:
        raise BudgetExceeded(f"the head tree has {total:,} bytes (limit {caps.max_bytes:,})")
    if caps.max_depth is not None and depth > caps.max_depth:
        raise BudgetExceeded(f"the head tree has a path {depth:,} levels deep (limit {caps.max_depth:,})")
    return frozenset(paths)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def remove_tree(path: Path) -> None:
    """Remove ``path`` and everything under it without recursion and without long paths (S-09, S-11).

    ``shutil.rmtree`` recurses once per directory level, so a tree 1,000 directories deep raises
    RecursionError; full paths of such a tree also pass PATH_MAX. This walks with one directory
    descriptor at a time (names relative to it, ``..`` to climb), so neither depth nor path length
    matters, and symlinks are removed, never followed.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    fd = os.open(path, _DIR_FLAGS)
    # one frame per level: (name of this directory in its parent, its subdirectories still to remove)
    stack: list[tuple[str, list[str]]] = [("", _clear_files(fd))]
    try:
        while stack:
            name, pending = stack[-1]
            if pending:
                child = pending.pop()
                child_fd = os.open(child, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child_fd
                stack.append((child, _clear_files(fd)))
                continue
            stack.pop()
            if not stack:
                break
            parent_fd = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent_fd
            os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(path)


def _clear_files(fd: int) -> list[str]:
    """Unlink every non-directory in the directory ``fd``; return its subdirectories' names."""
    with contextlib.suppress(OSError):  # a read-only directory in the tree: make it ours first
        os.fchmod(fd, stat.S_IRWXU)
    subdirs: list[str] = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
            else:
                os.unlink(entry.name, dir_fd=fd)
    return subdirs


def _remove(path: Path) -> None:
    """Remove a scratch directory; a failure is logged, never raised (it must not fail a finished job)."""
    try:
        remove_tree(path)
    except OSError as exc:
        log.error("could not remove a scratch directory", path=str(path), error=type(exc).__name__)


@contextlib.asynccontextmanager
async def workspace(
    source: GitSource,
    head_sha: str,
    base_sha: str | None = None,
    *,
    scratch_root: Path | None = None,
    depth: int | None = None,
    fetch_base: bool = True,
    max_files: int | None = None,
    max_bytes: int | None = None,
    max_depth: int | None = DEFAULT_MAX_DEPTH,
    cache: RepoCache | None = None,
    lazy: bool = False,
) -> AsyncIterator[Workspace]:
    """Fetch ``head_sha`` (and ``base_sha``) by SHA and check the head out; always clean up.

    History is fetched shallow (``depth``, default 50) and deepened fourfold until the merge base
    of head and base is found or the history is complete. A partial clone (``--filter=blob:none``)
    would make every later diff or checkout fetch blobs lazily, so it is not used.

    With a ``cache`` (the App's workers), objects are fetched into the repository's persistent cache
    instead, only those missing, and this workspace's own git dir reads them from there. With ``lazy``
    only the index is filled: callers write the files they read with :meth:`Workspace.materialize`
    (the changed files) or :meth:`Workspace.materialize_all` (before the agent's tools see the tree).
    """
    _check_sha(head_sha, "head SHA")
    if base_sha is not None:
        _check_sha(base_sha, "base SHA")
    start_depth = depth or _DEFAULT_DEPTH
    scratch = Path(tempfile.mkdtemp(prefix="br-ws-", dir=scratch_root))  # mkdtemp: mode 0700
    try:
        async with contextlib.AsyncExitStack() as stack:
            git_dir = scratch / "git"
            tree = scratch / "tree"
            want_base = base_sha if fetch_base else None
            caps = TreeCaps(max_files, max_bytes, max_depth)
            for attempt in (1, 2):
                _remove(git_dir)
                _remove(tree)
                tree.mkdir(mode=0o700)
                # --template= (empty): no sample hooks or info files are copied in (S-01)
                await run_git(["init", "--quiet", "--bare", "--template=", str(git_dir)], cwd=scratch)
                objects: Path | None = None
                try:
                    if cache is None:
                        found_base = await fetch_history(
                            git_dir, source, head_sha, want_base, start_depth, fresh=True
                        )
                    else:
                        # the objects come from the shared cache (held while this workspace lives); this
                        # job's git dir borrows them through objects/info/alternates, read-only
                        lease = await stack.enter_async_context(
                            cache.lease(source, head_sha, want_base, start_depth)
                        )
                        objects = lease.objects
                        info = git_dir / "objects" / "info"
                        info.mkdir(parents=True, exist_ok=True)
                        (info / "alternates").write_text(f"{lease.objects}\n")
                        if lease.shallow is not None:
                            (git_dir / "shallow").write_bytes(lease.shallow)
                        found_base = lease.merge_base
                    paths = await _checkout(git_dir, tree, head_sha, caps, lazy=lazy)
                    break
                except WorkspaceError:
                    # a cache corrupted in a way the cheap check missed shows up as a failing git: if
                    # the deep check confirms it, the generation is dropped and this job re-seeds once
                    if cache is None or objects is None or attempt == 2 or not await cache.condemn(objects):
                        raise
            log.info("workspace ready", head=head_sha[:12], merge_base=(found_base or "")[:12])
            yield Workspace(
                path=tree,
                head_sha=head_sha,
                base_sha=base_sha,
                merge_base=found_base,
                git_dir=git_dir,
                source=source,
                depth=start_depth,
                pending=_Pending(index=paths) if lazy else None,
            )
    finally:
        # synchronous on purpose: an awaited removal could itself be cancelled and leak the tree
        _remove(scratch)


async def fetch_history(
    git_dir: Path,
    source: GitSource,
    head_sha: str,
    base_sha: str | None,
    depth: int = _DEFAULT_DEPTH,
    *,
    fresh: bool = False,
) -> str | None:
    """Fetch the commits of ``head_sha`` and ``base_sha`` that ``git_dir`` lacks (both when ``fresh``),
    by SHA and shallow, deepening fourfold until their merge base is found (returned) or the history
    is complete. The one implementation: workspaces, the repository cache and ``ci`` use it."""
    wanted = [head_sha] + ([base_sha] if base_sha and base_sha != head_sha else [])
    missing = wanted if fresh else await _missing_commits(git_dir, wanted)
    if missing:
        await _fetch(git_dir, source, missing, depth)
    if base_sha is None:
        return None
    found_base = await _merge_base_in(git_dir, head_sha, base_sha)
    current = depth
    while found_base is None and await _is_shallow(git_dir):
        current *= 4
        if current > _MAX_DEPTH:  # a very old fork point: take the whole history once
            await _fetch(git_dir, source, wanted, None, unshallow=True)
        else:
            await _fetch(git_dir, source, wanted, current)
        found_base = await _merge_base_in(git_dir, head_sha, base_sha)
    return found_base


async def history_ready(git_dir: Path, head_sha: str, base_sha: str) -> bool:
    """Whether ``git_dir`` holds both commits and their merge base, or (a complete history, as
    ``fetch-depth: 0`` leaves) no fetch could find one: then :func:`fetch_history` has nothing to do."""
    if await _missing_commits(git_dir, [head_sha, base_sha]):
        return False
    return await _merge_base_in(git_dir, head_sha, base_sha) is not None or not await _is_shallow(git_dir)


async def git_dir_of(repo: Path) -> Path:
    """The git directory of a local repository: its ``.git`` (wherever a gitfile points), or itself."""
    out = await run_git([*_local(repo), "rev-parse", "--absolute-git-dir"], cwd=repo, timeout=30)
    return Path(out.decode().strip())


async def _missing_commits(git_dir: Path, shas: list[str]) -> list[str]:
    """Which of ``shas`` are not commits in ``git_dir`` (one git call for all of them)."""
    query = "".join(f"{sha}^{{commit}}\n" for sha in shas).encode()
    out = await run_git(["--git-dir", str(git_dir), "cat-file", "--batch-check"], cwd=git_dir, input=query)
    answers = out.decode().splitlines()
    # "<sha> commit <size>" when present; "<sha>^{commit} missing" (or ambiguous…) otherwise
    return [sha for sha, line in zip(shas, answers, strict=True) if line.split()[:2] != [sha, "commit"]]


async def _has_commit(git_dir: Path, sha: str) -> bool:
    rc, _, _ = await _exec_git(
        ["--git-dir", str(git_dir), "cat-file", "-e", f"{sha}^{{commit}}"],
        cwd=git_dir,
        extra_env=None,
        timeout=30,
        input=None,
    )
    return rc == 0


async def _checkout(
    git_dir: Path, tree: Path, head_sha: str, caps: TreeCaps, *, lazy: bool
) -> frozenset[str]:
    """Check ``head_sha`` out into ``tree`` after S-09's caps pass; return the paths in the index.

    ``lazy`` fills only the index: files are then written on demand by :meth:`Workspace.materialize`
    (the same hardened git writes them: ``checkout-index`` shares checkout's code and options)."""
    paths = await _check_size(git_dir, head_sha, caps)
    common = ["--git-dir", str(git_dir), "--work-tree", str(tree)]
    try:
        if lazy:  # the index is read from exactly this SHA: no HEAD to confirm
            await run_git([*common, "read-tree", head_sha], cwd=tree, timeout=300)
            return paths
        await run_git(
            [*common, "checkout", "--quiet", "--force", "--no-recurse-submodules", "--detach", head_sha],
            cwd=tree,
            timeout=300,
        )
    except WorkspaceError as exc:
        if not _INVALID_PATH.search(str(exc)):
            raise
        skipped = await _index_without_invalid_paths(git_dir, tree, head_sha)
        log.warning("paths git refuses to check out were left out", count=len(skipped))
        # update-index may also drop entries quietly: the index itself says what is there
        listing = await run_git([*common, "ls-files", "-z"], cwd=tree, timeout=300)
        paths = frozenset(listing.decode("utf-8", "surrogateescape").split("\0")) - {""}
        if lazy:
            return paths
        await run_git([*common, "checkout-index", "--all", "--force"], cwd=tree, timeout=300)
        await run_git([*common, "update-ref", "--no-deref", "HEAD", head_sha], cwd=tree)
    checked = (await run_git([*common, "rev-parse", "--verify", "HEAD^{commit}"], cwd=tree)).decode()
    if checked.strip() != head_sha:
        raise WorkspaceError("the checked-out HEAD is not the requested commit")
    return paths


_INVALID_PATH = re.compile(r"invalid path '((?:[^'\n]|'(?!\n|$))*)'", re.IGNORECASE)
_MAX_INVALID = 64


async def _index_without_invalid_paths(git_dir: Path, tree: Path, head_sha: str) -> list[str]:
    """The head's index without the entries git's path checks refuse (a ``.gitmodules`` symlink, a
    ``.git`` alias, …): such a tree was fetched because only gitmodules* fsck checks are relaxed (S-02),
    and it must still be reviewed rather than fail the job. Returns the paths left out."""
    common = ["--git-dir", str(git_dir), "--work-tree", str(tree)]
    listing = await run_git([*common, "ls-tree", "-r", "-z", "--full-tree", head_sha], cwd=tree, timeout=300)
    entries = [e for e in listing.split(b"\0") if e]
    skipped: list[str] = []
    for _ in range(_MAX_INVALID):
        keep = b"".join(
            e + b"\0"
            for e in entries
            if e.partition(b"\t")[2].decode("utf-8", "surrogateescape") not in skipped
        )
        with contextlib.suppress(FileNotFoundError):
            (git_dir / "index").unlink()
        rc, _, err = await _exec_git(
            [*common, "update-index", "-z", "--index-info"], cwd=tree, extra_env=None, timeout=300, input=keep
        )
        if rc == 0:
            return skipped
        found = _INVALID_PATH.search(err)
        if found is None or found.group(1) in skipped:
            raise WorkspaceError(f"git update-index failed (exit {rc}): {err or 'no message'}")
        skipped.append(found.group(1))
    raise WorkspaceError("the head tree has too many paths git refuses to check out")


def _local(repo: Path) -> list[str]:
    """Name a bare local repository explicitly: safe.bareRepository=explicit refuses to discover one."""
    if not (repo / ".git").exists() and (repo / "HEAD").is_file() and (repo / "objects").is_dir():
        return ["--git-dir", str(repo)]
    return []


async def resolve_ref(repo: Path, ref: str) -> str:
    """The commit SHA a ref names in a local repository (local CLI)."""
    if not ref or ref.startswith("-") or any(ord(c) < 0x20 for c in ref):
        raise WorkspaceError(f"not a valid ref: {ref!r}")
    out = await run_git(
        [*_local(repo), "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], cwd=repo
    )
    return out.decode().strip()


async def merge_base(repo: Path, a: str, b: str) -> str | None:
    """The best common ancestor of ``a`` and ``b`` in a local repository, or None when unrelated."""
    for ref in (a, b):
        if not ref or ref.startswith("-"):
            raise WorkspaceError(f"not a valid ref: {ref!r}")
    rc, out, err = await _exec_git(
        [*_local(repo), "merge-base", "--end-of-options", a, b],
        cwd=repo,
        extra_env=None,
        timeout=60,
        input=None,
    )
    if rc == 1 and not out.strip():
        return None
    if rc != 0:
        raise WorkspaceError(f"git merge-base failed (exit {rc}): {err or 'no message'}")
    return out.decode().strip()


async def default_branch(repo: Path) -> str | None:
    """The local repository's default branch: origin/HEAD's target, else main, else master."""
    rc, out, _ = await _exec_git(
        [*_local(repo), "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"],
        cwd=repo,
        extra_env=None,
        timeout=30,
        input=None,
    )
    target = out.decode().strip()
    if rc == 0 and target.startswith("refs/remotes/"):
        return target.removeprefix("refs/remotes/")
    for name in ("main", "master"):
        rc, _, _ = await _exec_git(
            [*_local(repo), "show-ref", "--verify", "--quiet", f"refs/heads/{name}"],
            cwd=repo,
            extra_env=None,
            timeout=30,
            input=None,
        )
        if rc == 0:
            return name
    return None


__all__ = [
    "DEFAULT_MAX_DEPTH",
    "GITMODULES_FSCK_IDS",
    "HARDENING",
    "GitSource",
    "TreeCaps",
    "Workspace",
    "check_git_version",
    "default_branch",
    "fetch_history",
    "git_dir_of",
    "git_env",
    "history_ready",
    "merge_base",
    "remove_tree",
    "resolve_ref",
    "run_git",
    "workspace",
]
