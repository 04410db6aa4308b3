"""Issue 9 at job level: what a job reviews when pushes were coalesced, deliveries came out of order
or were lost, and an earlier attempt of the job died holding a check run."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from bot.errors import Superseded
from bot.jobs import ReviewJobRunner
from bot.publish.markers import job_marker
from bot.queue.base import ClaimedJob, EnqueueOutcome, JobState
from bot.store.sqlite_queue import SQLiteQueue
from bot.worker import Worker, WorkerConfig
from tests.app.conftest import AppWorld, model_provider
from tests.support.fake_github import FakeReview
from tests.support.model_server import ModelServer, Stall


def _unverified_call(name: str, url: str) -> dict[str, str | bytes]:
    """A module whose one call has a confident finding (TLS verification off)."""
    call = f'requests.post("{url}", json=event, timeout=5, verify=False)'
    return {f"app/{name}.py": f"import requests\n\n\ndef {name}(event: dict) -> None:\n    {call}\n"}


AUDIT = _unverified_call("audit", "https://audit.internal/events")
BILLING = _unverified_call("billing", "https://billing.internal/charge")
METRICS = _unverified_call("metrics", "https://metrics.internal/push")


def _paths(world: AppWorld, index: int = -1) -> set[str]:
    review = world.fake.reviews_for(world.pull)[index]
    return {str(c["path"]) for c in review.comments}


# --- 1. coalesced pushes: the diff base is the last head this App reviewed --------------------------


def test_coalesced_push_without_any_review_yet_covers_the_whole_pull_request(world: AppWorld) -> None:
    """Opened at h0 (queued, debounced), pushed h1 before the job ran: the queue hands over one job, for
    h1 with before=h0. Nothing was reviewed yet, so the review runs from the merge base."""
    h0 = world.pull.head_sha
    world.push_pr_commit(AUDIT)
    world.run(world.job("synchronize", before_sha=h0, delivery_id="d-2"))
    paths = _paths(world)
    assert "app/audit.py" in paths
    assert "app/users.py" in paths  # changed by h0 only: a diff from `before` never saw it


def test_pushes_coalesced_after_a_review_cover_every_push_since_the_reviewed_head(world: AppWorld) -> None:
    world.run(world.job("opened"))
    assert "app/users.py" in _paths(world)
    world.push_pr_commit(AUDIT)  # h1: its job was replaced by h2's before it ran
    h1 = world.pull.head_sha
    world.push_pr_commit(BILLING)  # h2
    world.run(world.job("synchronize", before_sha=h1, delivery_id="d-3"))
    reviews = world.fake.reviews_for(world.pull)
    assert len(reviews) == 2
    assert _paths(world) == {"app/audit.py", "app/billing.py"}  # both pushes, nothing reviewed before
    assert job_marker("job-1", world.pull.head_sha) in reviews[-1].body


def test_a_quiet_push_leaves_the_base_at_the_last_posted_review(world: AppWorld) -> None:
    world.run(world.job("opened"))
    h0 = world.pull.head_sha
    world.push_pr_commit({"README.md": "# orders service\n\nNothing to see.\n"})  # h1: no finding
    h1 = world.pull.head_sha
    assert world.run(world.job("synchronize", before_sha=h0, delivery_id="d-2")).startswith(
        "posted review None"
    )
    world.push_pr_commit(METRICS)  # h2
    world.run(world.job("synchronize", before_sha=h1, delivery_id="d-3"))
    assert _paths(world) == {"app/metrics.py"}
    assert len(world.fake.reviews_for(world.pull)) == 2


def _forge(world: AppWorld, head: str, *, login: str, commit: str | None = None) -> None:
    with world.fake.lock:
        world.fake.reviews.append(
            FakeReview(
                world.fake.next_id(),
                world.repo.full_name,
                world.pull.number,
                f"LGTM\n\n{job_marker('feedbeef', head)}",
                "COMMENT",
                "COMMENTED",
                commit or head,
                [],
                login,
                "User",
            )
        )


def test_only_this_apps_own_markers_move_the_diff_base(world: AppWorld) -> None:
    """An author who pastes the App's marker into a review of their own (or whose marker names another
    commit than the review's) cannot shrink the next review to their last push."""
    world.push_pr_commit(AUDIT)
    h1 = world.pull.head_sha
    _forge(world, h1, login="mallory")
    world.push_pr_commit(BILLING)
    world.run(world.job("synchronize", before_sha=h1, delivery_id="d-2"))
    assert {"app/users.py", "app/audit.py", "app/billing.py"} <= _paths(world)


def test_a_marker_naming_another_commit_than_its_review_is_ignored(world: AppWorld) -> None:
    world.run(world.job("opened"))
    reviewed = world.pull.head_sha
    world.push_pr_commit(AUDIT)
    h1 = world.pull.head_sha
    with world.fake.lock:  # the App's own review, but its marker was edited to name a later head
        world.fake.reviews[-1].body = world.fake.reviews[-1].body.replace(reviewed, h1)
    world.push_pr_commit(BILLING)
    world.run(world.job("synchronize", before_sha=h1, delivery_id="d-2"))
    assert "app/audit.py" in _paths(world)


