"""The App's job runner against the fake GitHub: live re-checks, authorisation, publish (issue 3)."""

from __future__ import annotations

import pytest

from bot.errors import Superseded
from tests.app.conftest import AppWorld


def test_opened_posts_one_comment_review_and_a_completed_check(world: AppWorld) -> None:
    outcome = world.run(world.job("opened"))
    reviews = world.fake.reviews_for(world.pull)
    assert len(reviews) == 1, outcome
    review = reviews[0]
    assert review.event == "COMMENT" and review.commit_id == world.pull.head_sha
    assert len(review.comments) >= 5
    assert "Offline checks only" in review.body
    (check,) = world.fake.check_runs.values()
    assert check.status == "completed" and check.conclusion == "neutral"
    assert check.annotations
    assert len(world.fake.revoked) == len(world.fake.tokens) >= 3  # K-02: every token revoked


def test_rerun_on_same_head_posts_nothing_twice(world: AppWorld) -> None:
    world.run(world.job("opened"))
    world.run(world.job("synchronize", before_sha=world.pull.head_sha))
    assert len(world.fake.reviews_for(world.pull)) == 1
    assert len(world.fake.check_runs) == 2


def test_head_moved_before_start_is_superseded(world: AppWorld) -> None:
    job = world.job("opened")
    world.push_pr_commit({"app/extra.py": "x = 1\n"})
    with pytest.raises(Superseded):
        world.run(job)
    assert world.fake.reviews_for(world.pull) == []
