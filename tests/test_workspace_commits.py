"""Workspace.ensure_commit / is_ancestor: incremental review after a push, full after a force-push."""

from __future__ import annotations

import asyncio

from bot.checkout import GitSource, workspace
from tests.support.gitrepo import GitRepo


def test_ancestry_of_previous_heads(git_repo: GitRepo) -> None:
    base = git_repo.commit("base", {"a.py": "x = 1\n"})
    git_repo.branch("feature")
    first = git_repo.commit("first push", {"a.py": "x = 2\n"})
    head = git_repo.commit("second push", {"a.py": "x = 3\n"})
    git_repo.checkout("main")
    git_repo.branch("rewritten")
    force_pushed_away = git_repo.commit("a commit the force-push dropped", {"b.py": "y = 1\n"})

    async def main() -> tuple[bool, ...]:
        async with workspace(GitSource.local(git_repo.path), head, base) as ws:
            return (
                await ws.is_ancestor(first),  # an earlier push: incremental review
                await ws.is_ancestor(force_pushed_away),  # fetched, but not an ancestor: full review
                await ws.ensure_commit("0" * 40),  # no such commit
                await ws.ensure_commit("not-a-sha"),  # malformed payload data never reaches git
                await ws.ensure_commit(force_pushed_away),
            )

    assert asyncio.run(main()) == (True, False, False, False, True)
