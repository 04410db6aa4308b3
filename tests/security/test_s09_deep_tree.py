"""S-09: a pull request adding a file more than 1,000 directories deep. The depth cap is checked from the
tree listing before checkout (the job posts one "too large" notice and never calls the model), and
removing a checkout never fails on depth, however deep it is."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bot.checkout import GitSource, remove_tree, workspace
from bot.errors import BudgetExceeded
from bot.jobs import JobLimits
from bot.publish.markers import SIZE_GATE_MARKER
from bot.repocache import RepoCache
from tests.app.conftest import make_world, model_provider
from tests.support.gitrepo import GitRepo, init_repo
from tests.support.model_server import ModelServer, Submit

DEEP = 1_200  # past Python's recursion limit (shutil.rmtree recursed once per level)


def _add_deep_file(repo: GitRepo, depth: int) -> str:
    """Commit ``d/d/…/leaf.py`` ``depth`` directories deep without creating it on disk."""
    blob = repo.git("hash-object", "-w", "--stdin")  # the empty file
    path = "/".join(["d"] * depth) + "/leaf.py"
    repo.git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
    repo.git("commit", "-q", "-m", f"a file {depth} directories deep")
    return repo.git("rev-parse", "HEAD")


def test_s09_deep_tree_is_refused_from_the_listing_before_checkout(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    base = repo.commit("base", {"app.py": "x = 1\n"})
    head = _add_deep_file(repo, DEEP)
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    async def main() -> None:
        async with workspace(GitSource.local(repo.path), head, base, scratch_root=scratch):
            raise AssertionError("the deep tree was checked out")

    with pytest.raises(BudgetExceeded, match="1,201 levels deep"):
        asyncio.run(main())
    assert os.listdir(scratch) == []


def test_s09_removing_a_deep_checkout_never_fails_on_depth(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    base = repo.commit("base", {"app.py": "x = 1\n"})
    head = _add_deep_file(repo, DEEP)
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    async def main() -> None:
        async with workspace(
            GitSource.local(repo.path), head, base, scratch_root=scratch, max_depth=None
        ) as ws:
            assert (ws.path / "/".join(["d"] * DEEP) / "leaf.py").is_file()

    asyncio.run(main())
    assert os.listdir(scratch) == []


def test_s09_remove_tree_handles_paths_longer_than_path_max(tmp_path: Path) -> None:
    root = tmp_path / "deep"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(3_000):  # 3,000 × "dd/" is past PATH_MAX (4,096): only relative names reach it
            os.mkdir("dd", dir_fd=fd)
            with open(os.open("f", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=fd), "w") as fh:
                fh.write("x")
            os.symlink("/etc", "link", dir_fd=fd)  # removed, never followed
            nxt = os.open("dd", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.close(os.open("f", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=fd))
        os.fchmod(fd, 0o500)  # a read-only directory at the bottom
    finally:
        os.close(fd)
    remove_tree(root)
    assert not root.exists()
    assert Path("/etc/passwd").exists()


@pytest.mark.parametrize("cached", [False, True], ids=["scratch", "repo-cache"])
def test_s09_deep_pr_gets_one_too_large_notice_and_no_model_call(tmp_path: Path, cached: bool) -> None:
    cache = RepoCache(tmp_path / "repos", 10**9) if cached else None
    with make_world(tmp_path) as world, ModelServer.start() as model:
        model.play([Submit([]) for _ in range(9)])
        _add_deep_file(world.work, DEEP)
        world.repo.push(world.work, "feature")
        world.fake.update_pull(world.pull)
        runner = world.runner(provider_factory=model_provider(model), repo_cache=cache)
        first = world.run(world.job("opened", head_sha=world.pull.head_sha), runner)
        again = world.run(world.job("reopened", head_sha=world.pull.head_sha, delivery_id="d-2"), runner)
        assert first == again == "skipped: too large"
        assert model.attempts == 0
        assert world.fake.reviews_for(world.pull) == []
        notes = [c.body for c in world.fake.issue_comments.values() if SIZE_GATE_MARKER in c.body]
        assert len(notes) == 1 and "levels deep" in notes[0], notes
        with world.fake.lock:
            assert {(c.status, c.conclusion) for c in world.fake.check_runs.values()} == {
                ("completed", "neutral")
            }


def test_s09_the_app_caps_the_file_count_from_the_listing(tmp_path: Path) -> None:
    with make_world(tmp_path) as world:
        runner = world.runner(limits=JobLimits(max_checkout_files=5))  # the demo head has 8 files
        assert world.run(world.job("opened"), runner) == "skipped: too large"
        notes = [c.body for c in world.fake.issue_comments.values() if SIZE_GATE_MARKER in c.body]
        assert len(notes) == 1 and "files (limit 5)" in notes[0], notes
