"""C-06 across a follow-up: the job the worker queues for a head that arrived while a job ran (issue 9.2)
asks what a push of that head asks, so a fork PR's new head still needs a maintainer (issue 11.2)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.events import Enqueue
from bot.jobs import ReviewJobRunner
from bot.models import ReviewJob
from bot.queue.base import ClaimedJob, JobRecord, JobState
from bot.store.sqlite_queue import SQLiteQueue
from bot.worker import Worker, WorkerConfig
from tests.app.conftest import OPENED_FIXTURE, AppWorld

PUSH = {
    "app/extra.py": "import requests\n\n\ndef ping() -> None:\n    requests.get('https://x', verify=False)\n"
}


def _fork_pr_from_an_outsider(world: AppWorld) -> None:
    world.fake.update_pull(world.pull, head_repo_full_name="mallory/orders-service", user_login="mallory")
    world.fake.set_permission(world.repo, "mallory", "none")


def _serve(tmp_path: Path, job: ReviewJob, runner: ReviewJobRunner) -> list[JobRecord]:
    """Queue ``job`` and let a real worker run it and whatever it queues, until all is finished."""

    async def main() -> list[JobRecord]:
        queue = SQLiteQueue(tmp_path / "q.db")
        try:
            await queue.enqueue(job)
            worker = Worker(queue, runner, config=WorkerConfig(concurrency=1, idle_poll_seconds=0.05))
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            for _ in range(600):
                records = await queue.jobs()
                if all(r.state not in (JobState.PENDING, JobState.RUNNING) for r in records):
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await task
            return await queue.jobs()
        finally:
            await queue.close()

    return asyncio.run(main())


def _checks_on(world: AppWorld, head: str) -> list[tuple[str | None, str]]:
    with world.fake.lock:
        return [
            (c.conclusion, str(c.output.get("title")))
            for c in world.fake.check_runs.values()
            if c.head_sha == head
        ]


def test_c06_a_push_during_a_maintainers_review_of_a_fork_pr_awaits_a_maintainer_again(
    world: AppWorld, tmp_path: Path
) -> None:
    """A maintainer's command opts one head of a fork PR in (C-05 pins it). The author pushes while it
    is being reviewed: that review is superseded, and the follow-up job for the new head gets the
    neutral "awaiting maintainer" check, not a review on the maintainer's say-so."""
    _fork_pr_from_an_outsider(world)
    _, command = world.command("/backend-review", "maint", "maintain")
    pushed: list[str] = []

    async def push_during_review(claimed: ClaimedJob) -> bool:  # runs after the review, before posting
        if not pushed:
            pushed.append(world.push_pr_commit(PUSH))
        return True

    records = _serve(tmp_path, command, world.runner(lease_check=push_during_review))
    (new_head,) = pushed
    assert [(r.job.trigger, r.state, r.outcome) for r in records] == [
        ("command", JobState.DONE, f"superseded by {new_head[:7]}"),
        ("synchronize", JobState.DONE, "awaiting maintainer"),
    ]
    assert records[1].job.head_sha == new_head and records[1].job.plan.authorize == "mallory"
    assert world.fake.reviews_for(world.pull) == []
    assert _checks_on(world, new_head) == [("neutral", "Awaiting a maintainer")]


def test_c06_a_fork_prs_push_whose_delivery_never_came_awaits_a_maintainer(
    world: AppWorld, tmp_path: Path
) -> None:
    """The opened delivery's job finds the head already moved: the follow-up for the live head asks
    for the author's permission as the opened job did, and gets the neutral check."""
    _fork_pr_from_an_outsider(world)
    decision = world.decide(OPENED_FIXTURE)
    assert isinstance(decision, Enqueue) and decision.on_deny == "await_maintainer"
    new_head = world.push_pr_commit(PUSH)  # no delivery for this push
    records = _serve(tmp_path, decision.job, world.runner())
    assert [(r.job.head_sha, r.outcome) for r in records] == [
        (decision.job.head_sha, f"superseded by {new_head[:7]}"),
        (new_head, "awaiting maintainer"),
    ]
    assert world.fake.reviews_for(world.pull) == []
    assert _checks_on(world, new_head) == [("neutral", "Awaiting a maintainer")]
