"""K-02 per job: one read and one write installation token, handed out by one broker (issue 11)."""

from __future__ import annotations

import asyncio

import pytest

from bot.tokens import JobTokens
from tests.app.conftest import AppWorld


def _kinds(world: AppWorld) -> list[str]:
    with world.fake.lock:
        return sorted(t.permissions.get("pull_requests", "?") for t in world.fake.tokens)


@pytest.mark.parametrize("trigger", ["opened", "command"])
def test_a_review_mints_one_read_and_one_write_token_and_revokes_both(world: AppWorld, trigger: str) -> None:
    job = world.command()[1] if trigger == "command" else world.job("opened")
    world.run(job)
    assert len(world.fake.reviews_for(world.pull)) == 1
    assert _kinds(world) == ["read", "write"]  # four (read, write, read, write) before the broker
    assert all(t.revoked for t in world.fake.tokens)


def test_the_broker_mints_lazily_reuses_and_revokes_on_an_exception(world: AppWorld) -> None:
    app = world.runner().deps.github

    async def go() -> None:
        async with JobTokens(app, world.job()) as tokens:
            assert await tokens.read() is await tokens.read()
            assert _kinds(world) == ["read"]  # no write token until one is asked for
            await tokens.write()
            await tokens.write()
            raise RuntimeError("the job failed")

    with pytest.raises(RuntimeError):
        asyncio.run(go())
    assert _kinds(world) == ["read", "write"]
    assert all(t.revoked for t in world.fake.tokens)
