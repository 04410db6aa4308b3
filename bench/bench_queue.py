"""Enqueue throughput and latency of the durable queues (the webhook path's share of each ack).

Run: ``.venv/bin/python -m bench.bench_queue`` (``BR_BENCH_JOBS`` enqueues per run, default 8000).
Each enqueuer is one coroutine that enqueues distinct PRs with distinct delivery ids back to back,
as concurrent webhook requests would; latency is per ``enqueue`` call, from the call to its durable
commit. The Postgres rows need the server on 127.0.0.1:5432 (``BR_BENCH_POSTGRES`` overrides the
DSN) and are skipped if unreachable.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from bot.models import PullRequestRef, ReviewJob
from bot.queue.base import ReviewQueue
from bot.store.postgres_queue import PostgresQueue
from bot.store.sqlite_queue import SQLiteQueue

PG_DSN = os.environ.get("BR_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _job(n: int) -> ReviewJob:
    return ReviewJob(
        pr=PullRequestRef("octo", "bench", n, installation_id=1 + n % 50, repo_id=n),
        head_sha=f"{n:040x}",
        trigger="synchronize",
        delivery_id=str(uuid.uuid4()),
    )


async def _measure(q: ReviewQueue, jobs: int, enqueuers: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(jobs))

    async def enqueuer() -> None:
        for n in counter:
            started = time.perf_counter()
            await q.enqueue(_job(n))
            latencies.append(time.perf_counter() - started)

    await q.enqueue(_job(-1))  # warm up: schema, pool, thread
    started = time.perf_counter()
    await asyncio.gather(*(enqueuer() for _ in range(enqueuers)))
    return time.perf_counter() - started, latencies


def _report(name: str, enqueuers: int, elapsed: float, latencies: list[float]) -> None:
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100)
    print(
        f"{name:<9} {enqueuers:>3} enqueuers  {len(ms) / elapsed:>8,.0f} enqueues/s  "
        f"p50 {q[49]:6.2f} ms  p99 {q[98]:6.2f} ms  max {ms[-1]:6.2f} ms"
    )


async def _sqlite(jobs: int, enqueuers: int, *, max_batch: int = 512) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        q = SQLiteQueue(Path(tmp) / "queue.db", max_batch=max_batch)
        try:
            elapsed, latencies = await _measure(q, jobs, enqueuers)
        finally:
            await q.close()
    _report("sqlite" if max_batch > 1 else "sqlite/1", enqueuers, elapsed, latencies)


async def _postgres(jobs: int, enqueuers: int) -> None:
    schema = f"br_bench_{uuid.uuid4().hex}"
    async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as conn:
        await conn.execute(f"CREATE SCHEMA {schema}")
    try:
        q = PostgresQueue(PG_DSN, schema=schema, min_size=enqueuers, max_size=enqueuers)
        try:
            elapsed, latencies = await _measure(q, jobs, enqueuers)
        finally:
            await q.close()
    finally:
        async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as conn:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    _report("postgres", enqueuers, elapsed, latencies)


def _postgres_reachable() -> bool:
    try:
        psycopg.connect(PG_DSN, connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


def main() -> None:
    jobs = int(os.environ.get("BR_BENCH_JOBS", "8000"))
    for enqueuers in (16, 64):
        asyncio.run(_sqlite(jobs, enqueuers))
    # The same queue with group commit off (one commit per enqueue), for comparison in the same run.
    asyncio.run(_sqlite(jobs, 16, max_batch=1))
    if not _postgres_reachable():
        print(f"postgres  skipped: {PG_DSN} unreachable")
        return
    for enqueuers in (16, 64):
        asyncio.run(_postgres(jobs // 2, enqueuers))


if __name__ == "__main__":
    main()
