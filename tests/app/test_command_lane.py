"""Command lane (C-01, C-06, C-07) and debounce without starvation (D-03) on the queue, end to end from
the receiver's routing decision, plus opening a database of the pre-lane schema."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import uuid
from pathlib import Path

import psycopg
import pytest

from bot import events
from bot.models import ReviewJob
from bot.queue.base import EnqueueOutcome, JobState, job_to_json, lane, semantic_key
from bot.store.postgres_queue import PostgresQueue
from bot.store.sqlite_queue import SQLiteQueue
from tests.support.webhooks import command_payload
from tests.test_queue_contract import PG_DSN, _pg_unreachable

LEASE = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def received_command(delivery: str, login: str, comment_id: int) -> ReviewJob:
    """The job the receiver queues for a ``/backend-review`` comment: no head, not yet authorised."""
    payload = command_payload()
    payload["comment"]["user"]["login"] = login
    payload["comment"]["id"] = comment_id
    decision = events.decide(
        "issue_comment", payload, delivery_id=delivery, app_id=1, allowed_bot_app_ids=frozenset()
    )
    assert isinstance(decision, events.Enqueue) and decision.authorize == login
    return decision.job


def push_of(command: ReviewJob, sha: str, delivery: str) -> ReviewJob:
    """A synchronize job for the same pull request."""
    return dataclasses.replace(
        command, trigger="synchronize", head_sha=sha * 40, delivery_id=delivery, comment_id=None, sender=None
    )


def test_c01_comment_from_anyone_cannot_cancel_the_pending_review(tmp_path: Path) -> None:
    async def main() -> None:
        clock = Clock()
        q = SQLiteQueue(tmp_path / "q.db", clock=clock)
        try:
            mallory = received_command("d-2", "mallory", 11)
            assert mallory.head_sha == "" and mallory.trigger == "command"
            push = await q.enqueue(push_of(mallory, "a", "d-1"), delay_seconds=30)
            queued = await q.enqueue(mallory)
            assert queued.outcome is EnqueueOutcome.ACCEPTED
            # the worker denies mallory's command (no write permission) ...
            denied = await q.claim("w", LEASE)
            assert denied is not None and denied.id == queued.job_id
            await q.complete(denied, "skipped: mallory lacks write permission")
            # ... and the push review still runs when its debounce is over
            assert await q.state(str(push.job_id)) is JobState.PENDING
            clock.now += 30
            review = await q.claim("w", LEASE)
            assert review is not None and review.id == push.job_id and review.job.head_sha == "a" * 40
        finally:
            await q.close()

    asyncio.run(main())


def test_c06_maintainer_opt_in_survives_a_push_and_a_non_writer(tmp_path: Path) -> None:
    async def main() -> None:
        q = SQLiteQueue(tmp_path / "q.db")
        try:
            command = received_command("d-1", "alice", 1)
            alice = await q.enqueue(command)
            assert (await q.enqueue(push_of(command, "b", "d-2"))).outcome is EnqueueOutcome.ACCEPTED
            mallory = await q.enqueue(received_command("d-3", "mallory", 2))
            assert mallory.outcome is EnqueueOutcome.ACCEPTED and mallory.job_id != alice.job_id
            assert [r.state for r in await q.jobs()] == [JobState.PENDING] * 3
            # a second command of alice's is still one run (C-07)
            again = await q.enqueue(received_command("d-4", "Alice", 3))
            assert again.outcome is EnqueueOutcome.COALESCED and again.job_id == alice.job_id
        finally:
            await q.close()

    asyncio.run(main())


def test_d03_pushes_every_ten_seconds_are_reviewed_thirty_seconds_after_the_first(tmp_path: Path) -> None:
    async def main() -> None:
        clock = Clock()
        start = clock.now
        q = SQLiteQueue(tmp_path / "q.db", clock=clock)
        try:
            base = received_command("c", "alice", 1)
            for n, sha in enumerate("abcd"):
                clock.now = start + 10 * n
                assert (await q.enqueue(push_of(base, sha, f"d-{n}"), delay_seconds=30)).created
                if n < 3:
                    assert await q.claim("w", LEASE) is None
            assert [r.run_after for r in await q.jobs()] == [start + 30] * 4
            clock.now = start + 30
            got = await q.claim("w", LEASE)
            assert got is not None and got.job.head_sha == "d" * 40
        finally:
            await q.close()

    asyncio.run(main())


# The pre-lane schema's jobs table and pending index, as deployed before lanes existed.
_OLD_TABLE = """
CREATE TABLE review_jobs (
    seq {seq} PRIMARY KEY, id text NOT NULL UNIQUE, pr_key text NOT NULL, sem_key text NOT NULL,
    installation_id bigint, head_sha text NOT NULL, job text NOT NULL, state text NOT NULL, outcome text,
    error text, attempts integer NOT NULL DEFAULT 0, queued_at float8 NOT NULL, created_at float8 NOT NULL,
    updated_at float8 NOT NULL, run_after float8 NOT NULL, finished_at float8, lease_token text,
    lease_expires float8, worker_id text
)"""
_OLD_INDEX = "CREATE UNIQUE INDEX review_jobs_one_pending ON review_jobs(pr_key) WHERE state = 'pending'"
_OLD_ROW = (
    "INSERT INTO review_jobs (id, pr_key, sem_key, installation_id, head_sha, job, state, queued_at, "
    "created_at, updated_at, run_after) VALUES ({p}, {p}, {p}, 1, '', {p}, 'pending', 0, 0, 0, 0)"
)


def _old_command() -> ReviewJob:
    return received_command("d-old", "Alice", 1)


async def _new_lanes_work(q: SQLiteQueue | PostgresQueue, command: ReviewJob) -> None:
    push = await q.enqueue(push_of(command, "a", "d-push"))
    assert push.outcome is EnqueueOutcome.ACCEPTED  # the old command is in alice's lane, not replaced
    again = await q.enqueue(received_command("d-again", "alice", 2))
    assert again.outcome is EnqueueOutcome.COALESCED and again.job_id == "old"
    other = await q.enqueue(received_command("d-bob", "bob", 3))
    assert other.outcome is EnqueueOutcome.ACCEPTED
    assert [r.state for r in await q.jobs()] == [JobState.PENDING] * 3


def test_sqlite_opens_a_pre_lane_database(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    command = _old_command()
    with sqlite3.connect(path) as conn:
        conn.execute(_OLD_TABLE.format(seq="INTEGER"))
        conn.execute(_OLD_INDEX)
        conn.execute(
            _OLD_ROW.format(p="?"), ("old", command.pr_key, semantic_key(command), job_to_json(command))
        )
    conn.close()

    async def main() -> None:
        q = SQLiteQueue(path)
        try:
            await _new_lanes_work(q, command)
        finally:
            await q.close()

    asyncio.run(main())
    with sqlite3.connect(path) as conn:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        (stored,) = conn.execute("SELECT lane FROM review_jobs WHERE id = 'old'").fetchone()
    conn.close()
    assert "review_jobs_one_pending" not in indexes and "review_jobs_one_pending_per_lane" in indexes
    assert stored == lane(command) == "command:alice"

    async def reopen() -> None:  # the migrated file opens as it is
        q = SQLiteQueue(path)
        try:
            assert len(await q.jobs()) == 3
        finally:
            await q.close()

    asyncio.run(reopen())


@pytest.mark.postgres
def test_postgres_opens_a_pre_lane_database() -> None:
    reason = _pg_unreachable()
    if reason:
        pytest.skip(reason)
    schema = f"br_test_{uuid.uuid4().hex}"
    command = _old_command()
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path = {schema}")
        conn.execute(_OLD_TABLE.format(seq="bigserial"))
        conn.execute(_OLD_INDEX)
        conn.execute(
            _OLD_ROW.format(p="%s"), ("old", command.pr_key, semantic_key(command), job_to_json(command))
        )

    async def main() -> None:
        q = PostgresQueue(PG_DSN, schema=schema, min_size=1, max_size=2)
        try:
            await _new_lanes_work(q, command)
        finally:
            await q.close()
        q = PostgresQueue(PG_DSN, schema=schema, min_size=1, max_size=2)  # the migrated schema opens as it is
        try:
            assert len(await q.jobs()) == 3
        finally:
            await q.close()

    try:
        asyncio.run(main())
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'review_jobs'",
                (schema,),
            ).fetchall()
            indexes = {r[0] for r in rows}
            lane_row = conn.execute(f"SELECT lane FROM {schema}.review_jobs WHERE id = 'old'").fetchone()
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    assert "review_jobs_one_pending" not in indexes and "review_jobs_one_pending_per_lane" in indexes
    assert lane_row == ("command:alice",)
