"""A review cancelled mid-way (shutdown, lost lease) leaves its check run for the retry to take over."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.agent.providers import ModelReply, ModelRequest
from bot.queue.base import ClaimedJob
from tests.app.conftest import make_world


class SilentModel:
    """A model that never answers; ``asked`` is set once the review has reached it."""

    model = "silent"

    def __init__(self) -> None:
        self.asked = asyncio.Event()

    def encode(self, request: ModelRequest) -> dict[str, Any]:
        return {}

    async def send(self, payload: dict[str, Any]) -> ModelReply:
        self.asked.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        return None


def test_cancelled_attempt_leaves_its_check_for_the_retry(tmp_path: Path) -> None:
    with make_world(tmp_path) as world:
        job = world.job("opened")

        async def first_attempt() -> None:
            model = SilentModel()
            slow = world.runner(provider_factory=lambda: model)
            task = asyncio.create_task(slow(ClaimedJob("job-1", job, 1, "t1")))
            await model.asked.wait()  # mid-review: check run open, workspace checked out, model asked
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(first_attempt())
        assert [c.status for c in world.fake.check_runs.values()] == ["in_progress"]
        world.run(job, attempt=2)  # the same job id claimed again, offline this time
        assert [c.status for c in world.fake.check_runs.values()] == ["completed"]
        assert len(world.fake.reviews_for(world.pull)) == 1
