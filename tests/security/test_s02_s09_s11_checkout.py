"""S-02, S-09, S-11 against real git: hostile submodules with a counting sink, oversized trees, and two
concurrent jobs that must not see each other."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest

from bot.agent.tools import INVALID_PATH, Toolbox, ToolLimits
from bot.checkout import GitSource, Workspace, workspace
from bot.errors import BudgetExceeded
from tests.support.audit import Sink, recording
from tests.support.gitrepo import GitRepo, init_repo

MISSING_SHA = "0123456789abcdef0123456789abcdef01234567"


def _commit_index(repo: GitRepo, message: str) -> str:
    repo.git("commit", "-q", "-m", message)
    return repo.git("rev-parse", "HEAD")


# -- S-02 ----------------------------------------------------------------------------------------------


def test_s02_hostile_submodule_urls_cause_no_egress_and_no_exec(tmp_path: Path) -> None:
    pwned = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    repo = init_repo(tmp_path / "repo")
    base = repo.commit("base", {"app.py": "x = 1\n"})
    with Sink() as sink:
        gitmodules = (
            f'[submodule "a"]\n\tpath = a\n\turl = {sink.url}/x.git\n'
            f'[submodule "b"]\n\tpath = b\n\turl = ext::sh -c touch% {pwned}\n'
            '[submodule "c"]\n\tpath = c\n\turl = file:///etc\n'
            f'[submodule "d"]\n\tpath = d\n\turl = ssh://-oProxyCommand=touch% {pwned}/x\n'
            f'[submodule "e"]\n\tpath = e\n\turl = git://127.0.0.1:{sink.port}/x.git\n'
        )
        repo.write(".gitmodules", gitmodules)
        repo.git("add", ".gitmodules")
        for name in "abcde":
            repo.git("update-index", "--add", "--cacheinfo", f"160000,{MISSING_SHA},{name}")
        head = _commit_index(repo, "submodules")

        async def main() -> tuple[str, str]:
            async with workspace(GitSource.local(repo.path), head, base, scratch_root=tmp_path) as ws:
                for name in "abcde":
                    p = ws.path / name
                    assert not p.exists() or (p.is_dir() and not any(p.iterdir())), name
                diff = await ws.diff()
                result = await Toolbox(ws.path).call("view", {"path": ".gitmodules"})
                return diff, result.text

        with recording() as audit:
            diff, viewed = asyncio.run(main())
    assert sink.connections == 0
    assert not pwned.exists()
    audit.assert_only_git_and_rg()
    for e in audit.execs:  # nothing ever asks git to touch a submodule
        assert "submodule" not in e.argv and "--recurse-submodules" not in e.argv, e.argv
    # the file is plain data: its text is visible to the tools and in the diff
    for line in gitmodules.splitlines():
        assert line.strip() in viewed
    assert "Subproject commit" in diff and MISSING_SHA in diff


# -- S-09 ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> tuple[GitRepo, dict[str, str]]:
    """One repository, one commit per shape (scaled down; the caps scale with them)."""
    repo = init_repo(tmp_path_factory.mktemp("bombs") / "repo")
    shas = {"base": repo.commit("base", {"README": "hi\n"})}
    repo.write("zeros.bin", b"\0" * (6 * 1024 * 1024))  # stands for 95 MB of zeros
    shas["zeros"] = repo.commit("zeros")
    repo.git("rm", "-q", "zeros.bin")
    many = repo.path / "many"
    many.mkdir()
    for i in range(3_000):  # stands for 200k empty files
        (many / f"f{i}").touch()
    shas["many"] = repo.commit("many files")
    repo.git("rm", "-rq", "many")
    deep = repo.path / "/".join(["d"] * 200)  # stands for 1,000-deep directories (PATH_MAX bound)
    deep.mkdir(parents=True)
    (deep / "leaf.py").write_text("x = 1\n")
    shas["deep"] = repo.commit("deep")
    repo.git("rm", "-rq", "d")
    repo.write("line.txt", "a" * (4 * 1024 * 1024))  # stands for a 50 MB single-line file
    shas["line"] = repo.commit("one long line")
    return repo, shas


@pytest.mark.parametrize(
    ("shape", "caps"),
    [
        ("zeros", {"max_bytes": 2 * 1024 * 1024}),
        ("many", {"max_files": 1_000}),
        ("line", {"max_bytes": 1024 * 1024}),
    ],
)
def test_s09_tree_caps_refuse_bombs_before_checkout(
    bombs: tuple[GitRepo, dict[str, str]], tmp_path: Path, shape: str, caps: dict[str, int]
) -> None:
    max_files, max_bytes = caps.get("max_files"), caps.get("max_bytes")
    repo, shas = bombs
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    started = time.monotonic()

    async def main() -> None:
        async with workspace(
            GitSource.local(repo.path),
            shas[shape],
            scratch_root=scratch,
            max_files=max_files,
            max_bytes=max_bytes,
        ):
            raise AssertionError("the oversized tree was checked out")

    with pytest.raises(BudgetExceeded):
        asyncio.run(main())
    assert time.monotonic() - started < 20
    assert os.listdir(scratch) == []

    async def control() -> None:  # the same tree under generous caps does check out
        async with workspace(GitSource.local(repo.path), shas[shape], scratch_root=scratch) as ws:
            assert any(ws.path.iterdir())

    asyncio.run(control())


def test_s09_deep_tree_and_long_line_stay_within_tool_caps(
    bombs: tuple[GitRepo, dict[str, str]], tmp_path: Path
) -> None:
    repo, shas = bombs
    limits = ToolLimits(max_output_bytes=8_000, max_file_bytes=1_000_000)

    async def main(sha: str) -> list[str]:
        async with workspace(GitSource.local(repo.path), sha, scratch_root=tmp_path) as ws:
            box = Toolbox(ws.path, limits)
            results = [
                await box.call("view", {"path": "line.txt"}),
                await box.call("grep", {"pattern": "a+"}),
                await box.call("grep", {"pattern": "x = 1"}),
                await box.call("view", {"path": "/".join(["d"] * 200)}),
                await box.call("view", {"path": "/".join(["d"] * 200) + "/leaf.py"}),
            ]
            return [r.text for r in results]

    started = time.monotonic()
    line_results = asyncio.run(main(shas["line"]))
    deep_results = asyncio.run(main(shas["deep"]))
    assert time.monotonic() - started < 20
    for text in line_results + deep_results:
        assert len(text.encode()) <= limits.max_output_bytes + 200, len(text)
    assert (
        "truncated" in line_results[0] or "too large" in line_results[0].lower() or "cap" in line_results[0]
    )
    assert "leaf.py" in deep_results[2] and "x = 1" in deep_results[4]


# -- S-11 ----------------------------------------------------------------------------------------------


def test_s11_concurrent_jobs_cannot_reach_each_other(tmp_path: Path) -> None:
    secret_a = f"PRIVATE-A-{uuid.uuid4().hex}"
    repo_a = init_repo(tmp_path / "a")
    sha_a = repo_a.commit("a", {"private.py": f"TOKEN = '{secret_a}'\n"})
    repo_b = init_repo(tmp_path / "b")
    repo_b.commit("b", {"app.py": "x = 1\n"})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    a_ready = asyncio.Event()
    b_done = asyncio.Event()
    seen: dict[str, object] = {}

    async def job_a() -> None:
        async with workspace(GitSource.local(repo_a.path), sha_a, scratch_root=scratch) as ws:
            seen["a"] = ws
            assert oct(ws.path.parent.stat().st_mode & 0o777) == "0o700"
            a_ready.set()
            await b_done.wait()
        seen["a_gone"] = not ws.path.parent.exists()

    async def job_b() -> None:
        await a_ready.wait()
        ws_a = seen["a"]
        assert isinstance(ws_a, Workspace)
        # B's PR carries a link into A's directory: committed while A's path is known
        repo_b.path.joinpath("peek").symlink_to(ws_a.path / "private.py")
        repo_b.path.joinpath("peekdir").symlink_to(ws_a.path)
        sha_b = repo_b.commit("b links")
        async with workspace(GitSource.local(repo_b.path), sha_b, scratch_root=scratch) as ws_b:
            box = Toolbox(ws_b.path)
            rel = f"../../{ws_a.path.parent.name}/{ws_a.path.name}/private.py"  # both live in scratch
            attempts = {
                "absolute": await box.call("view", {"path": str(ws_a.path / "private.py")}),
                "dotdot": await box.call("view", {"path": rel}),
                "symlink": await box.call("view", {"path": "peek"}),
                "symlink-dir": await box.call("view", {"path": "peekdir/private.py"}),
                "grep": await box.call("grep", {"pattern": "PRIVATE-A"}),
                "grep-dotdot": await box.call("grep", {"pattern": "PRIVATE-A", "path": rel}),
            }
            assert (ws_a.path / "private.py").read_text().strip().endswith(f"'{secret_a}'")  # A is live
        b_done.set()
        seen["b"] = attempts

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(job_a(), job_b()), 60)

    asyncio.run(main())
    attempts = seen["b"]
    assert isinstance(attempts, dict)
    assert attempts["absolute"].text == INVALID_PATH and attempts["dotdot"].text == INVALID_PATH
    assert attempts["grep-dotdot"].text == INVALID_PATH
    for name, result in attempts.items():
        assert secret_a not in result.text, name
    assert seen["a_gone"] is True
    assert os.listdir(scratch) == []
