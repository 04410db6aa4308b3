"""`focus` (repo config and `/backend-review focus=…`) and the diff-bytes size gate (D-01) in the App."""

from __future__ import annotations

from bot.events import Enqueue
from bot.jobs import SIZE_GATE_MARKER, JobLimits
from bot.models import Category, JobPlan, PrFacts
from tests.app.conftest import AppWorld


def _command(world: AppWorld, option: str) -> Enqueue:
    comment = world.fake.add_issue_comment(world.pull, f"/backend-review {option}", user_login="alice")
    world.fake.set_permission(world.repo, "alice", "write")
    focus = Category(option.removeprefix("focus="))
    plan = JobPlan(PrFacts(author="octocat"), authorize="alice", on_deny="react", focus=focus)
    return Enqueue(world.job("command", head_sha="", comment_id=comment.id, sender="alice", plan=plan))


def test_focus_option_keeps_only_that_category(world: AppWorld) -> None:
    world.run(_command(world, "focus=migration").job)
    (review,) = world.fake.reviews_for(world.pull)
    assert review.comments, review.body
    assert all("· migration ·" in c["body"] for c in review.comments)


def test_focus_from_base_branch_config(world: AppWorld) -> None:
    world.work.checkout("main")
    world.work.commit("config", {".github/backend-review.yml": "focus: [auth]\n"})
    world.repo.push(world.work, "main")
    world.fake.update_pull(world.pull)
    world.run(world.job("opened", head_sha=world.pull.head_sha))
    (review,) = world.fake.reviews_for(world.pull)
    assert review.comments and all("· auth ·" in c["body"] for c in review.comments)


def test_d01_diff_over_the_byte_cap_gets_one_note_and_no_review(world: AppWorld) -> None:
    runner = world.runner(limits=JobLimits(max_diff_bytes=500))
    world.run(world.job("opened"), runner)
    world.run(world.job("reopened", delivery_id="d-2"), runner)
    assert world.fake.reviews_for(world.pull) == []
    notes = [c for c in world.fake.issue_comments.values() if SIZE_GATE_MARKER in c.body]
    assert len(notes) == 1 and "too large" in notes[0].body
    assert {c.conclusion for c in world.fake.check_runs.values()} == {"neutral"}
