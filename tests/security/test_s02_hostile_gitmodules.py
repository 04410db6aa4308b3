"""S-02: a pull request whose .gitmodules is hostile is still fetched (real git over smart HTTP from the
fake GitHub) and reviewed, and the entry is reported; every other fsck check stays on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.checkout import HARDENING, GitSource, workspace
from bot.errors import WorkspaceError
from bot.jobs import ReviewJobRunner
from bot.repocache import RepoCache
from tests.app.conftest import AppWorld, make_world
from tests.support.gitrepo import GitRepo, init_repo

MISSING_SHA = "0123456789abcdef0123456789abcdef01234567"

# each one fails one of git's gitmodules* fsck checks (gitmodulesUrl, gitmodulesPath, gitmodulesName,
# gitmodulesUpdate), so before the fix the fetch was refused and the PR never reviewed
HOSTILE = {
    "option-url": ('[submodule "lib"]\n\tpath = lib\n\turl = -oProxyCommand=true\n', "lib", 3),
    "option-path": ('[submodule "lib"]\n\tpath = -lib\n\turl = https://example.com/lib.git\n', "-lib", 2),
    "climbing-path": (
        '[submodule "lib"]\n\tpath = ../elsewhere\n\turl = https://example.com/l.git\n',
        "lib",
        2,
    ),
    "climbing-name": (
        '[submodule "../../hooks"]\n\tpath = lib\n\turl = https://example.com/x.git\n',
        "lib",
        1,
    ),
    "update-command": (
        '[submodule "lib"]\n\tpath = lib\n\turl = https://example.com/lib.git\n\tupdate = !touch /tmp/x\n',
        "lib",
        4,
    ),
}


def _add_hostile_commit(work: GitRepo, gitmodules: str, gitlink: str) -> str:
    work.write(".gitmodules", gitmodules)
    work.git("add", ".gitmodules")
    work.git("update-index", "--add", "--cacheinfo", f"160000,{MISSING_SHA},{gitlink}")
    work.git("commit", "-q", "-m", "add a submodule")
    return work.git("rev-parse", "HEAD")


@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_s02_hostile_gitmodules_pr_is_fetched_reviewed_and_reported(tmp_path: Path, shape: str) -> None:
    with make_world(tmp_path) as world:
        _reviewed_and_reported(world, *HOSTILE[shape])


def test_s02_hostile_gitmodules_pr_through_the_repository_cache(tmp_path: Path) -> None:
    with make_world(tmp_path) as world:
        runner = world.runner(repo_cache=RepoCache(tmp_path / "repos", 10**9))
        _reviewed_and_reported(world, *HOSTILE["option-url"], runner=runner)


def _reviewed_and_reported(
    world: AppWorld, gitmodules: str, gitlink: str, line: int, runner: ReviewJobRunner | None = None
) -> None:
    _add_hostile_commit(world.work, gitmodules, gitlink)
    world.repo.push(world.work, "feature")
    world.fake.update_pull(world.pull)
    result = world.run(world.job("opened", head_sha=world.pull.head_sha), runner)
    assert result.startswith("posted"), result
    (review,) = world.fake.reviews_for(world.pull)
    flagged = [c for c in review.comments if c["path"] == ".gitmodules"]
    assert [c["line"] for c in flagged] == [line], review.comments
    assert "Hostile submodule entry" in flagged[0]["body"]
    # the rest of the PR was reviewed as usual: the demo's planted findings are there too
    assert any(c["path"] != ".gitmodules" for c in review.comments)
    with world.fake.lock:
        assert {c.conclusion for c in world.fake.check_runs.values()} <= {"success", "failure", "neutral"}
        assert all(c.status == "completed" for c in world.fake.check_runs.values())


@pytest.mark.parametrize("cached", [False, True], ids=["scratch", "repo-cache"])
def test_s02_symlinked_gitmodules_pr_is_still_reviewed(tmp_path: Path, cached: bool) -> None:
    """gitmodulesSymlink: git fetches it now, but its own path checks refuse to check it out; the entry is
    left out of the checkout and the rest of the PR is reviewed (before: the job failed every attempt)."""
    with make_world(tmp_path) as world:
        work = world.work
        target = work.write("target.txt", "/etc/passwd")
        blob = work.git("hash-object", "-w", str(target))
        target.unlink()
        listing = work.git("ls-tree", "HEAD") + f"\n120000 blob {blob}\t.gitmodules\n"
        tree = subprocess_mktree(work, listing)
        head = work.git("commit-tree", tree, "-p", "HEAD", "-m", "a symlinked .gitmodules")
        work.git("update-ref", "refs/heads/feature", head)
        world.repo.push(work, "feature")
        world.fake.update_pull(world.pull)
        cache = RepoCache(tmp_path / "repos", 10**9) if cached else None
        result = world.run(world.job("opened", head_sha=world.pull.head_sha), world.runner(repo_cache=cache))
        assert result.startswith("posted"), result
        (review,) = world.fake.reviews_for(world.pull)
        assert any(c["path"] == "app/users.py" for c in review.comments), review.comments


def test_s02_only_the_gitmodules_fsck_checks_are_relaxed() -> None:
    relaxed = [o for o in HARDENING if o.startswith(("fsck.", "fetch.fsck.", "receive.fsck."))]
    assert relaxed and all(o.startswith("fetch.fsck.gitmodules") and o.endswith("=ignore") for o in relaxed)
    assert "transfer.fsckObjects=true" in HARDENING and "fetch.fsckObjects=true" in HARDENING


def test_s02_other_fsck_checks_still_reject_the_pack(tmp_path: Path) -> None:
    """A tree with a `.git` entry (fsck hasDotgit) is still refused at fetch: only gitmodules* are relaxed."""
    repo = init_repo(tmp_path / "repo")
    repo.commit("base", {"app.py": "x = 1\n"})
    blob = repo.git("hash-object", "-w", "--stdin")
    tree = subprocess_mktree(repo, f"100644 blob {blob}\t.git\n")
    head = repo.git("commit-tree", tree, "-m", "dot git")

    async def main() -> None:
        async with workspace(GitSource.local(repo.path), head, scratch_root=tmp_path):
            raise AssertionError("a tree with a .git entry was fetched")

    with pytest.raises(WorkspaceError, match="fetch"):
        asyncio.run(main())


def subprocess_mktree(repo: GitRepo, listing: str) -> str:
    import subprocess

    from tests.support.gitrepo import GIT_ENV

    out = subprocess.run(
        ["git", "-C", str(repo.path), "mktree"],
        input=listing,
        env={"PATH": "/usr/bin:/bin", **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()
