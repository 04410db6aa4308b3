"""checkout's shallow-history plumbing, the one implementation (ci.ensure_commits calls it too)."""

from __future__ import annotations

import ast
import asyncio
import subprocess
from pathlib import Path

from bot.checkout import GitSource, fetch_history, git_dir_of, history_ready
from tests.support.gitrepo import GitRepo

BOT = Path(__file__).resolve().parent.parent / "bot"


def _history(git_repo: GitRepo) -> tuple[str, str]:
    base = git_repo.commit("base", {"a.py": "x = 1\n"})
    git_repo.branch("feature")
    for i in range(60):  # further than the first shallow fetch reaches
        head = git_repo.commit(f"push {i}", {"a.py": f"x = {i}\n"})
    return head, base


def _shallow_checkout(tmp: Path, origin: Path, sha: str) -> Path:
    """What actions/checkout does by default: a depth-1 fetch of one commit."""
    ws = tmp / "ws"
    for args in (
        ["init", "-q", str(ws)],
        ["-C", str(ws), "fetch", "-q", "--depth=1", f"file://{origin}", sha],
    ):
        subprocess.run(["git", *args], check=True, capture_output=True)
    return ws


def test_a_shallow_checkout_is_deepened_until_the_merge_base(git_repo: GitRepo, tmp_path: Path) -> None:
    head, base = _history(git_repo)
    ws = _shallow_checkout(tmp_path, git_repo.path, head)

    async def main() -> tuple[Path, bool, str | None, bool]:
        git_dir = await git_dir_of(ws)
        before = await history_ready(git_dir, head, base)
        found = await fetch_history(git_dir, GitSource.local(git_repo.path), head, base, fresh=True)
        return git_dir, before, found, await history_ready(git_dir, head, base)

    git_dir, before, found, after = asyncio.run(main())
    assert git_dir == (ws / ".git").resolve()
    assert (before, found, after) == (False, base, True)


def test_a_complete_history_needs_no_fetch(git_repo: GitRepo) -> None:
    head, base = _history(git_repo)
    assert asyncio.run(history_ready(asyncio.run(git_dir_of(git_repo.path)), head, base))


def test_ci_runs_no_git_of_its_own() -> None:
    tree = ast.parse((BOT / "ci.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not imported & {"run_git", "_exec_git"}
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not literals & {"merge-base", "cat-file", "fetch", "rev-parse", "--is-shallow-repository"}
