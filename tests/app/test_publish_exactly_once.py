"""W-04 exactly once: a retry after a failure that follows the review POST never posts a second review."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import GitHubUnavailable
from tests.app.conftest import make_world


@pytest.mark.parametrize("trigger", ["opened", "command"])
def test_w04_retry_after_check_completion_failed_posts_one_review(tmp_path: Path, trigger: str) -> None:
    with make_world(tmp_path) as world:
        job = world.command()[1] if trigger == "command" else world.job("opened")
        # completing the check run fails after the review went out: the worker retries the job
        world.fake.fail_next("PATCH", f"/repos/{world.repo.full_name}/check-runs/*", status=502)
        with pytest.raises(GitHubUnavailable):
            world.run(job, attempt=1)
        assert len(world.fake.reviews_for(world.pull)) == 1
        world.run(job, attempt=2)
        reviews = world.fake.reviews_for(world.pull)
        assert len(reviews) == 1, [r.body[:80] for r in reviews]
        assert reviews[0].comments  # the one review is the real one, not an empty "no issues" repeat
        assert all(c.status == "completed" for c in world.fake.check_runs.values())
