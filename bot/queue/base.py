"""The ReviewQueue contract every backend (SQLite embedded, Postgres scale-out) implements.

Semantics (DESIGN.md "Queue semantics"): at-least-once. A delivery id is accepted once. Per pull
request (``ReviewJob.pr_key``) at most one job running and at most one pending; enqueueing a newer
head replaces the pending job. A claimed job holds a lease; a worker that dies loses its lease and
the job is claimed again. Failed attempts back off exponentially, honouring ``retry_after``; after
``max_attempts`` the job is dead and its failure is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bot.models import ReviewJob


class EnqueueOutcome(StrEnum):
    ACCEPTED = "accepted"  # a new pending job
    REPLACED = "replaced"  # a newer head replaced the pending job of the same PR
    DUPLICATE_DELIVERY = "duplicate_delivery"  # the X-GitHub-Delivery id was seen before
    DUPLICATE_KEY = "duplicate_key"  # same PR, head and trigger comment already queued/running/done
    DEAD_LETTERED = "dead_lettered"  # the same semantic key already failed for good (D-05)


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    outcome: EnqueueOutcome
    job_id: str | None = None

    @property
    def created(self) -> bool:
        return self.outcome in (EnqueueOutcome.ACCEPTED, EnqueueOutcome.REPLACED)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: str
    job: ReviewJob
    attempt: int  # 1 on the first claim
    lease_token: str  # proves ownership to complete/fail/heartbeat


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # dead: attempts exhausted or a permanent error
    SUPERSEDED = "superseded"  # replaced by a newer head before it ran


class ReviewQueue(Protocol):
    async def enqueue(self, job: ReviewJob) -> EnqueueResult: ...

    async def claim(self, worker_id: str, lease_seconds: float) -> ClaimedJob | None:
        """Take the oldest runnable job whose PR has nothing running, or None."""
        ...

    async def heartbeat(self, claimed: ClaimedJob, lease_seconds: float) -> bool:
        """Extend the lease; False when the lease was lost (the job must stop without posting)."""
        ...

    async def complete(self, claimed: ClaimedJob, outcome: str) -> None: ...

    async def retry(self, claimed: ClaimedJob, error: str, delay_seconds: float) -> None:
        """Put the job back as pending, runnable after ``delay_seconds``."""
        ...

    async def fail(self, claimed: ClaimedJob, error: str) -> None:
        """Mark the job dead; a redelivery of the same semantic key does not re-queue it."""
        ...

    async def state(self, job_id: str) -> JobState | None: ...

    async def close(self) -> None: ...
