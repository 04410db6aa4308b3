"""One contract suite for every ReviewQueue backend (SQLite embedded, Postgres scale-out).

Postgres tests run against 127.0.0.1:5432 (``BR_TEST_POSTGRES`` overrides the DSN), each in a fresh
schema that is dropped afterwards; they are skipped only when the server is unreachable.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from bot.models import PullRequestRef, ReviewJob, Trigger
from bot.queue.base import DELIVERY_RETENTION_SECONDS, EnqueueOutcome, JobState, ReviewQueue
from bot.store import open_store
from bot.store.postgres_queue import PostgresQueue
from bot.store.sqlite_queue import SQLiteQueue

PG_DSN = os.environ.get("BR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
LEASE = 30.0

Opener = Callable[[], ReviewQueue]


def _pg_unreachable() -> str | None:
    try:
        psycopg.connect(PG_DSN, connect_timeout=2).close()
    except psycopg.OperationalError as exc:
        return f"Postgres unreachable at {PG_DSN}: {exc}"
    return None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """A factory of queue instances that all share one fresh store (file or schema)."""
    if request.param == "sqlite":
        yield lambda: SQLiteQueue(tmp_path / "queue.db")
        return
    reason = _pg_unreachable()
    if reason:
        pytest.skip(reason)
    schema = f"br_test_{uuid.uuid4().hex}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield lambda: PostgresQueue(PG_DSN, schema=schema, min_size=1, max_size=8)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def run(store: Opener, body: Callable[[Opener], Awaitable[None]]) -> None:
    async def main() -> None:
        opened: list[ReviewQueue] = []

        def open_() -> ReviewQueue:
            opened.append(store())
            return opened[-1]

        try:
            await body(open_)
        finally:
            for q in opened:
                await q.close()

    asyncio.run(main())


def job(
    number: int = 1,
    sha: str = "a",
    *,
    trigger: Trigger = "synchronize",
    delivery: str | None = None,
    comment: int | None = None,
    installation: int = 7,
    full: bool = False,
    sender: str | None = None,
    before: str | None = None,
) -> ReviewJob:
    if sender is None and trigger in ("command", "rerequested"):
        sender = "alice"  # every command and re-run has one
    return ReviewJob(
        pr=PullRequestRef("octo", "app", number, installation_id=installation, repo_id=99),
        head_sha=(sha * 40)[:40],
        trigger=trigger,
        delivery_id=delivery or str(uuid.uuid4()),
        comment_id=comment,
        full=full,
        sender=sender,
        before_sha=None if before is None else (before * 40)[:40],
    )


async def states(q: ReviewQueue, pr_key: str | None = None) -> list[JobState]:
    return [r.state for r in await q.jobs(pr_key)]


def test_w04_same_delivery_twice_is_one_job(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        first = await q.enqueue(job(delivery="d-1"))
        assert first.outcome is EnqueueOutcome.ACCEPTED and first.created
        again = await q.enqueue(job(delivery="d-1", sha="b"))
        assert again.outcome is EnqueueOutcome.DUPLICATE_DELIVERY and not again.created
        assert await states(q) == [JobState.PENDING]

    run(store, body)


def test_w04_delivery_recorded_only_when_work_is_queued(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        await q.enqueue(job(1, delivery="d-1"))
        dup = await q.enqueue(job(1, delivery="d-2"))
        assert dup.outcome is EnqueueOutcome.DUPLICATE_KEY
        # d-2 queued nothing, so it was not remembered: it is still usable.
        assert (await q.enqueue(job(2, delivery="d-2"))).outcome is EnqueueOutcome.ACCEPTED

    run(store, body)


def test_w04_new_delivery_same_key_is_deduplicated_in_every_live_state(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        original = await q.enqueue(job(comment=11, trigger="command"))
        again = await q.enqueue(job(comment=11, trigger="command"))
        assert again.outcome is EnqueueOutcome.DUPLICATE_KEY and again.job_id == original.job_id
        claimed = await q.claim("w", LEASE)
        assert claimed is not None
        assert (await q.enqueue(job(comment=11, trigger="command"))).outcome is EnqueueOutcome.DUPLICATE_KEY
        await q.complete(claimed, "posted")
        assert (await q.enqueue(job(comment=11, trigger="command"))).outcome is EnqueueOutcome.DUPLICATE_KEY
        assert await states(q) == [JobState.DONE]

    run(store, body)


def test_newer_head_replaces_the_pending_job(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        old = await q.enqueue(job(sha="a"))
        new = await q.enqueue(job(sha="b"))
        assert new.outcome is EnqueueOutcome.REPLACED and new.job_id != old.job_id
        records = await q.jobs()
        assert [r.state for r in records] == [JobState.SUPERSEDED, JobState.PENDING]
        assert records[0].outcome == f"replaced by {new.job_id}"
        assert records[0].finished_at is not None
        claimed = await q.claim("w", LEASE)
        assert claimed is not None and claimed.id == new.job_id and claimed.job.head_sha == "b" * 40
        assert await q.state(str(old.job_id)) is JobState.SUPERSEDED

    run(store, body)


def test_one_running_per_pr_others_proceed(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        await q.enqueue(job(1, "a"))
        first = await q.claim("w", LEASE)
        assert first is not None
        second = await q.enqueue(job(1, "b"))
        assert second.outcome is EnqueueOutcome.ACCEPTED  # one running + one pending
        assert await q.claim("w", LEASE) is None  # PR 1 is busy
        other = await q.enqueue(job(2, "a"))
        got = await q.claim("w", LEASE)
        assert got is not None and got.id == other.job_id
        await q.complete(first, "posted")
        got = await q.claim("w", LEASE)
        assert got is not None and got.id == second.job_id and got.attempt == 1

    run(store, body)


def test_lease_expiry_lets_another_worker_reclaim_and_stale_token_is_ignored(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        queued = await q.enqueue(job())
        dead = await q.claim("killed", 0.2)
        assert dead is not None and dead.attempt == 1
        assert await q.claim("w2", LEASE) is None  # lease still valid
        await asyncio.sleep(0.3)
        live = await q.claim("w2", LEASE)
        assert live is not None and live.id == queued.job_id
        assert live.attempt == 2 and live.lease_token != dead.lease_token
        # The worker that lost its lease cannot touch the job any more.
        assert await q.heartbeat(dead, LEASE) is False
        await q.complete(dead, "stale")
        await q.fail(dead, "stale")
        await q.retry(dead, "stale", 0)
        assert await q.state(live.id) is JobState.RUNNING
        assert await q.heartbeat(live, LEASE) is True
        await q.complete(live, "posted")
        [record] = await q.jobs()
        assert (record.state, record.outcome, record.attempts) == (JobState.DONE, "posted", 2)

    run(store, body)


def test_heartbeat_keeps_the_lease(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        await q.enqueue(job())
        claimed = await q.claim("w", 0.3)
        assert claimed is not None
        for _ in range(3):
            await asyncio.sleep(0.15)
            assert await q.heartbeat(claimed, 0.3)
        assert await q.claim("w2", LEASE) is None

    run(store, body)


def test_retry_runs_again_after_the_delay(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        await q.enqueue(job())
        claimed = await q.claim("w", LEASE)
        assert claimed is not None
        await q.retry(claimed, "model 503", 0.3)
        [record] = await q.jobs()
        assert (record.state, record.error) == (JobState.PENDING, "model 503")
        assert await q.claim("w", LEASE) is None
        await asyncio.sleep(0.35)
        again = await q.claim("w", LEASE)
        assert again is not None and again.id == claimed.id and again.attempt == 2

    run(store, body)


def test_retry_yields_to_a_newer_pending_job(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        await q.enqueue(job(sha="a"))
        claimed = await q.claim("w", LEASE)
        assert claimed is not None
        newer = await q.enqueue(job(sha="b"))
        await q.retry(claimed, "timeout", 0)
        assert await states(q) == [JobState.SUPERSEDED, JobState.PENDING]
        got = await q.claim("w", LEASE)
        assert got is not None and got.id == newer.job_id

    run(store, body)


def test_d05_failed_job_is_dead_lettered_on_redelivery(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        await q.enqueue(job(comment=5, trigger="command", delivery="d-1"))
        claimed = await q.claim("w", LEASE)
        assert claimed is not None
        await q.fail(claimed, "model 500 three times")
        [record] = await q.jobs()
        assert (record.state, record.error) == (JobState.FAILED, "model 500 three times")
        again = await q.enqueue(job(comment=5, trigger="command", delivery="d-2"))
        assert again.outcome is EnqueueOutcome.DEAD_LETTERED and again.job_id == claimed.id
        assert (await q.enqueue(job(comment=5, delivery="d-1"))).outcome is EnqueueOutcome.DUPLICATE_DELIVERY
        assert await q.claim("w", LEASE) is None

    run(store, body)


def test_c07_fifty_commands_are_one_run_plus_at_most_one_queued(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        flood = [job(trigger="command", comment=100 + i) for i in range(50)]
        results = await asyncio.gather(*(q.enqueue(j) for j in flood))
        outcomes = [r.outcome for r in results]
        assert outcomes.count(EnqueueOutcome.ACCEPTED) == 1
        assert outcomes.count(EnqueueOutcome.COALESCED) == 49
        running = await q.claim("w", LEASE)
        assert running is not None
        more = await asyncio.gather(*(q.enqueue(job(trigger="command", comment=200 + i)) for i in range(50)))
        assert [r.outcome for r in more].count(EnqueueOutcome.ACCEPTED) == 1
        assert sorted(await states(q)) == sorted([JobState.RUNNING, JobState.PENDING])
        assert await q.claim("w", LEASE) is None

    run(store, body)


def test_c07_coalesced_full_command_widens_the_pending_run(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        first = await q.enqueue(job(sha="", trigger="command", comment=8))
        merged = await q.enqueue(job(sha="", trigger="command", comment=9, full=True))
        assert merged.outcome is EnqueueOutcome.COALESCED and merged.job_id == first.job_id
        claimed = await q.claim("w", LEASE)
        assert claimed is not None and claimed.job.full and claimed.id == merged.job_id

    run(store, body)


def test_d03_push_storm_is_debounced_and_superseded_jobs_never_run(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        claimed_shas: list[str] = []
        storm_over = asyncio.Event()

        async def worker() -> None:
            while True:
                got = await q.claim("w", LEASE)
                if got is None:
                    if storm_over.is_set() and JobState.PENDING not in await states(q):
                        return
                    await asyncio.sleep(0.02)
                    continue
                claimed_shas.append(got.job.head_sha[0])
                await asyncio.sleep(0.05)
                await q.complete(got, "posted")

        task = asyncio.create_task(worker())
        shas = "abcdefghijklmnopqrst"
        for sha in shas:  # 20 synchronize events, each a new head, within the debounce window
            # the window runs from the first push, so it must outlast the whole storm
            await q.enqueue(job(sha=sha, trigger="synchronize"), delay_seconds=1.0)
            live = await states(q)
            assert live.count(JobState.RUNNING) <= 1 and live.count(JobState.PENDING) <= 1
            await asyncio.sleep(0.01)
        storm_over.set()
        await asyncio.wait_for(task, 5)
        assert claimed_shas == ["t"]  # debounced to one review, of the newest head
        records = await q.jobs()
        assert [r.state for r in records].count(JobState.SUPERSEDED) == 19
        assert all(r.attempts == 0 for r in records if r.state is JobState.SUPERSEDED)

    run(store, body)


def test_coalesced_pushes_end_in_one_job_for_the_newest_head(store: Opener) -> None:
    """Issue 9.1 at queue level: opened at h0, then pushes h1 and h2 before anything ran: one job,
    for h2, whose record still names only the last push's ``before`` — the worker must not take that
    as its diff base (tests/app/test_job_semantics.py covers that side)."""

    async def body(open_: Opener) -> None:
        q = open_()
        await q.enqueue(job(sha="0", trigger="opened"), delay_seconds=0.2)
        await q.enqueue(job(sha="1", before="0"), delay_seconds=0.2)
        last = await q.enqueue(job(sha="2", before="1"), delay_seconds=0.2)
        assert last.outcome is EnqueueOutcome.REPLACED
        await asyncio.sleep(0.3)
        claimed = await q.claim("w", LEASE)
        assert claimed is not None and claimed.id == last.job_id
        assert claimed.job.head_sha == "2" * 40 and claimed.job.before_sha == "1" * 40
        assert await q.claim("w", LEASE) is None
        assert await states(q) == [JobState.SUPERSEDED, JobState.SUPERSEDED, JobState.RUNNING]

    run(store, body)


def test_out_of_order_older_push_never_replaces_the_newer_pending_job(store: Opener) -> None:
    """Issue 9.2: synchronize for h2 arrives, then the older synchronize for h1. The lane keeps h2."""

    async def body(open_: Opener) -> None:
        q = open_()
        newer = await q.enqueue(job(sha="2", before="1"))
        older = await q.enqueue(job(sha="1", before="0"))
        assert older.outcome is EnqueueOutcome.STALE and not older.created
        assert older.job_id == newer.job_id
        # the opened event of h0, later still: older than both
        opened = await q.enqueue(job(sha="0", trigger="opened"))
        assert opened.outcome is EnqueueOutcome.STALE
        claimed = await q.claim("w", LEASE)
        assert claimed is not None and claimed.id == newer.job_id and claimed.job.head_sha == "2" * 40
        assert await states(q) == [JobState.RUNNING, JobState.SUPERSEDED, JobState.SUPERSEDED]

    run(store, body)


def test_out_of_order_older_push_after_the_newer_one_ran_queues_nothing(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        await q.enqueue(job(sha="2", before="1"))
        claimed = await q.claim("w", LEASE)
        assert claimed is not None
        late = await q.enqueue(job(sha="1", before="0"))  # while h2 runs
        assert late.outcome is EnqueueOutcome.STALE
        await q.complete(claimed, "posted")
        later = await q.enqueue(job(sha="1", before="0", delivery="d-late"))
        assert later.outcome is EnqueueOutcome.STALE
        assert await q.claim("w", LEASE) is None
        records = await q.jobs()
        assert [r.state for r in records] == [JobState.DONE, JobState.SUPERSEDED, JobState.SUPERSEDED]
        assert records[1].outcome == f"stale: older than {claimed.id}" and records[1].attempts == 0
        # on record like any handled delivery: a redelivery is a duplicate
        again = await q.enqueue(job(sha="1", before="0", delivery="d-late"))
        assert again.outcome is EnqueueOutcome.DUPLICATE_DELIVERY

    run(store, body)


def test_older_head_via_a_superseded_job_is_still_stale(store: Opener) -> None:
    """h2 (before h1) was replaced by h3 (before h2); h1 arriving last is older than h2, so stale."""

    async def body(open_: Opener) -> None:
        q = open_()
        await q.enqueue(job(sha="2", before="1"))
        h3 = await q.enqueue(job(sha="3", before="2"))
        assert h3.outcome is EnqueueOutcome.REPLACED
        assert (await q.enqueue(job(sha="1", before="0"))).outcome is EnqueueOutcome.STALE
        claimed = await q.claim("w", LEASE)
        assert claimed is not None and claimed.job.head_sha == "3" * 40

    run(store, body)


def test_a_push_back_to_an_earlier_head_is_new_work(store: Opener) -> None:
    """h1 → h2 → force-push back to h1: the last push names h2 as its before, so it is not stale."""

    async def body(open_: Opener) -> None:
        q = open_()
        await q.enqueue(job(sha="1", trigger="opened"))
        await q.enqueue(job(sha="2", before="1"))
        back = await q.enqueue(job(sha="1", before="2"))
        assert back.outcome is EnqueueOutcome.REPLACED
        claimed = await q.claim("w", LEASE)
        assert claimed is not None and claimed.id == back.job_id

    run(store, body)


def test_stale_rule_leaves_commands_and_other_prs_alone(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        await q.enqueue(job(1, sha="2", before="1"))
        assert (await q.enqueue(job(2, sha="1", before="0"))).outcome is EnqueueOutcome.ACCEPTED
        command = await q.enqueue(job(1, sha="", trigger="command", comment=5))
        assert command.outcome is EnqueueOutcome.ACCEPTED

    run(store, body)


def test_c01_non_writer_command_does_not_supersede_the_pending_push_review(store: Opener) -> None:
    """Commands are queued before their sender's permission is checked: one from a user without write
    access must neither replace the PR's pending automatic review nor absorb a maintainer's command."""

    async def body(open_: Opener) -> None:
        q = open_()
        push = await q.enqueue(job(sha="a"), delay_seconds=0.2)
        anyone = await q.enqueue(job(sha="", trigger="command", comment=1, sender="mallory"))
        assert anyone.outcome is EnqueueOutcome.ACCEPTED and anyone.job_id != push.job_id
        maintainer = await q.enqueue(job(sha="", trigger="command", comment=2, sender="alice"))
        assert maintainer.outcome is EnqueueOutcome.ACCEPTED
        assert maintainer.job_id not in (push.job_id, anyone.job_id)
        assert await states(q) == [JobState.PENDING] * 3
        # mallory's lane: mallory's next command coalesces there, alice's job is untouched
        again = await q.enqueue(job(sha="", trigger="command", comment=3, sender="mallory", full=True))
        assert again.outcome is EnqueueOutcome.COALESCED and again.job_id == anyone.job_id
        ran: list[str] = []
        while len(ran) < 3:
            got = await q.claim("w", LEASE)
            if got is None:
                await asyncio.sleep(0.05)
                continue
            ran.append(str(got.id))
            await q.complete(
                got, "skipped: mallory lacks write permission" if got.id == anyone.job_id else "ok"
            )
        assert sorted(ran) == sorted(str(r.job_id) for r in (push, anyone, maintainer))
        assert JobState.SUPERSEDED not in await states(q)

    run(store, body)


def test_c06_push_does_not_supersede_a_pending_command(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        command = await q.enqueue(job(sha="", trigger="command", comment=1))
        first = await q.enqueue(job(sha="a"), delay_seconds=LEASE)
        assert first.outcome is EnqueueOutcome.ACCEPTED
        second = await q.enqueue(job(sha="b"), delay_seconds=LEASE)
        assert second.outcome is EnqueueOutcome.REPLACED  # pushes still replace each other ...
        records = {r.id: r.state for r in await q.jobs()}
        assert records == {
            command.job_id: JobState.PENDING,  # ... but not the maintainer's command
            first.job_id: JobState.SUPERSEDED,
            second.job_id: JobState.PENDING,
        }
        got = await q.claim("w", LEASE)
        assert got is not None and got.id == command.job_id

    run(store, body)


def test_c07_commands_coalesce_per_sender(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        flood = [job(sha="", trigger="command", comment=i, sender=("alice", "bob")[i % 2]) for i in range(50)]
        results = await asyncio.gather(*(q.enqueue(j) for j in flood))
        outcomes = [r.outcome for r in results]
        assert outcomes.count(EnqueueOutcome.ACCEPTED) == 2 and outcomes.count(EnqueueOutcome.COALESCED) == 48
        by_sender = {r.job.sender: r.id for r in await q.jobs()}
        assert set(by_sender) == {"alice", "bob"}
        for j, r in zip(flood, results, strict=True):
            assert r.job_id == by_sender[j.sender]  # never merged into another sender's command

    run(store, body)


def test_one_running_per_pr_across_lanes(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        await q.enqueue(job(1, "a"))
        await q.enqueue(job(1, "", trigger="command", comment=1))
        await q.enqueue(job(1, "", trigger="command", comment=2, sender="bob"))
        seen: set[str] = set()
        for _ in range(3):
            got = await q.claim("w", LEASE)
            assert got is not None and got.id not in seen
            seen.add(got.id)
            assert await q.claim("w2", LEASE) is None  # the other lanes of PR 1 wait
            await q.complete(got, "posted")
        assert await q.claim("w", LEASE) is None
        assert await states(q) == [JobState.DONE] * 3

    run(store, body)


def test_retry_does_not_yield_to_another_lane(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        push = await q.enqueue(job(sha="a"))
        claimed = await q.claim("w", LEASE)
        assert claimed is not None and claimed.id == push.job_id
        await q.enqueue(job(sha="", trigger="command", comment=1, sender="mallory"))
        await q.retry(claimed, "model 503", 0)
        assert await states(q) == [JobState.PENDING, JobState.PENDING]  # the review is retried, not lost

    run(store, body)


def test_d03_debounce_window_runs_from_the_first_push(store: Opener) -> None:
    """A replacement keeps the earlier run_after: a PR pushed more often than the delay is still reviewed."""

    async def body(open_: Opener) -> None:
        q = open_()
        first = await q.enqueue(job(sha="a"), delay_seconds=0.6)
        for sha in "bc":
            await asyncio.sleep(0.25)
            assert (await q.enqueue(job(sha=sha), delay_seconds=0.6)).outcome is EnqueueOutcome.REPLACED
        records = await q.jobs()
        assert records[-1].run_after == records[0].run_after  # not restarted by b and c
        assert records[0].run_after - records[0].created_at == pytest.approx(0.6)
        remaining = records[0].run_after - time.time()
        await asyncio.sleep(max(0.0, remaining) + 0.05)
        got = await q.claim("w", LEASE)
        assert got is not None and got.job.head_sha == "c" * 40 and got.id != first.job_id

    run(store, body)


def test_d04_per_installation_running_limit(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        for n in (1, 2, 3):
            await q.enqueue(job(n, installation=1))
        await q.enqueue(job(4, installation=2))
        got = [await q.claim("w", LEASE, max_running_per_installation=2) for _ in range(4)]
        installs = [c.job.pr.installation_id if c else None for c in got]
        assert installs == [1, 1, 2, None]
        first = got[0]
        assert first is not None
        await q.complete(first, "posted")
        third = await q.claim("w", LEASE, max_running_per_installation=2)
        assert third is not None and third.job.pr.number == 3

    run(store, body)


def test_delay_seconds_defers_the_first_claim(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        await q.enqueue(job(), delay_seconds=0.3)
        assert await q.claim("w", LEASE) is None
        await asyncio.sleep(0.35)
        assert await q.claim("w", LEASE) is not None

    run(store, body)


def test_w04_deliveries_are_kept_for_at_least_seven_days_then_pruned(store: Opener) -> None:
    assert DELIVERY_RETENTION_SECONDS >= 7 * 24 * 3600

    async def body(open_: Opener) -> None:
        q = open_()
        await q.enqueue(job(1, delivery="d-1"))
        assert await q.prune() == 0
        assert (await q.enqueue(job(2, delivery="d-1"))).outcome is EnqueueOutcome.DUPLICATE_DELIVERY
        assert await q.prune(older_than_seconds=0) == 1
        assert (await q.enqueue(job(2, delivery="d-1"))).outcome is EnqueueOutcome.ACCEPTED

    run(store, body)


def test_jobs_record_every_outcome(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        await q.enqueue(job(1))
        await q.enqueue(job(2))
        claimed = await q.claim("w", LEASE)
        assert claimed is not None
        await q.complete(claimed, "posted 3 comments")
        one = await q.jobs(job(1).pr_key)
        assert len(one) == 1 and len(await q.jobs()) == 2
        record = one[0]
        assert record.pr_key == job(1).pr_key and record.job.pr.number == 1
        assert (record.state, record.outcome, record.error, record.attempts) == (
            JobState.DONE,
            "posted 3 comments",
            None,
            1,
        )
        assert record.finished_at is not None and record.created_at <= record.updated_at <= record.finished_at
        assert await q.state("no-such-job") is None

    run(store, body)


def test_two_instances_share_one_store_without_double_running(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        a, b = open_(), open_()
        dup = await asyncio.gather(a.enqueue(job(1, delivery="same")), b.enqueue(job(1, delivery="same")))
        assert sorted(r.outcome for r in dup) == [EnqueueOutcome.ACCEPTED, EnqueueOutcome.DUPLICATE_DELIVERY]
        for n in range(2, 9):
            for sha in "ab":
                await (a if sha == "a" else b).enqueue(job(n, sha))
        running: set[str] = set()
        ran: list[str] = []

        async def worker(q: ReviewQueue) -> None:
            idle = 0
            while idle < 5:
                got = await q.claim(f"w{id(q)}", LEASE)
                if got is None:
                    idle += 1
                    await asyncio.sleep(0.02)
                    continue
                idle = 0
                assert got.job.pr_key not in running, "two jobs of one PR ran at once"
                running.add(got.job.pr_key)
                ran.append(got.id)
                await asyncio.sleep(0.01)
                running.discard(got.job.pr_key)
                await q.complete(got, "posted")

        await asyncio.gather(worker(a), worker(b), worker(a), worker(b))
        assert len(ran) == len(set(ran)) == 8  # PR 1 once, PRs 2..8 once each (head b replaced a)
        assert set(await states(a)) == {JobState.DONE, JobState.SUPERSEDED}

    run(store, body)


def test_two_instances_in_two_threads_claim_each_job_once(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        for n in range(20):
            await q.enqueue(job(n))

    run(store, body)

    def drain() -> list[str]:
        async def main() -> list[str]:
            q = store()
            ids: list[str] = []
            try:
                while (got := await q.claim("w", LEASE)) is not None:
                    ids.append(got.id)
                    await q.complete(got, "posted")
            finally:
                await q.close()
            return ids

        return asyncio.run(main())

    async def both() -> tuple[list[str], list[str]]:
        return await asyncio.gather(asyncio.to_thread(drain), asyncio.to_thread(drain))

    left, right = asyncio.run(both())
    assert len(left) + len(right) == len(set(left) | set(right)) == 20


def test_open_queue_urls(tmp_path: Path) -> None:
    async def main() -> None:
        q = open_store(f"sqlite:///{tmp_path}/q.db", tmp_path)
        assert isinstance(q.queue, SQLiteQueue)
        await q.close()
        assert (tmp_path / "q.db").exists()
        pg = open_store("postgresql://postgres@127.0.0.1:5432/test", tmp_path)
        assert isinstance(pg.queue, PostgresQueue)
        await pg.close()

    asyncio.run(main())
    for bad in ("mysql://x/y", "sqlite://", "queue.db"):
        with pytest.raises(ValueError):
            open_store(bad, tmp_path)


def test_sqlite_group_commit_one_failing_operation_fails_only_its_caller(tmp_path: Path) -> None:
    async def main() -> None:
        q = SQLiteQueue(tmp_path / "queue.db")

        def broken(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO review_jobs (id) VALUES ('x')")  # violates NOT NULL

        def busy(conn: sqlite3.Connection) -> None:
            time.sleep(0.1)  # holds the writer so that everything below queues up into ONE batch

        try:
            results = await asyncio.gather(
                q._submit(busy),
                *(q.enqueue(job(n)) for n in range(5)),
                q._submit(broken),
                return_exceptions=True,
            )
            results = results[1:]
            assert isinstance(results[-1], sqlite3.IntegrityError)
            assert [getattr(r, "outcome", None) for r in results[:5]] == [EnqueueOutcome.ACCEPTED] * 5
            assert await states(q) == [JobState.PENDING] * 5
        finally:
            await q.close()

    asyncio.run(main())


def test_sqlite_survives_reopen_with_jobs_intact(tmp_path: Path) -> None:
    async def main() -> None:
        q = SQLiteQueue(tmp_path / "queue.db")
        await q.enqueue(job(1, delivery="d-1"))
        await q.close()
        q = SQLiteQueue(tmp_path / "queue.db")
        try:
            assert (await q.enqueue(job(2, delivery="d-1"))).outcome is EnqueueOutcome.DUPLICATE_DELIVERY
            assert await states(q) == [JobState.PENDING]
        finally:
            await q.close()

    asyncio.run(main())


def test_sqlite_wal_is_checkpointed_off_the_hot_path_when_idle(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"

    async def main() -> None:
        q = SQLiteQueue(db, checkpoint_idle=0.4)
        try:
            await q.enqueue(job(0))
            await asyncio.sleep(0.6)
            before = db.stat().st_size
            # wal_autocheckpoint=0: while enqueues keep coming, the main file is not written ...
            await asyncio.gather(*(q.enqueue(job(n)) for n in range(1, 300)))
            assert db.stat().st_size == before
            # ... and once the writer is idle, a checkpoint moves the pages into it.
            await asyncio.sleep(0.6)
            assert db.stat().st_size > before
        finally:
            await q.close()

    asyncio.run(main())


def test_depth_counts_pending_and_running_by_lane_kind(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        assert await q.depth() == {}
        await q.enqueue(job(1, "a"))
        await q.enqueue(job(2, "a"))
        await q.enqueue(job(3, trigger="command", comment=5))
        claimed = await q.claim("w", LEASE)
        assert claimed is not None
        depth = await q.depth()
        assert (
            sum(depth.values()) == 3
            and depth[("running", "automatic" if claimed.job.pr.number < 3 else "command")] == 1
        )
        assert depth.get(("pending", "command"), 0) + depth.get(("running", "command"), 0) == 1
        await q.complete(claimed, "posted")
        assert sum((await q.depth()).values()) == 2  # done jobs are history, not depth

    run(store, body)


def test_concurrent_enqueues_group_committed_each_answered_for_itself(store: Opener) -> None:
    async def body(open_: Opener) -> None:
        q = open_()
        await q.enqueue(job(999))  # the store is ready: the burst below lands in shared batches
        burst = [job(n, delivery=f"burst-{n}") for n in range(1, 121)]
        burst += [
            job(500, delivery="burst-7"),
            job(501, "b", delivery="same"),
            job(502, "c", delivery="same"),
        ]
        results = await asyncio.gather(*(q.enqueue(j) for j in burst))
        outcomes = [r.outcome.value for r in results]
        # concurrent calls have no order: of two that share a delivery id, exactly one is queued
        shared = [outcomes[6], outcomes[120]]
        assert sorted(shared) == sorted(outcomes[121:]) == ["accepted", "duplicate_delivery"]
        assert outcomes[:6] + outcomes[7:120] == ["accepted"] * 119
        assert len({r.job_id for r in results if r.created}) == 121
        assert len(await q.jobs()) == 122

    run(store, body)
