"""The worker loop: N slots that claim jobs from a ReviewQueue and run an injected handler.

Per claimed job: a heartbeat task renews the lease every ``lease_seconds / 3``; the handler's return
value is the recorded outcome. Errors map onto the queue (D-05):

- :class:`~bot.errors.Superseded` → complete with outcome ``"superseded"`` (the head moved on); when
  the head it moved to still wants a review (``live_head``), a job for that head is queued first;
- :class:`~bot.errors.Retryable` → retry after :func:`~bot.backoff.backoff_delay` (honouring its
  ``retry_after``), or once ``max_attempts`` attempts were made, fail and call ``on_dead``;
- :class:`~bot.errors.Permanent` → fail and call ``on_dead`` (the pipeline posts a visible failure);
- anything else is a bug: logged with its traceback and treated as retryable; the worker lives on.

A lost lease (heartbeat answers False: another worker took the job over) cancels the handler, and the
job is left alone. A job claimed more than ``max_attempts`` times (its workers keep dying, e.g. OOM)
is failed without running it again.

The per-installation concurrency limit (D-04) is enforced by the queue's ``claim`` (its
``max_running_per_installation``), so it holds across every worker process sharing the queue.

Shutdown (``stop`` set): slots stop claiming; running jobs get ``grace_seconds`` to finish, then are
cancelled (with the message :data:`SHUTDOWN`, so a handler can close what it opened) without touching
the queue — their leases expire and another worker retries them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import socket
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bot import metrics
from bot.backoff import backoff_delay
from bot.errors import Permanent, Retryable, Superseded, UnreadableJob
from bot.log import bind, get_logger
from bot.models import JobPlan
from bot.queue.base import ClaimedJob, ReviewQueue

JobHandler = Callable[[ClaimedJob], Coroutine[Any, Any, str]]
"""Runs one claimed job; returns the outcome text recorded with it (e.g. ``"posted 3 comments"``)."""

DeadHook = Callable[[ClaimedJob, BaseException], Awaitable[None]]
"""Called once when a job is failed for good, with the error that killed it."""

log = get_logger("bot.worker")

SHUTDOWN = "shutdown"
"""The cancel message of a job cut off by the drain grace (a lost lease cancels without one)."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    concurrency: int = 4  # slots: jobs this process runs at once
    lease_seconds: float = 60.0
    max_attempts: int = 3  # D-05
    max_running_per_installation: int | None = 2  # D-04; None = unlimited
    idle_poll_seconds: float = 0.5  # claim poll when idle; notify() wakes the slots earlier
    grace_seconds: float = 30.0
    backoff_base: float = 2.0
    backoff_cap: float = 300.0
    prune_interval_seconds: float = 3600.0  # how often delivery ids past retention are forgotten


def _describe(claimed: ClaimedJob) -> str:
    job = claimed.job
    return f"{job.pr.owner}/{job.pr.repo}#{job.pr.number}@{job.head_sha[:7]}"


