"""The App's jobs with the repository cache: the second job fetches only what is new, and the agent's
tools still see the whole head tree although the review writes files lazily."""

from __future__ import annotations

from pathlib import Path

from bot.repocache import RepoCache
from tests.app.conftest import AppWorld, model_provider
from tests.support.model_server import Call, ModelServer, Reply, Submit


def test_second_job_fetches_only_the_new_commit(world: AppWorld, tmp_path: Path) -> None:
    runner = world.runner(repo_cache=RepoCache(tmp_path / "repos", 10**9))
    assert world.run(world.job("opened"), runner).startswith("posted")
    first = [r.wants for r in world.fake.git_requests if r.wants]
    head = world.push_pr_commit({"app/extra.py": "z = 1\n"})
    assert world.run(world.job("synchronize", head_sha=head, delivery_id="d-2"), runner).startswith("posted")
    wants = [r.wants for r in world.fake.git_requests if r.wants][len(first) :]
    assert wants == [[head]], wants  # base and the first head came from the cache


def test_agent_greps_the_whole_tree_of_a_lazy_workspace(
    world: AppWorld, model_server: ModelServer, tmp_path: Path
) -> None:
    model_server.play(
        [Reply(calls=[Call("grep", {"pattern": "def create_app|cursor_factory"})]), *[Submit([])] * 8]
    )
    runner = world.runner(
        repo_cache=RepoCache(tmp_path / "repos", 10**9), provider_factory=model_provider(model_server)
    )
    assert world.run(world.job("opened"), runner).startswith("posted")
    results = [
        block["content"]
        for request in model_server.requests
        for message in request.body["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    assert results, "the scripted grep never ran"
    text = "\n".join(str(r) for r in results)
    # both live in files the PR does not touch: found only because the whole head tree is there
    assert "app/__init__.py:" in text and "app/db.py:" in text, text[:2000]
