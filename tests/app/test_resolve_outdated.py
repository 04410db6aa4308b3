"""Issue 11 item 5: a later push that fixes a posted finding resolves its thread; one that keeps it
posts nothing and leaves the thread open (the fake GitHub's GraphQL endpoint, real git, real jobs)."""

from __future__ import annotations

import dataclasses

from bot.events import Enqueue
from bot.models import ReviewJob
from bot.review import parse_markers
from tests.app.conftest import AppWorld
from tests.conftest import WEBHOOKS
from tests.support.fake_github import FakeReviewComment

SYNCHRONIZE = WEBHOOKS / "pull_request" / "synchronize.payload.json"
AUDIT = "app/audit.py"
DEFECT = (
    "import requests\n\n\n"
    "def ship(event: dict) -> None:\n"
    '    requests.post("https://audit.internal/events", json=event, timeout=5, verify=False)\n'
)
# another line of the same file changes; the defect (line 5) does not
KEPT = DEFECT + '\n\ndef version() -> str:\n    return "1"\n'
FIXED = KEPT.replace(", verify=False)", ")")


def _push(world: AppWorld, text: str, delivery: str) -> ReviewJob:
    """Push a commit and queue the receiver's job for GitHub's synchronize delivery."""
    before = world.pull.head_sha
    world.push_pr_commit({AUDIT: text})
    decision = world.decide(SYNCHRONIZE, before=before, after=world.pull.head_sha)
    assert isinstance(decision, Enqueue), decision
    job = decision.job
    assert job.trigger == "synchronize" and job.before_sha == before
    return dataclasses.replace(job, delivery_id=delivery)


def _audit_thread(world: AppWorld) -> FakeReviewComment:
    with world.fake.lock:
        (root,) = [
            c
            for c in world.fake.review_comments
            if c.path == AUDIT and c.in_reply_to_id is None and c.user_login == world.fake.bot_login
        ]
    assert parse_markers(root.body)
    return root


def _comment_count(world: AppWorld) -> int:
    with world.fake.lock:
        return len(world.fake.review_comments)


def _open_with_audit_finding(world: AppWorld) -> FakeReviewComment:
    world.run(world.job("opened"))
    world.run(_push(world, DEFECT, "d-2"))
    return _audit_thread(world)


def test_fixing_push_resolves_the_thread_and_keeping_push_leaves_it(world: AppWorld) -> None:
    thread = _open_with_audit_finding(world)
    others = [c for c in world.fake.review_comments if c.path != AUDIT]
    assert others  # the demo's findings in files later pushes do not touch
    comments = _comment_count(world)
    reviews = len(world.fake.reviews_for(world.pull))

    world.run(_push(world, KEPT, "d-3"))
    assert _comment_count(world) == comments  # the finding stands: never reposted
    assert not thread.resolved and thread.minimized is None
    assert "resolveReviewThread" not in world.fake.graphql_calls

    world.run(_push(world, FIXED, "d-4"))
    assert thread.resolved and thread.minimized is None
    assert _comment_count(world) == comments  # the fix brings nothing new: no comment
    assert len(world.fake.reviews_for(world.pull)) == reviews
    assert not any(c.resolved for c in others)  # outside what this push changed: left alone
    assert world.fake.graphql_calls.count("resolveReviewThread") == 1
    (check,) = [r for r in world.fake.check_runs.values() if r.head_sha == world.pull.head_sha]
    assert check.status == "completed"


def test_refused_resolution_minimizes_the_comment_as_outdated(world: AppWorld) -> None:
    thread = _open_with_audit_finding(world)
    world.fake.resolve_needs_contents_write = True  # the write token has no contents: write
    world.run(_push(world, FIXED, "d-3"))
    assert not thread.resolved and thread.minimized == "OUTDATED"


def test_thread_with_a_human_reply_is_still_resolved(world: AppWorld) -> None:
    thread = _open_with_audit_finding(world)
    with world.fake.lock:
        world.fake.review_comments.append(
            FakeReviewComment(
                world.fake.next_id(), thread.repo, thread.pull_number, None, "Will fix.", AUDIT,
                thread.commit_id, None, None, None, None, "line", "alice", thread.id,
            )
        )  # fmt: skip
    world.run(_push(world, FIXED, "d-3"))
    assert thread.resolved


def test_a_copied_marker_in_someone_elses_thread_is_never_touched(world: AppWorld) -> None:
    thread = _open_with_audit_finding(world)
    with world.fake.lock:
        forged = FakeReviewComment(
            world.fake.next_id(), thread.repo, thread.pull_number, None, thread.body, AUDIT,
            thread.commit_id, thread.line, "RIGHT", None, None, "line", "mallory",
        )  # fmt: skip
        world.fake.review_comments.append(forged)
    world.run(_push(world, FIXED, "d-3"))
    assert thread.resolved
    assert not forged.resolved and forged.minimized is None


def test_graphql_outage_never_fails_the_review(world: AppWorld) -> None:
    thread = _open_with_audit_finding(world)
    world.fake.fail_next("POST", "/graphql", status=502, times=None)
    result = world.run(_push(world, FIXED, "d-3"))
    assert result.startswith("posted review")
    assert not thread.resolved
    (check,) = [r for r in world.fake.check_runs.values() if r.head_sha == world.pull.head_sha]
    assert check.status == "completed" and check.conclusion == "neutral"


def test_a_changed_line_that_still_has_the_finding_stays_open(world: AppWorld) -> None:
    """The commented line changed (GitHub marks the thread outdated) but its finding is the same: the
    review re-finds it and, as it is already posted, neither reposts nor resolves it."""
    thread = _open_with_audit_finding(world)
    comments = _comment_count(world)
    respaced = DEFECT.replace("json=event)", "json=event)   ")  # same finding, same fingerprint
    world.run(_push(world, respaced, "d-3"))
    assert _comment_count(world) == comments
    assert not thread.resolved and thread.minimized is None
