"""W-04: a worker whose lease was taken over never posts beside the worker that now owns the job."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import Superseded
from bot.queue.base import ClaimedJob
from tests.app.conftest import make_world


def test_lost_lease_posts_nothing_and_a_held_lease_posts(tmp_path: Path) -> None:
    with make_world(tmp_path) as world:
        asked: list[str] = []

        async def lost(claimed: ClaimedJob) -> bool:
            asked.append(claimed.lease_token)
            return False

        async def held(claimed: ClaimedJob) -> bool:
            return True

        with pytest.raises(Superseded):
            world.run(world.job("opened"), world.runner(lease_check=lost))
        assert asked == ["t"] and world.fake.reviews_for(world.pull) == []
        world.run(world.job("opened"), world.runner(lease_check=held), attempt=2)
        assert len(world.fake.reviews_for(world.pull)) == 1