class Worker:
    def __init__(
        self,
        queue: ReviewQueue,
        handler: JobHandler,
        *,
        on_dead: DeadHook | None = None,
        config: WorkerConfig | None = None,
        worker_id: str | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self._queue = queue
        self._handler = handler
        self._on_dead = on_dead
        self._config = config or WorkerConfig()
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._rand = rand or random.random
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_prune = float("-inf")

    def notify(self) -> None:
        """Wake idle slots now (call from the event loop thread after enqueueing in this process)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then drain gracefully (see the module docstring)."""
        self._stopping = False
        slots = [
            asyncio.create_task(self._slot(stop), name=f"worker-slot-{n}")
            for n in range(self._config.concurrency)
        ]
        log.info("worker started", worker=self.worker_id, slots=self._config.concurrency)
        try:
            await stop.wait()
        finally:
            self._stopping = True
            self._wake.set()
            _, unfinished = await asyncio.wait(slots, timeout=self._config.grace_seconds)
            for task in unfinished:
                task.cancel(SHUTDOWN)  # reaches the handler, which closes its check run (not on a lost lease)
            await asyncio.gather(*slots, return_exceptions=True)
            log.info("worker stopped", worker=self.worker_id, cancelled=len(unfinished))

    async def _slot(self, stop: asyncio.Event) -> None:
        while not (self._stopping or stop.is_set()):
            try:
                await self._maybe_prune()
                claimed = await self._queue.claim(
                    self.worker_id,
                    self._config.lease_seconds,
                    max_running_per_installation=self._config.max_running_per_installation,
                )
            except Exception:
                log.error("claim failed", exc_info=True, traceback=traceback.format_exc())
                claimed = None
            if claimed is None:
                await self._idle()
                continue
            try:
                await self._process(claimed)
            except Exception:  # the store failed mid-job: the lease expires and the job is retried
                log.error("job bookkeeping failed", exc_info=True, traceback=traceback.format_exc())

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._config.idle_poll_seconds)
        if not self._stopping:
            self._wake.clear()

    async def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune >= self._config.prune_interval_seconds:
            self._last_prune = now
            removed = await self._queue.prune()
            if removed:
                log.info("deliveries pruned", removed=removed)

    async def _process(self, claimed: ClaimedJob) -> None:
        with bind(job=claimed.id, delivery=claimed.job.delivery_id, pr=_describe(claimed)):
            log.info("job claimed", attempt=claimed.attempt, trigger=claimed.job.trigger)
            if claimed.attempt > self._config.max_attempts:
                # Its earlier workers died holding it: running it again would likely kill this one too.
                await self._dead(claimed, Permanent(f"abandoned by {claimed.attempt - 1} workers"))
                return
            if claimed.unreadable is not None:  # a newer release queued it: its plan is never guessed
                await self._dead(claimed, UnreadableJob(claimed.unreadable))
                return
            started = time.monotonic()
            task = asyncio.create_task(self._handler(claimed))
            lease_lost = asyncio.Event()
            heartbeat = asyncio.create_task(self._heartbeat(claimed, task, lease_lost))
            try:
                outcome = await task
            except asyncio.CancelledError:
                if not lease_lost.is_set():
                    raise  # shutdown: leave the job to expire and be retried elsewhere
                log.warning("lease lost; job abandoned")
            except Superseded as exc:
                log.info("job superseded", reason=str(exc))
                if exc.live_head:
                    await self._follow_up(claimed, exc.live_head, exc.plan)
                    await self._queue.complete(claimed, f"superseded by {exc.live_head[:7]}")
                else:
                    await self._queue.complete(claimed, "superseded")
                metrics.job_finished("superseded")
            except Retryable as exc:
                await self._retry_or_dead(claimed, exc, exc.retry_after)
            except Permanent as exc:
                await self._dead(claimed, exc)
            except Exception as exc:
                log.error("handler crashed", exc_info=True, traceback=traceback.format_exc())
                await self._retry_or_dead(claimed, exc, None)
            else:
                log.info("job done", outcome=outcome, seconds=round(time.monotonic() - started, 3))
                await self._queue.complete(claimed, outcome)
                metrics.job_finished("done")
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat

    async def _follow_up(self, claimed: ClaimedJob, live_head: str, plan: JobPlan | None = None) -> None:
        """Make sure the head a superseded job found gets a job of its own: its delivery may be lost,
        or it came before an older one (GitHub guarantees no order). Queued before this job completes,
        under a delivery id derived from this job, so a crash in between cannot lose it or double it;
        the queue's rules merge it into a job already pending, running or done for that head, and
        refuse it if a newer head is known (STALE). It is planned as ``plan`` (the handler's plan for a
        push of the live head), else as the job it follows: either way a fork PR's follow-up still needs
        its author's permission or a maintainer (C-06), as the job it follows did."""
        job = claimed.job
        follow = dataclasses.replace(
            job,
            head_sha=live_head,
            trigger="synchronize",
            delivery_id=f"{claimed.id}:live-head",
            base_sha=None,
            before_sha=job.head_sha or None,
            full=False,
            comment_id=None,
            check_run_id=None,
            plan=job.plan if plan is None else plan,
        )
        result = await self._queue.enqueue(follow)
        log.info("live head queued", head=live_head[:7], outcome=result.outcome.value, job_id=result.job_id)
        if result.created:
            self._wake.set()

    async def _heartbeat(
        self, claimed: ClaimedJob, task: asyncio.Task[str], lease_lost: asyncio.Event
    ) -> None:
        interval = self._config.lease_seconds / 3
        while not task.done():
            await asyncio.sleep(interval)
            try:
                kept = await self._queue.heartbeat(claimed, self._config.lease_seconds)
            except Exception:  # a transient store error: the lease still has two intervals left
                log.error("heartbeat failed", exc_info=True)
                continue
            if not kept:
                lease_lost.set()
                task.cancel()
                return

    async def _retry_or_dead(
        self, claimed: ClaimedJob, error: BaseException, retry_after: float | None
    ) -> None:
        if claimed.attempt >= self._config.max_attempts:
            await self._dead(claimed, error)
            return
        delay = backoff_delay(
            claimed.attempt,
            base=self._config.backoff_base,
            cap=self._config.backoff_cap,
            retry_after=retry_after,
            rand=self._rand,
        )
        log.warning("job retry", attempt=claimed.attempt, delay=round(delay, 3), error=_error_text(error))
        await self._queue.retry(claimed, _error_text(error), delay)
        metrics.job_finished("retry")

    async def _dead(self, claimed: ClaimedJob, error: BaseException) -> None:
        log.error("job failed", attempt=claimed.attempt, error=_error_text(error))
        await self._queue.fail(claimed, _error_text(error))
        metrics.job_finished("dead")
        if self._on_dead is not None:
            try:
                await self._on_dead(claimed, error)
            except Exception:
                log.error("on_dead hook failed", exc_info=True, traceback=traceback.format_exc())


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


__all__ = ["SHUTDOWN", "DeadHook", "JobHandler", "Worker", "WorkerConfig"]
