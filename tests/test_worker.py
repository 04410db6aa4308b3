"""The worker loop against a real SQLite queue (D-04, D-05, W-04)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bot.errors import ModelUnavailable, NotAuthorized, Superseded
from bot.log import JsonFormatter
from bot.models import PullRequestRef, ReviewJob
from bot.queue.base import ClaimedJob, EnqueueOutcome, JobRecord, JobState
from bot.store.sqlite_queue import SQLiteQueue
from bot.worker import JobHandler, Worker, WorkerConfig

FAST = WorkerConfig(
    concurrency=2,
    lease_seconds=1.0,
    max_attempts=3,
    idle_poll_seconds=0.02,
    grace_seconds=1.0,
    backoff_base=0.01,
    backoff_cap=0.05,
)


def job(number: int = 1, sha: str = "a", *, installation: int = 7, comment: int | None = None) -> ReviewJob:
    return ReviewJob(
        pr=PullRequestRef("octo", "app", number, installation_id=installation),
        head_sha=(sha * 40)[:40],
        trigger="command" if comment else "synchronize",
        delivery_id=str(uuid.uuid4()),
        comment_id=comment,
    )


class Dead:
    def __init__(self) -> None:
        self.calls: list[tuple[str, BaseException]] = []

    async def __call__(self, claimed: ClaimedJob, error: BaseException) -> None:
        self.calls.append((claimed.id, error))


async def until(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def finished(q: SQLiteQueue, count: int = 1) -> list[JobRecord]:
    records = await q.jobs()
    done = [r for r in records if r.state in (JobState.DONE, JobState.FAILED, JobState.SUPERSEDED)]
    return done if len(done) >= count else []


def scenario(
    tmp_path: Path,
    handler: JobHandler,
    body: Callable[[SQLiteQueue, Worker], Awaitable[None]],
    *,
    config: WorkerConfig = FAST,
    on_dead: Dead | None = None,
) -> None:
    """Run ``body`` while a worker serves a fresh queue; stop the worker and close the queue after."""

    async def main() -> None:
        q = SQLiteQueue(tmp_path / "queue.db")
        worker = Worker(q, handler, on_dead=on_dead, config=config, rand=lambda: 0.5)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            await body(q, worker)
        finally:
            stop.set()
            await task
            await q.close()

    asyncio.run(main())


def test_success_records_the_outcome(tmp_path: Path) -> None:
    seen: list[ClaimedJob] = []

    async def handler(claimed: ClaimedJob) -> str:
        seen.append(claimed)
        return "posted 2 comments"

    async def body(q: SQLiteQueue, worker: Worker) -> None:
        await q.enqueue(job())
        [record] = await until_finished(q)
        assert (record.state, record.outcome, record.attempts) == (JobState.DONE, "posted 2 comments", 1)

    scenario(tmp_path, handler, body)
    assert len(seen) == 1 and seen[0].attempt == 1


async def until_finished(q: SQLiteQueue, count: int = 1) -> list[JobRecord]:
    await until(lambda: _nonempty(finished(q, count)))
    return await finished(q, count)


async def _nonempty(records: Awaitable[list[JobRecord]]) -> bool:
    return bool(await records)


def test_notify_wakes_idle_slots_at_once(tmp_path: Path) -> None:
    async def handler(claimed: ClaimedJob) -> str:
        return "ok"

    async def body(q: SQLiteQueue, worker: Worker) -> None:
        await asyncio.sleep(0.05)  # the slots are idle, polling every 30 s
        started = time.monotonic()
        await q.enqueue(job())
        worker.notify()
        await until_finished(q)
        assert time.monotonic() - started < 1.0

    scenario(tmp_path, handler, body, config=WorkerConfig(idle_poll_seconds=30.0, grace_seconds=1.0))


def test_d05_retry_after_is_honoured_then_success(tmp_path: Path) -> None:
    times: list[float] = []

    async def handler(claimed: ClaimedJob) -> str:
        times.append(time.monotonic())
        if claimed.attempt == 1:
            raise ModelUnavailable("429 slow down", retry_after=0.3)
        return "posted"

    async def body(q: SQLiteQueue, worker: Worker) -> None:
        await q.enqueue(job())
        [record] = await until_finished(q)
        assert (record.state, record.attempts, record.outcome) == (JobState.DONE, 2, "posted")
        assert record.error == "ModelUnavailable: 429 slow down"  # the last failure stays on record

    scenario(tmp_path, handler, body, config=dataclasses.replace(FAST, backoff_cap=5.0))
    assert len(times) == 2 and times[1] - times[0] >= 0.3


def test_d05_model_500_forever_is_three_attempts_then_dead_and_not_requeued(tmp_path: Path) -> None:
    calls: list[int] = []
    dead = Dead()

    async def handler(claimed: ClaimedJob) -> str:
        calls.append(claimed.attempt)
        raise ModelUnavailable("500 internal error")

    async def body(q: SQLiteQueue, worker: Worker) -> None:
        original = job(comment=42)
        await q.enqueue(original)
        [record] = await until_finished(q)
        assert (record.state, record.attempts) == (JobState.FAILED, 3)
        assert record.error == "ModelUnavailable: 500 internal error"
        redelivered = dataclasses.replace(original, delivery_id="new-guid")
        assert (await q.enqueue(redelivered)).outcome is EnqueueOutcome.DEAD_LETTERED
        await asyncio.sleep(0.1)

    scenario(tmp_path, handler, body, on_dead=dead)
    assert calls == [1, 2, 3]
    assert len(dead.calls) == 1 and isinstance(dead.calls[0][1], ModelUnavailable)


def test_permanent_error_fails_at_once(tmp_path: Path) -> None:
    dead = Dead()
    calls: list[int] = []

    async def handler(claimed: ClaimedJob) -> str:
        calls.append(claimed.attempt)
        raise NotAuthorized("sender lost write access")

    async def body(q: SQLiteQueue, worker: Worker) -> None:
        await q.enqueue(job())
        [record] = await until_finished(q)
        assert (record.state, record.attempts) == (JobState.FAILED, 1)

    scenario(tmp_path, handler, body, on_dead=dead)
    assert calls == [1] and len(dead.calls) == 1


def test_superseded_completes_without_on_dead(tmp_path: Path) -> None:
    dead = Dead()

    async def handler(claimed: ClaimedJob) -> str:
        raise Superseded("head moved to bbbbbbb")

    async def body(q: SQLiteQueue, worker: Worker) -> None:
        await q.enqueue(job())
        [record] = await until_finished(q)
        assert (record.state, record.outcome, record.attempts) == (JobState.DONE, "superseded", 1)

    scenario(tmp_path, handler, body, on_dead=dead)
    assert dead.calls == []


def test_unexpected_exception_is_retried_and_the_worker_survives(tmp_path: Path) -> None:
    async def handler(claimed: ClaimedJob) -> str:
        if claimed.job.pr.number == 1 and claimed.attempt == 1:
            raise KeyError("bug")
        return "posted"

    async def body(q: SQLiteQueue, worker: Worker) -> None:
        await q.enqueue(job(1))
        await q.enqueue(job(2))
        records = await until_finished(q, 2)
        assert {(r.job.pr.number, r.state, r.attempts) for r in records} == {
            (1, JobState.DONE, 2),
            (2, JobState.DONE, 1),
        }

    scenario(tmp_path, handler, body)


def test_lost_lease_cancels_the_handler_and_leaves_the_job_alone(tmp_path: Path) -> None:
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def handler(claimed: ClaimedJob) -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    async def body(q: SQLiteQueue, worker: Worker) -> None:
        await q.enqueue(job())
        await asyncio.wait_for(started.wait(), 5)
        # Another worker took the job over (its lease had expired): it holds a new token now.
        with sqlite3.connect(tmp_path / "queue.db") as conn:
            conn.execute("UPDATE review_jobs SET lease_token = 'thief', attempts = attempts + 1")
        conn.close()
        [record] = await q.jobs()
        thief = ClaimedJob(id=record.id, job=record.job, attempt=2, lease_token="thief")
        await asyncio.wait_for(cancelled.wait(), 2)  # heartbeat every lease/3 = 0.33 s
        await asyncio.sleep(0.05)
        [record] = await q.jobs()
        assert record.state is JobState.RUNNING  # still the thief's, untouched by the loser
        await q.complete(thief, "posted by other")
        [record] = await q.jobs()
        assert (record.state, record.outcome) == (JobState.DONE, "posted by other")

    scenario(tmp_path, handler, body)


def test_graceful_shutdown_lets_running_jobs_finish(tmp_path: Path) -> None:
    async def main() -> None:
        q = SQLiteQueue(tmp_path / "queue.db")
        started = asyncio.Event()

        async def handler(claimed: ClaimedJob) -> str:
            started.set()
            await asyncio.sleep(0.2)
            return "posted"

        stop = asyncio.Event()
        one_slot = dataclasses.replace(FAST, concurrency=1)
        task = asyncio.create_task(Worker(q, handler, config=one_slot).run(stop))
        await q.enqueue(job())
        await asyncio.wait_for(started.wait(), 5)
        await q.enqueue(job(2))  # not claimed any more once stop is set
        stop.set()
        await asyncio.wait_for(task, 5)
        states = {r.job.pr.number: r.state for r in await q.jobs()}
        await q.close()
        assert states == {1: JobState.DONE, 2: JobState.PENDING}

    asyncio.run(main())


def test_shutdown_past_grace_cancels_and_the_job_is_retried_after_its_lease(tmp_path: Path) -> None:
    async def main() -> None:
        q = SQLiteQueue(tmp_path / "queue.db")
        started = asyncio.Event()

        async def stuck(claimed: ClaimedJob) -> str:
            started.set()
            await asyncio.sleep(30)
            return "never"

        config = WorkerConfig(concurrency=1, lease_seconds=0.3, idle_poll_seconds=0.02, grace_seconds=0.1)
        stop = asyncio.Event()
        task = asyncio.create_task(Worker(q, stuck, config=config).run(stop))
        await q.enqueue(job())
        await asyncio.wait_for(started.wait(), 5)
        t0 = time.monotonic()
        stop.set()
        await asyncio.wait_for(task, 5)
        assert time.monotonic() - t0 < 1.0
        [record] = await q.jobs()
        assert record.state is JobState.RUNNING  # left for its lease to expire
        assert await q.claim("next", 30) is None
        await asyncio.sleep(0.35)
        again = await q.claim("next", 30)
        assert again is not None and again.attempt == 2
        await q.close()

    asyncio.run(main())


def test_killed_worker_job_is_reclaimed_after_the_lease(tmp_path: Path) -> None:
    async def handler(claimed: ClaimedJob) -> str:
        return f"posted on attempt {claimed.attempt}"

    async def main() -> None:
        q = SQLiteQueue(tmp_path / "queue.db")
        await q.enqueue(job())
        abandoned = await q.claim("sigkilled", 0.3)  # claimed, then the process "dies"
        assert abandoned is not None
        stop = asyncio.Event()
        task = asyncio.create_task(Worker(q, handler, config=FAST).run(stop))
        [record] = await until_finished(q)
        stop.set()
        await task
        await q.close()
        assert (record.state, record.outcome) == (JobState.DONE, "posted on attempt 2")

    asyncio.run(main())


def test_job_abandoned_max_attempts_times_is_failed_without_running(tmp_path: Path) -> None:
    dead = Dead()
    calls: list[int] = []

    async def handler(claimed: ClaimedJob) -> str:
        calls.append(claimed.attempt)
        return "posted"

    async def main() -> None:
        q = SQLiteQueue(tmp_path / "queue.db")
        await q.enqueue(job())
        for _ in range(3):  # three workers died holding it
            assert await q.claim("crashing", 0.01) is not None
            await asyncio.sleep(0.02)
        stop = asyncio.Event()
        task = asyncio.create_task(Worker(q, handler, on_dead=dead, config=FAST).run(stop))
        [record] = await until_finished(q)
        stop.set()
        await task
        await q.close()
        assert (record.state, record.attempts) == (JobState.FAILED, 4)

    asyncio.run(main())
    assert calls == [] and len(dead.calls) == 1


def test_d04_per_installation_concurrency_limit(tmp_path: Path) -> None:
    running: dict[int, int] = {}
    peak: dict[int, int] = {}

    async def handler(claimed: ClaimedJob) -> str:
        inst = claimed.job.pr.installation_id or 0
        running[inst] = running.get(inst, 0) + 1
        peak[inst] = max(peak.get(inst, 0), running[inst])
        await asyncio.sleep(0.05)
        running[inst] -= 1
        return "posted"

    config = WorkerConfig(
        concurrency=6, max_running_per_installation=2, idle_poll_seconds=0.02, grace_seconds=1
    )

    async def body(q: SQLiteQueue, worker: Worker) -> None:
        for n in range(6):
            await q.enqueue(job(n, installation=1))
        await q.enqueue(job(100, installation=2))
        await until_finished(q, 7)

    scenario(tmp_path, handler, body, config=config)
    assert peak == {1: 2, 2: 1}


def test_log_lines_are_bound_to_the_job(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler_ = logging.StreamHandler(stream)
    handler_.setFormatter(JsonFormatter())
    logger = logging.getLogger("bot.worker")
    old_level = logger.level
    logger.addHandler(handler_)
    logger.setLevel(logging.INFO)

    async def handler(claimed: ClaimedJob) -> str:
        return "posted"

    async def body(q: SQLiteQueue, worker: Worker) -> None:
        await q.enqueue(job(7, "c"))
        await until_finished(q)

    try:
        scenario(tmp_path, handler, body)
    finally:
        logger.removeHandler(handler_)
        logger.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    done = next(line for line in lines if line["event"] == "job done")
    assert done["pr"] == "octo/app#7@ccccccc" and done["outcome"] == "posted"
    assert done["job"] and done["delivery"]


@pytest.mark.parametrize("attempts", [1, 2])
def test_max_attempts_is_configurable(tmp_path: Path, attempts: int) -> None:
    calls: list[int] = []

    async def handler(claimed: ClaimedJob) -> str:
        calls.append(claimed.attempt)
        raise ModelUnavailable("503")

    async def body(q: SQLiteQueue, worker: Worker) -> None:
        await q.enqueue(job())
        [record] = await until_finished(q)
        assert record.state is JobState.FAILED

    config = WorkerConfig(max_attempts=attempts, idle_poll_seconds=0.02, backoff_base=0.01, grace_seconds=1)
    scenario(tmp_path, handler, body, config=config)
    assert calls == list(range(1, attempts + 1))


def test_superseded_job_queues_its_live_head_once(tmp_path: Path) -> None:
    """Issue 9.2: a job that finds the head moved on (and not reviewed) queues the live head before it
    completes; a second attempt of it (its worker died in between) queues nothing more."""
    live = "b" * 40
    runs: list[str] = []

    async def handler(claimed: ClaimedJob) -> str:
        runs.append(claimed.job.head_sha)
        if claimed.job.head_sha != live:
            raise Superseded("head moved", live_head=live)
        return "posted"

    async def body(q: SQLiteQueue, worker: Worker) -> None:
        first = await q.enqueue(job(sha="a"))
        await until(lambda: finished(q, 2))
        records = await q.jobs()
        assert [(r.job.head_sha[0], r.state, r.outcome) for r in records] == [
            ("a", JobState.DONE, "superseded by bbbbbbb"),
            ("b", JobState.DONE, "posted"),
        ]
        follow = records[1].job
        assert (follow.trigger, follow.before_sha, follow.delivery_id) == (
            "synchronize",
            "a" * 40,
            f"{first.job_id}:live-head",
        )
        # the same attempt again, as after a crash between queueing the follow-up and completing
        again = ClaimedJob(id=str(first.job_id), job=records[0].job, attempt=2, lease_token="gone")
        result = await q.enqueue(dataclasses.replace(follow))
        assert result.outcome is EnqueueOutcome.DUPLICATE_DELIVERY
        await worker._follow_up(again, live)
        assert len(await q.jobs()) == 2

    scenario(tmp_path, handler, body)
    assert runs == ["a" * 40, live]
