"""The scale-out queue: the same two tables as the SQLite queue, in Postgres, over psycopg 3 async.

Its schema is the store's (``bot.store.migrations``); its connections come from the store's pool.

Why not procrastinate's job table: its ``queueing_lock`` keeps one *pending* job per key but rejects
the newcomer, where we must REPLACE the pending job of a lane with the newer head (keeping its debounce),
coalesce a command into it, and dead-letter on the semantic key; its ``lock`` serialises running jobs
but has no lease token, so a worker whose job was taken over could still finish it. Those rules,
plus the delivery-dedupe table, would be extra SQL around procrastinate's own schema, migrations and
worker — more code than the ~20 statements here, which mirror ``sqlite_queue.py`` one to one so both
backends pass the same contract suite (tests/test_queue_contract.py). Any number of
``backend-review worker`` processes on any machines share one database.

Concurrency: every write to one PR's pending slot (``enqueue``, ``retry``) first takes a transaction
advisory lock on the PR key, so two deliveries for one PR serialise. ``claim`` takes one global
advisory lock (claims are rare next to enqueues: one per review) so the per-installation count is
exact, and selects with ``FOR UPDATE SKIP LOCKED`` so it never waits on a pending row an enqueue is
replacing. Partial unique indexes (one ``pending`` row per PR and lane, one ``running`` row per PR)
back both up.
Times are the database's clock (epoch seconds), so workers on machines with skewed clocks agree.
``enqueue`` is one call of the ``br_enqueue`` PL/pgSQL function. Concurrent enqueues are group
committed: they queue up while the previous batch commits, then go out pipelined in one transaction
(ordered by PR key, so batches from several receivers take the per-PR locks in one order), so a burst
pays one round trip and one WAL flush per batch instead of one per delivery. Each caller is answered
only after its batch committed; if the batch fails, each of its enqueues runs again alone, so one bad
call fails only its own caller.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from bot.models import ReviewJob
from bot.queue.base import (
    DELIVERY_RETENTION_SECONDS,
    DEPTH_SQL,
    RECORD_COLUMNS,
    ClaimedJob,
    EnqueueOutcome,
    EnqueueResult,
    JobRecord,
    JobState,
    claimed_job,
    job_record,
    job_to_json,
    lane,
    semantic_key,
)
from bot.store.postgres import ADVISORY_LOCK, PgPool

_CLAIM = """
SELECT id, job, attempts FROM review_jobs AS j
WHERE ((j.state = 'pending' AND j.run_after <= %(now)s
        AND NOT EXISTS (SELECT 1 FROM review_jobs AS r WHERE r.pr_key = j.pr_key AND r.state = 'running'))
    OR (j.state = 'running' AND j.lease_expires <= %(now)s))
  AND (%(limit)s::int IS NULL OR (SELECT count(*) FROM review_jobs AS r
        WHERE r.state = 'running' AND r.lease_expires > %(now)s
          AND r.installation_id IS NOT DISTINCT FROM j.installation_id AND r.id != j.id) < %(limit)s::int)
