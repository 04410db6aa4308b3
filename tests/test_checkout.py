"""bot/checkout.py against real git repositories: hardening (S-01…S-12), cleanup, scrubbing (K-03)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import checkout
from bot.checkout import (
    GitSource,
    Workspace,
    check_git_version,
    default_branch,
    git_env,
    merge_base,
    resolve_ref,
    run_git,
    workspace,
)
from bot.errors import BudgetExceeded, WorkspaceError
from bot.redact import SecretSet
from tests.support.gitrepo import GitRepo, init_repo

MISSING_SHA = "0123456789abcdef0123456789abcdef01234567"


def _pwned() -> Path:
    return Path(f"/tmp/pwned-{uuid.uuid4().hex}")


def _hook_script(pwned: Path) -> str:
    return f"#!/bin/sh\ntouch {pwned}\n"


def _scratch_entries(root: Path) -> list[str]:
    return sorted(os.listdir(root)) if root.exists() else []


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            pids.append(int(entry))
    return pids


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts TCP connections (kernel backlog) but never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """The scratch root for workspaces; it must be empty again after every workspace."""
    path = tmp_path / "scratch"
    path.mkdir()
    return path


@pytest.fixture
def closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def _two_branches(repo: GitRepo) -> tuple[str, str]:
    """main with two commits, feature branching from the first: returns (base_sha, head_sha)."""
    first = repo.commit("base", {"app.py": "def f():\n    return 1\n", "old_name.py": "x = 1\n" * 20})
    repo.branch("feature")
    repo.git("mv", "old_name.py", "new_name.py")
    head = repo.commit("feature", {"app.py": "def f():\n    return 2\n"})
    repo.checkout("main")
    base = repo.commit("main moves on", {"other.py": "y = 2\n"})
    assert repo.git("merge-base", base, head) == first
    return base, head


# -- S-01 git version ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "warns"),
    [
        ("git version 2.39.5", True),
        ("git version 2.42.4", True),
        ("git version 2.43.6", True),
        ("git version 2.43.7", False),
        ("git version 2.44.3", True),
        ("git version 2.44.4", False),
        ("git version 2.47.2", True),
        ("git version 2.48.2", False),
        ("git version 2.50.0", True),
        ("git version 2.50.1", False),
        ("git version 2.51.0", False),
        ("git version 3.0.0", False),
        ("git version 1.9.5", True),
        ("git version 2.49.1.windows.1", False),
        ("git version 2.39.5 (Apple Git-154)", True),
        ("no version here", True),
    ],
)
def test_s01_check_git_version(text: str, warns: bool) -> None:
    warning = check_git_version(text)
    assert (warning is not None) is warns
    if warning and "parse" not in warning:
        assert "2.43.7" in warning


# -- child environment (invariant 2, T-05) ---------------------------------------------------------

ALLOWED_ENV = {
    "PATH",
    "HOME",
    "XDG_CONFIG_HOME",
    "LANG",
    "LC_ALL",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_ATTR_NOSYSTEM",
    "GIT_TERMINAL_PROMPT",
    "GIT_LFS_SKIP_SMUDGE",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_PROTOCOL_FROM_USER",
    "GIT_OPTIONAL_LOCKS",
    "GIT_PAGER",
}


def test_t05_git_env_is_built_from_scratch(monkeypatch: pytest.MonkeyPatch) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    for name in ("BR_CANARY", "ANTHROPIC_API_KEY", "GITHUB_TOKEN", "GIT_DIR", "GIT_CONFIG_PARAMETERS"):
        monkeypatch.setenv(name, canary)
    env = git_env()
    assert set(env) == ALLOWED_ENV
    assert canary not in "".join(env.values())
    assert env["GIT_CONFIG_GLOBAL"] == "/dev/null" and env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_LFS_SKIP_SMUDGE"] == "1"
    assert env["HOME"] == "/nonexistent"
    with_auth = git_env({"GIT_CONFIG_COUNT": "1"})
    assert set(with_auth) == ALLOWED_ENV | {"GIT_CONFIG_COUNT"}


def test_s01_every_call_carries_the_hardening_options() -> None:
    for option in (
        "core.hooksPath=/dev/null",
        "core.symlinks=false",
        "core.fsmonitor=false",
        "submodule.recurse=false",
        "protocol.file.allow=never",
        "protocol.allow=never",
        "transfer.fsckObjects=true",
        "filter.lfs.smudge=",
        "filter.lfs.process=",
        "filter.lfs.required=false",
        "core.attributesFile=/dev/null",
    ):
        assert option in checkout.HARDENING


def test_t05_parent_git_variables_do_not_reach_git(
    git_repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git_repo.commit("one", {"a.txt": "a\n"})
    trace = tmp_path / "trace.log"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    out = asyncio.run(run_git(["rev-parse", "--show-toplevel"], cwd=git_repo.path))
    assert Path(out.decode().strip()) == git_repo.path.resolve()
    assert not trace.exists()


# -- workspace basics ------------------------------------------------------------------------------


def test_workspace_checks_out_head_with_merge_base_and_git_dir_outside(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    base, head = _two_branches(git_repo)
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    async def main() -> tuple[Workspace, str, str]:
        async with workspace(GitSource.local(git_repo.path), head, base, scratch_root=scratch) as ws:
            assert ws.path.is_dir() and ws.head_sha == head and ws.base_sha == base
            assert stat.S_IMODE(ws.path.parent.stat().st_mode) == 0o700  # S-11
            assert not ws.git_dir.is_relative_to(ws.path)
            assert not (ws.path / ".git").exists()
            assert not (ws.git_dir / "hooks").exists()  # empty --template (S-01)
            assert (ws.path / "app.py").read_text() == "def f():\n    return 2\n"
            assert not (ws.path / "other.py").exists()
            diff = await ws.diff()
            incremental = await ws.diff(base=base, context=0)
            return ws, diff, incremental

    ws, diff, incremental = asyncio.run(main())
    assert ws.merge_base == git_repo.git("merge-base", base, head)
    assert "-    return 1\n+    return 2" in diff
    assert "rename from old_name.py" in diff and "rename to new_name.py" in diff
    assert "other.py" not in diff  # merge base, not the moved base tip
    assert "other.py" in incremental  # an explicit base diffs against exactly that commit
    assert _scratch_entries(scratch) == []


def test_workspace_deepens_until_the_merge_base_is_found(git_repo: GitRepo) -> None:
    fork = git_repo.commit("root", {"a.txt": "0\n"})
    git_repo.branch("feature")
    for i in range(12):
        git_repo.commit(f"f{i}", {"a.txt": f"f{i}\n"})
    head = git_repo.git("rev-parse", "HEAD")
    git_repo.checkout("main")
    for i in range(9):
        git_repo.commit(f"m{i}", {"b.txt": f"m{i}\n"})
    base = git_repo.git("rev-parse", "HEAD")

    async def main() -> str | None:
        async with workspace(GitSource.local(git_repo.path), head, base, depth=2) as ws:
            assert "+f11" in await ws.diff()
            return ws.merge_base

    assert asyncio.run(main()) == fork


def test_workspace_unshallows_an_old_fork_point(git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    fork = git_repo.commit("root", {"a.txt": "0\n"})
    git_repo.branch("feature")
    for i in range(6):
        git_repo.commit(f"f{i}", {"a.txt": f"f{i}\n"})
    head = git_repo.git("rev-parse", "HEAD")
    git_repo.checkout("main")
    base = git_repo.commit("m", {"b.txt": "m\n"})
    monkeypatch.setattr(checkout, "_MAX_DEPTH", 3)  # depth 1 -> 4 exceeds it: one --unshallow

    async def main() -> str | None:
        async with workspace(GitSource.local(git_repo.path), head, base, depth=1) as ws:
            assert (await ws.git(["rev-parse", "--is-shallow-repository"])).strip() == b"false"
            return ws.merge_base

    assert asyncio.run(main()) == fork


def test_workspace_unrelated_histories_have_no_merge_base(git_repo: GitRepo) -> None:
    base = git_repo.commit("main", {"a.txt": "a\n"})
    git_repo.git("checkout", "-q", "--orphan", "other")
    head = git_repo.commit("orphan", {"b.txt": "b\n"})

    async def main() -> str | None:
        async with workspace(GitSource.local(git_repo.path), head, base, depth=1) as ws:
            return ws.merge_base

    assert asyncio.run(main()) is None


@pytest.mark.parametrize("sha", ["main", "HEAD", "abc123", "--upload-pack=touch /tmp/x", "A" * 40, ""])
def test_c05_workspace_accepts_only_full_shas(git_repo: GitRepo, sha: str, scratch: Path) -> None:
    git_repo.commit("one", {"a.txt": "a\n"})

    async def main() -> None:
        async with workspace(GitSource.local(git_repo.path), sha, scratch_root=scratch):
            pass

    with pytest.raises(WorkspaceError, match="full lowercase commit SHA"):
        asyncio.run(main())


def test_s09_tree_caps_are_checked_before_checkout(git_repo: GitRepo, scratch: Path) -> None:
    head = git_repo.commit("many", {f"f{i}.txt": "x" * 100 for i in range(5)})

    async def main(**caps: int) -> None:
        async with workspace(GitSource.local(git_repo.path), head, scratch_root=scratch, **caps):
            pass

    with pytest.raises(BudgetExceeded, match="5 files"):
        asyncio.run(main(max_files=4))
    with pytest.raises(BudgetExceeded, match="500 bytes"):
        asyncio.run(main(max_bytes=499))
    asyncio.run(main(max_files=5, max_bytes=500))
    assert _scratch_entries(scratch) == []


# -- cleanup (S-11) --------------------------------------------------------------------------------


def test_s11_workspace_removed_on_exception(git_repo: GitRepo, scratch: Path) -> None:
    head = git_repo.commit("one", {"a.txt": "a\n"})
    seen: list[Path] = []

    async def main() -> None:
        async with workspace(GitSource.local(git_repo.path), head, scratch_root=scratch) as ws:
            seen.append(ws.path)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(main())
    assert seen and not seen[0].exists()
    assert _scratch_entries(scratch) == []


def test_s11_workspace_removed_on_cancellation_inside_body(git_repo: GitRepo, scratch: Path) -> None:
    head = git_repo.commit("one", {"a.txt": "a\n"})
    seen: list[Path] = []

    async def body(entered: asyncio.Event) -> None:
        async with workspace(GitSource.local(git_repo.path), head, scratch_root=scratch) as ws:
            seen.append(ws.path)
            entered.set()
            await asyncio.Event().wait()

    async def main() -> None:
        entered = asyncio.Event()
        task = asyncio.create_task(body(entered))
        await asyncio.wait_for(entered.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen and not seen[0].exists()
    assert _scratch_entries(scratch) == []


def test_s11_cancellation_during_fetch_kills_git_and_removes_scratch(scratch: Path, silent_port: int) -> None:
    source = GitSource.https(f"http://127.0.0.1:{silent_port}/o/r.git", "not-a-real-token-123456")

    async def body() -> None:
        async with workspace(source, MISSING_SHA, scratch_root=scratch):
            pass

    async def main() -> None:
        task = asyncio.create_task(body())
        for _ in range(200):  # wait until git is really connected and hanging
            await asyncio.sleep(0.05)
            if _processes_mentioning(f"127.0.0.1:{silent_port}"):
                break
        assert _processes_mentioning(f"127.0.0.1:{silent_port}")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert _scratch_entries(scratch) == []
    assert _processes_mentioning(f"127.0.0.1:{silent_port}") == []


def test_run_git_timeout_kills_the_process_group(tmp_path: Path, silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}/o/r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "g")], check=True)

    async def main() -> None:
        await run_git(
            [
                "--git-dir",
                str(tmp_path / "g"),
                "-c",
                "protocol.http.allow=always",
                "fetch",
                "--",
                url,
                MISSING_SHA,
            ],
            cwd=tmp_path,
            timeout=1,
        )

    with pytest.raises(WorkspaceError, match="timed out"):
        asyncio.run(main())
    assert _processes_mentioning(f"127.0.0.1:{silent_port}") == []


# -- K-03: failures never carry a credential -------------------------------------------------------


def test_k03_missing_sha_local_fetch_error_has_no_token(
    git_repo: GitRepo, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git_repo.commit("one", {"a.txt": "a\n"})
    token = f"tok{uuid.uuid4().hex}"
    monkeypatch.setattr(checkout, "SECRETS", SecretSet([token]))
    header = "AUTHORIZATION: basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
    source = GitSource(str(git_repo.path), auth_header=header)

    async def main() -> None:
        async with workspace(source, MISSING_SHA, scratch_root=scratch):
            pass

    with pytest.raises(WorkspaceError) as info:
        asyncio.run(main())
    message = str(info.value)
    assert "fetch failed" in message
    assert token not in message and header.split()[-1] not in message and "x-access-token" not in message
    assert _scratch_entries(scratch) == []


def test_k03_https_fetch_failure_has_no_token(scratch: Path, closed_port: int) -> None:
    token = "ghs_" + uuid.uuid4().hex + "ABCDEF"
    source = GitSource.https(f"https://127.0.0.1:{closed_port}/o/r.git", token)
    assert source.auth_header is not None and token not in source.url

    async def main() -> None:
        async with workspace(source, MISSING_SHA, scratch_root=scratch):
            pass

    with pytest.raises(WorkspaceError) as info:
        asyncio.run(main())
    message = str(info.value)
    assert "fetch failed" in message
    assert token not in message and source.auth_header.split()[-1] not in message
    assert "x-access-token" not in message
    assert _scratch_entries(scratch) == []


def test_k03_credential_echoed_by_git_is_scrubbed(git_repo: GitRepo) -> None:
    """git echoes a missing ref name; a credential passed in GIT_CONFIG_VALUE_n is scrubbed from it."""
    git_repo.commit("one", {"a.txt": "a\n"})
    secret = f"plainsecret{uuid.uuid4().hex}"  # not credential-shaped: only the by-construction scrub
    env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader", "GIT_CONFIG_VALUE_0": secret}

    async def main() -> None:
        await run_git(
            ["-c", "protocol.file.allow=always", "fetch", "--", str(git_repo.path), f"refs/heads/{secret}"],
            cwd=git_repo.path,
            extra_env=env,
        )

    with pytest.raises(WorkspaceError) as info:
        asyncio.run(main())
    assert "couldn't find remote ref" in str(info.value)
    assert secret not in str(info.value) and "[redacted]" in str(info.value)


def test_k03_token_shaped_stderr_is_redacted(git_repo: GitRepo) -> None:
    git_repo.commit("one", {"a.txt": "a\n"})
    token = "ghs_" + "A1b2C3d4" * 5

    async def main() -> None:
        await run_git(
            ["-c", "protocol.file.allow=always", "fetch", "--", str(git_repo.path), f"refs/heads/{token}"],
            cwd=git_repo.path,
        )

    with pytest.raises(WorkspaceError) as info:
        asyncio.run(main())
    assert token not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://x-access-token:abc@github.com/o/r.git",
        "https://user@github.com/o/r.git",
        "http://github.com/o/r.git",
        "ext::sh -c touch% /tmp/pwned",
        "file:///etc",
        "ssh://-oProxyCommand=touch/x/o/r.git",
        "https://github.com/o/r.git\nextra",
    ],
)
def test_s12_https_source_rejects_unsafe_urls(url: str) -> None:
    with pytest.raises(WorkspaceError):
        GitSource.https(url, "token-value-123456")


def test_s12_credential_never_lands_in_the_scratch_directory(git_repo: GitRepo, scratch: Path) -> None:
    head = git_repo.commit("one", {"a.txt": "a\n"})
    token = f"ghs_{uuid.uuid4().hex}"
    header = "AUTHORIZATION: basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
    source = GitSource(str(git_repo.path), auth_header=header)
    assert token not in repr(source)

    async def main() -> bytes:
        async with workspace(source, head, scratch_root=scratch) as ws:
            blobs = b""
            for dirpath, _, files in os.walk(ws.path.parent):
                for name in files:
                    blobs += (Path(dirpath) / name).read_bytes()
            return blobs

    everything = asyncio.run(main())
    assert everything  # the walk saw the checkout and the git dir
    for needle in (token, header.split()[-1], "x-access-token", "ghs_"):
        assert needle.encode() not in everything


# -- S-01 / S-02 / S-03: nothing from the repository executes --------------------------------------


def _hook_repo(root: Path, pwned: Path, hook_dir: str) -> tuple[GitRepo, str]:
    repo = init_repo(root)
    hook = repo.write(f"{hook_dir}/post-checkout", _hook_script(pwned))
    hook.chmod(0o755)
    return repo, repo.commit("hooks")


def _commit_index(repo: GitRepo, message: str) -> str:
    repo.git("commit", "-q", "-m", message)
    return repo.git("rev-parse", "HEAD")


def _add_symlink(repo: GitRepo, path: str, target: str) -> None:
    blob = (
        subprocess.run(
            ["git", "-C", str(repo.path), "hash-object", "-w", "--stdin"],
            input=target.encode(),
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    repo.git("update-index", "--add", "--cacheinfo", f"120000,{blob},{path}")


def _assert_inert(head: str, repo: GitRepo, scratch: Path, pwned: Path) -> Path | None:
    """Run the workspace; it either refuses the crafted tree (fsck) or checks it out inertly."""

    async def main() -> Path:
        async with workspace(GitSource.local(repo.path), head, scratch_root=scratch) as ws:
            for dirpath, dirnames, filenames in os.walk(ws.path):
                for name in dirnames + filenames:
                    assert not (Path(dirpath) / name).is_symlink()
                    assert name.lower() != ".git"
            assert not any(p.name == "hooks" for p in ws.git_dir.iterdir())
            snapshot = ws.path
            (scratch / "snapshot").mkdir()
            for rel in ("sub", "a"):
                if (ws.path / rel).is_file():
                    (scratch / "snapshot" / rel).write_bytes((ws.path / rel).read_bytes())
            return snapshot

    try:
        tree = asyncio.run(main())
    except WorkspaceError:
        tree = None
    assert not pwned.exists()
    assert _scratch_entries(scratch) == ["snapshot"] or _scratch_entries(scratch) == []
    return tree


def test_s01_cve_2025_48384_shape_runs_no_hook(tmp_path: Path) -> None:
    pwned = _pwned()
    hooks_repo, hooks_sha = _hook_repo(tmp_path / "hooks-src", pwned, ".")
    repo = init_repo(tmp_path / "victim")
    repo.write(".gitmodules", f'[submodule "sub"]\n\tpath = "sub\\r"\n\turl = {hooks_repo.path}\n')
    repo.git("add", ".gitmodules")
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{hooks_sha},sub\r")
    _add_symlink(repo, "sub", ".git/modules/sub/hooks")
    head = _commit_index(repo, "cve-2025-48384 shape")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    tree = _assert_inert(head, repo, scratch, pwned)
    if tree is not None:  # checked out: the link is a plain file naming its target
        assert (scratch / "snapshot" / "sub").read_text() == ".git/modules/sub/hooks"


def test_s01_cve_2024_32002_shape_runs_no_hook(tmp_path: Path) -> None:
    pwned = _pwned()
    hooks_repo, hooks_sha = _hook_repo(tmp_path / "hooks-src", pwned, "y/hooks")
    repo = init_repo(tmp_path / "victim")
    repo.write(".gitmodules", f'[submodule "x/y"]\n\tpath = A/modules/x\n\turl = {hooks_repo.path}\n')
    repo.git("add", ".gitmodules")
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{hooks_sha},A/modules/x")
    _add_symlink(repo, "a", ".git")
    head = _commit_index(repo, "cve-2024-32002 shape")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    tree = _assert_inert(head, repo, scratch, pwned)
    if tree is not None:
        assert (scratch / "snapshot" / "a").read_text() == ".git"


def test_s02_submodules_are_never_fetched(git_repo: GitRepo, scratch: Path, silent_port: int) -> None:
    pwned = _pwned()
    gitmodules = (
        f'[submodule "a"]\n\tpath = a\n\turl = http://127.0.0.1:{silent_port}/x.git\n'
        f'[submodule "b"]\n\tpath = b\n\turl = ext::sh -c touch% {pwned}\n'
        '[submodule "c"]\n\tpath = c\n\turl = file:///etc\n'
    )
    git_repo.write(".gitmodules", gitmodules)
    git_repo.git("add", ".gitmodules")
    for name in "abc":
        git_repo.git("update-index", "--add", "--cacheinfo", f"160000,{MISSING_SHA},{name}")
    head = _commit_index(git_repo, "submodules")

    async def main() -> None:
        async with workspace(GitSource.local(git_repo.path), head, scratch_root=scratch) as ws:
            assert (ws.path / ".gitmodules").read_text() == gitmodules
            for name in "abc":
                assert not (ws.path / name).exists() or list((ws.path / name).iterdir()) == []

    asyncio.run(main())
    assert not pwned.exists()
    assert _processes_mentioning(f"127.0.0.1:{silent_port}") == []


def _hostile_parent_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pwned: Path) -> None:
    """Filters, LFS, hooks, diff drivers and templates configured everywhere git could read them."""
    evil_hooks = tmp_path / "evil-hooks"
    evil_hooks.mkdir()
    for hook in ("post-checkout", "reference-transaction", "post-index-change"):
        (evil_hooks / hook).write_text(_hook_script(pwned))
        (evil_hooks / hook).chmod(0o755)
    template = tmp_path / "evil-template"
    (template / "hooks").mkdir(parents=True)
    (template / "hooks" / "post-checkout").write_text(_hook_script(pwned))
    (template / "hooks" / "post-checkout").chmod(0o755)
    config = (
        f"[core]\n\thooksPath = {evil_hooks}\n"
        f'[filter "evil"]\n\tsmudge = "touch {pwned}; cat"\n\tclean = cat\n'
        f'[filter "lfs"]\n\tsmudge = "touch {pwned}; cat"\n\tprocess = "touch {pwned}"\n\trequired = true\n'
        f'[diff "evil"]\n\tcommand = "touch {pwned}"\n\ttextconv = "touch {pwned}; cat"\n'
    )
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(config)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_TEMPLATE_DIR", str(template))
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", f"touch {pwned}")
    monkeypatch.delenv("GIT_CONFIG_NOSYSTEM", raising=False)


LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 12345\n"
)


def test_s03_filters_lfs_and_diff_drivers_do_not_run(
    git_repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, silent_port: int
) -> None:
    pwned = _pwned()
    files: dict[str, str | bytes] = {
        ".gitattributes": "* filter=lfs diff=lfs\n*.txt filter=evil\n*.py diff=evil\n",
        ".lfsconfig": f'[lfs]\n\turl = "http://127.0.0.1:{silent_port}/lfs"\n',
        "model.bin": LFS_POINTER,
        "notes.txt": "plain text\n",
        "app.py": "a = 1\n",
    }
    base = git_repo.commit("base", files)
    head = git_repo.commit("head", {"app.py": "a = 2\n", "notes.txt": "changed\n"})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _hostile_parent_env(tmp_path, monkeypatch, pwned)

    async def main() -> str:
        async with workspace(GitSource.local(git_repo.path), head, base, scratch_root=scratch) as ws:
            assert (ws.path / "model.bin").read_text() == LFS_POINTER
            assert (ws.path / "notes.txt").read_text() == "changed\n"
            return await ws.diff()

    diff = asyncio.run(main())
    assert "-a = 1\n+a = 2" in diff
    assert not pwned.exists()
    assert _processes_mentioning(f"127.0.0.1:{silent_port}") == []

    # control: the same hostile configuration does run with a plain git inheriting the environment
    subprocess.run(["git", "clone", "-q", str(git_repo.path), str(tmp_path / "control")], capture_output=True)
    assert pwned.exists()
    pwned.unlink()


# -- local CLI helpers -----------------------------------------------------------------------------


def test_resolve_ref_and_merge_base(git_repo: GitRepo) -> None:
    base, head = _two_branches(git_repo)

    async def main() -> None:
        assert await resolve_ref(git_repo.path, "main") == base
        assert await resolve_ref(git_repo.path, "feature") == head
        assert await resolve_ref(git_repo.path, head[:10]) == head
        assert await merge_base(git_repo.path, "main", "feature") == git_repo.git("merge-base", base, head)
        for bad in ("-n", "--output=/tmp/x", "no-such-branch", "main\nx", ""):
            with pytest.raises(WorkspaceError):
                await resolve_ref(git_repo.path, bad)
        with pytest.raises(WorkspaceError):
            await merge_base(git_repo.path, "--all", "main")

    asyncio.run(main())


def test_local_helpers_work_on_a_bare_repository(git_repo: GitRepo, tmp_path: Path) -> None:
    head = git_repo.commit("one", {"a.txt": "a\n"})
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(git_repo.path), str(bare)], check=True)

    async def main() -> None:
        assert await resolve_ref(bare, "main") == head
        assert await default_branch(bare) == "main"
        assert await merge_base(bare, "main", head) == head

    asyncio.run(main())


def test_merge_base_of_unrelated_histories_is_none(git_repo: GitRepo) -> None:
    git_repo.commit("main", {"a.txt": "a\n"})
    git_repo.git("checkout", "-q", "--orphan", "other")
    git_repo.commit("orphan", {"b.txt": "b\n"})
    assert asyncio.run(merge_base(git_repo.path, "main", "other")) is None


def test_default_branch(tmp_path: Path) -> None:
    async def branch(repo: GitRepo) -> str | None:
        return await default_branch(repo.path)

    main_repo = init_repo(tmp_path / "m")
    main_repo.commit("one")
    assert asyncio.run(branch(main_repo)) == "main"

    master_repo = init_repo(tmp_path / "s", default_branch="master")
    master_repo.commit("one")
    assert asyncio.run(branch(master_repo)) == "master"

    trunk_repo = init_repo(tmp_path / "t", default_branch="trunk")
    sha = trunk_repo.commit("one")
    assert asyncio.run(branch(trunk_repo)) is None
    trunk_repo.git("update-ref", "refs/remotes/origin/trunk", sha)
    trunk_repo.git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/trunk")
    assert asyncio.run(branch(trunk_repo)) == "origin/trunk"
