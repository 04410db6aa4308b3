"""Only this App's own comments count as "already posted": copies of our markers by others silence nothing."""

from __future__ import annotations

from pathlib import Path

from tests.app.conftest import AppWorld, make_world


def test_markers_in_another_apps_comments_do_not_suppress_findings(tmp_path: Path) -> None:
    with make_world(tmp_path) as world:
        _another_apps_copies(world)


def _another_apps_copies(world: AppWorld) -> None:
    world.run(world.job("opened"))
    (first,) = world.fake.reviews_for(world.pull)
    assert first.comments
    # the same bodies, markers included, now as if another App (e.g. github-actions) had written them
    with world.fake.lock:
        for comment in world.fake.review_comments:
            comment.user_login = "github-actions[bot]"
        first.user_login = "github-actions[bot]"
    world.run(world.job("reopened", delivery_id="d-2"))
    reviews = world.fake.reviews_for(world.pull)
    assert len(reviews) == 2 and len(reviews[1].comments) == len(first.comments)


def test_markers_in_our_own_comments_do_suppress_repeats(tmp_path: Path) -> None:
    with make_world(tmp_path) as world:
        world.run(world.job("opened"))
        world.run(world.job("reopened", delivery_id="d-2"))
        reviews = world.fake.reviews_for(world.pull)
        assert len(reviews) == 2 and reviews[1].comments == []