ORDER BY j.queued_at, j.seq
LIMIT 1
FOR UPDATE OF j SKIP LOCKED
"""


class PostgresQueue:
    """A :class:`~bot.queue.base.ReviewQueue` in Postgres, for several worker processes."""

    def __init__(
        self, source: str | PgPool, *, schema: str | None = None, min_size: int = 1, max_size: int = 16
    ) -> None:
        """On the store's shared pool, or (given a DSN) on a pool of its own that ``close`` closes."""
        self._owns_pool = not isinstance(source, PgPool)
        self._pool = (
            source
            if isinstance(source, PgPool)
            else PgPool(source, schema=schema, min_size=min_size, max_size=max_size)
        )
        self._closed = False
        self._batch: list[tuple[tuple[Any, ...], asyncio.Future[EnqueueResult]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def _ready(self) -> AsyncConnectionPool:
        if self._closed:
            raise RuntimeError("queue is closed")
        return await self._pool.get()

    async def enqueue(self, job: ReviewJob, *, delay_seconds: float = 0.0) -> EnqueueResult:
        await self._ready()
        args = (
            uuid.uuid4().hex,
            job.pr_key,
            lane(job),
            semantic_key(job),
            job.pr.installation_id,
            job.head_sha,
            job_to_json(job),
            job.full,
            job.delivery_id,
            float(delay_seconds),
            job.before_sha,
        )
        future: asyncio.Future[EnqueueResult] = asyncio.get_running_loop().create_future()
        self._batch.append((args, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Commit queued enqueues batch after batch until none are left (the group commit)."""
        pool = await self._ready()
        while self._batch:
            batch, self._batch = self._batch[:_MAX_BATCH], self._batch[_MAX_BATCH:]
            batch.sort(key=lambda item: item[0][1])  # pr_key: one lock order for every batch
            try:
                async with pool.connection() as conn, conn.transaction():
                    async with conn.pipeline():
                        cursors = [await conn.execute(_ENQUEUE, args) for args, _ in batch]
                    rows = [await cur.fetchone() for cur in cursors]
            except Exception:  # one enqueue failed (or the batch did): each runs alone, failing only itself
                await asyncio.gather(*(self._enqueue_alone(pool, args, fut) for args, fut in batch))
                continue
            except BaseException as exc:  # cancelled (shutdown): nobody may wait forever
                for _, fut in batch + self._batch:
                    _fail(fut, exc if not isinstance(exc, asyncio.CancelledError) else RuntimeError("closed"))
                raise
            for (_, fut), row in zip(batch, rows, strict=True):
                if not fut.done():
                    assert row is not None  # br_enqueue always returns one row
                    fut.set_result(EnqueueResult(EnqueueOutcome(row[0]), row[1]))

    async def _enqueue_alone(
        self, pool: AsyncConnectionPool, args: tuple[Any, ...], fut: asyncio.Future[EnqueueResult]
    ) -> None:
        try:
            async with pool.connection() as conn:
                cur = await conn.execute(_ENQUEUE, args)
                row = await cur.fetchone()
            assert row is not None  # br_enqueue always returns one row
            result = EnqueueResult(EnqueueOutcome(row[0]), row[1])
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name != "review_deliveries_pkey":
                _fail(fut, exc)
                return
            # The same delivery id raced in for another PR and committed first; nothing was recorded.
            result = EnqueueResult(EnqueueOutcome.DUPLICATE_DELIVERY)
        except BaseException as exc:
            _fail(fut, exc)
            if not isinstance(exc, Exception):
                raise
            return
        if not fut.done():
            fut.set_result(result)

    async def claim(
        self, worker_id: str, lease_seconds: float, *, max_running_per_installation: int | None = None
    ) -> ClaimedJob | None:
        pool = await self._ready()
        token = uuid.uuid4().hex
        async with pool.connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT br_now() FROM pg_advisory_xact_lock(%s)", (ADVISORY_LOCK,))
            now = (await cur.fetchone() or (0.0,))[0]
            cur = await conn.execute(_CLAIM, {"now": now, "limit": max_running_per_installation})
            row = await cur.fetchone()
            if row is None:
                return None
            await conn.execute(
                "UPDATE review_jobs SET state = 'running', lease_token = %s, lease_expires = %s, "
                "worker_id = %s, attempts = attempts + 1, updated_at = %s WHERE id = %s",
                (token, now + lease_seconds, worker_id, now, row[0]),
            )
        return claimed_job(row, token)

    async def _owned(
        self, conn: psycopg.AsyncConnection[Any], claimed: ClaimedJob, sets: str, args: tuple[Any, ...]
    ) -> bool:
        cur = await conn.execute(
            f"UPDATE review_jobs SET {sets} WHERE id = %s AND lease_token = %s AND state = 'running'",  # noqa: S608
            (*args, claimed.id, claimed.lease_token),
        )
        return cur.rowcount == 1

    async def heartbeat(self, claimed: ClaimedJob, lease_seconds: float) -> bool:
        pool = await self._ready()
        async with pool.connection() as conn, conn.transaction():
            return await self._owned(
                conn,
                claimed,
                "lease_expires = br_now() + %s, updated_at = br_now()",
                (lease_seconds,),
            )

    async def complete(self, claimed: ClaimedJob, outcome: str) -> None:
        await self._finish(claimed, JobState.DONE, outcome, None)

    async def fail(self, claimed: ClaimedJob, error: str) -> None:
        await self._finish(claimed, JobState.FAILED, "failed", error)

    async def _finish(self, claimed: ClaimedJob, state: JobState, outcome: str, error: str | None) -> None:
        # A success keeps the error of the last failed attempt on record.

        pool = await self._ready()
        async with pool.connection() as conn, conn.transaction():
            await self._owned(
                conn,
                claimed,
                "state = %s, outcome = %s, error = COALESCE(%s, error), lease_token = NULL, "
                "lease_expires = NULL, updated_at = br_now(), finished_at = br_now()",
                (state.value, outcome, error),
            )

    async def retry(self, claimed: ClaimedJob, error: str, delay_seconds: float) -> None:
        pool = await self._ready()
        async with pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT j.id FROM pg_advisory_xact_lock(hashtextextended(%s, 0)) "
                "LEFT JOIN review_jobs AS j ON j.pr_key = %s AND j.lane = %s AND j.state = 'pending'",
                (claimed.job.pr_key, claimed.job.pr_key, lane(claimed.job)),
            )
            newer = await cur.fetchone()
            if newer is not None and newer[0] is not None:  # a newer event of its lane does the work
                await self._owned(
                    conn,
                    claimed,
                    "state = 'superseded', outcome = %s, error = %s, lease_token = NULL, "
                    "lease_expires = NULL, updated_at = br_now(), finished_at = br_now()",
                    (f"replaced by {newer[0]}", error),
                )
                return
            await self._owned(
                conn,
                claimed,
                "state = 'pending', error = %s, run_after = br_now() + %s, lease_token = NULL, "
                "lease_expires = NULL, worker_id = NULL, updated_at = br_now()",
                (error, max(0.0, delay_seconds)),
            )

    async def state(self, job_id: str) -> JobState | None:
        pool = await self._ready()
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT state FROM review_jobs WHERE id = %s", (job_id,))
            row = await cur.fetchone()
        return None if row is None else JobState(row[0])

    async def depth(self) -> dict[tuple[str, str], int]:
        pool = await self._ready()
        async with pool.connection() as conn:
            cur = await conn.execute(DEPTH_SQL)
            rows = await cur.fetchall()
        return {(str(state), str(kind)): int(n) for state, kind, n in rows}

    async def jobs(self, pr_key: str | None = None) -> list[JobRecord]:
        pool = await self._ready()
        sql = f"SELECT {RECORD_COLUMNS} FROM review_jobs"  # noqa: S608
        async with pool.connection() as conn:
            if pr_key is None:
                cur = await conn.execute(sql + " ORDER BY seq")
            else:
                cur = await conn.execute(sql + " WHERE pr_key = %s ORDER BY seq", (pr_key,))
            rows = await cur.fetchall()
        return [job_record(r) for r in rows]

    async def prune(self, older_than_seconds: float = DELIVERY_RETENTION_SECONDS) -> int:
        pool = await self._ready()
        async with pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "DELETE FROM review_deliveries WHERE received_at <= br_now() - %s", (older_than_seconds,)
            )
            return cur.rowcount

    async def close(self) -> None:
        self._closed = True
        if self._owns_pool:
            await self._pool.close()


_ENQUEUE = "SELECT r_outcome, r_job_id FROM br_enqueue(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
_MAX_BATCH = 256


def _fail(fut: asyncio.Future[EnqueueResult], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


__all__ = ["PostgresQueue"]