def test_a_synchronize_job_on_a_head_already_reviewed_by_another_job_is_skipped(world: AppWorld) -> None:
    world.run(world.job("opened"))
    outcome = world.run(world.job("synchronize", delivery_id="d-2"), runner=None, attempt=1, job_id="job-2")
    assert outcome == "skipped: this head was already reviewed"
    assert len(world.fake.reviews_for(world.pull)) == 1


# --- 2. out of order or lost deliveries: the live head always gets a job ---------------------------


def _drain(world: AppWorld, queue: SQLiteQueue, runner: ReviewJobRunner) -> None:
    async def main() -> None:
        worker = Worker(queue, runner, config=WorkerConfig(concurrency=1, idle_poll_seconds=0.05))
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        for _ in range(400):
            records = await queue.jobs()
            if records and all(r.state not in (JobState.PENDING, JobState.RUNNING) for r in records):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(main())


def test_a_superseded_job_queues_the_live_head_whose_delivery_never_came(
    world: AppWorld, tmp_path: Path
) -> None:
    """Only the older push's delivery arrived (the newer one is lost or still on its way): its job
    finds the head moved, ends superseded, and the live head is reviewed by a job of its own."""
    h0 = world.pull.head_sha
    world.push_pr_commit(AUDIT)
    h1 = world.pull.head_sha
    world.push_pr_commit(BILLING)  # h2: no delivery
    queue = SQLiteQueue(tmp_path / "q.db")
    try:
        queued = asyncio.run(queue.enqueue(world.job("synchronize", head_sha=h1, before_sha=h0)))
        assert queued.outcome is EnqueueOutcome.ACCEPTED
        _drain(world, queue, world.runner())
        records = asyncio.run(queue.jobs())
    finally:
        asyncio.run(queue.close())
    assert (records[0].job.head_sha, records[0].state, records[0].outcome) == (
        h1,
        JobState.DONE,
        f"superseded by {world.pull.head_sha[:7]}",
    )
    assert [r.job.head_sha for r in records] == [h1, world.pull.head_sha]
    assert records[1].state is JobState.DONE and (records[1].outcome or "").startswith("posted review")
    (review,) = world.fake.reviews_for(world.pull)
    assert review.commit_id == world.pull.head_sha
    assert {"app/users.py", "app/audit.py", "app/billing.py"} <= _paths(world)
    with world.fake.lock:
        assert [c.status for c in world.fake.check_runs.values()] == ["completed"]


def test_a_superseded_job_queues_nothing_when_the_live_head_was_reviewed(world: AppWorld) -> None:
    h0 = world.pull.head_sha
    world.push_pr_commit(AUDIT)
    world.run(world.job("opened", head_sha=world.pull.head_sha), job_id="job-2")
    with pytest.raises(Superseded) as raised:
        world.run(world.job("synchronize", head_sha=h0, delivery_id="d-2"))
    assert raised.value.live_head is None


# --- 3. a check run an earlier attempt left open is completed on every path -----------------------


def test_a_retry_that_finds_the_head_moved_completes_the_killed_attempts_check_run(
    world: AppWorld, model_server: ModelServer
) -> None:
    model_server.play([Stall(30)])
    runner = world.runner(provider_factory=model_provider(model_server))
    claimed = ClaimedJob(id="job-1", job=world.job("opened"), attempt=1, lease_token="t")

    async def killed() -> None:  # the attempt dies mid-review, as under SIGKILL: nothing runs after
        task = asyncio.create_task(runner(claimed))
        while not model_server.requests:  # noqa: ASYNC110 (the server runs on another thread)
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(killed())
    with world.fake.lock:
        assert [c.status for c in world.fake.check_runs.values()] == ["in_progress"]
    old_head = world.pull.head_sha
    world.push_pr_commit(AUDIT)
    retry = dataclasses.replace(claimed, attempt=2)
    with pytest.raises(Superseded):
        asyncio.run(world.runner()(retry))
    with world.fake.lock:
        (check,) = world.fake.check_runs.values()
    assert check.head_sha == old_head and check.status == "completed" and check.conclusion == "skipped"
    assert check.output["title"] == f"Superseded by {world.pull.head_sha[:7]}"


def test_a_retry_that_finds_the_pull_request_closed_completes_the_earlier_check_run(world: AppWorld) -> None:
    async def opened_then_killed() -> None:
        async with world.runner().deps.github.installation_session(world.job(), write=True) as gw:
            await gw.open_check_run(
                world.job().pr, world.pull.head_sha, name="backend-review", external_id="job-1"
            )

    asyncio.run(opened_then_killed())
    world.fake.update_pull(world.pull, state="closed")
    assert world.run(world.job("opened"), attempt=2) == "skipped: pull request is not open"
    with world.fake.lock:
        (check,) = world.fake.check_runs.values()
    assert (check.status, check.conclusion) == ("completed", "neutral")
