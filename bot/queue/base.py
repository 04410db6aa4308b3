"""The ReviewQueue contract every backend (SQLite embedded, Postgres scale-out) implements.

Semantics (DESIGN.md "Queue semantics"): at-least-once. A delivery id is accepted once. Per pull
request (``ReviewJob.pr_key``) at most one job RUNNING, whatever its lane. Pending jobs wait in
LANES (:func:`lane`), at most one pending job per (PR, lane):

- ``auto``: everything GitHub triggers by itself (opened, reopened, ready_for_review, synchronize);
- ``command:<sender>``: ``/backend-review`` commands and "Re-run review" clicks (``trigger`` in
  :data:`COMMAND_TRIGGERS`), one lane per sender login.

Why lanes: commands are queued BEFORE their sender's live permission is checked (the worker does that,
C-01), so whoever can comment can queue one. Sharing one pending slot let a user without write access
supersede the PR's pending automatic review (the worker then denies the command: nothing is reviewed),
or swallow a maintainer's command; and a push superseded a maintainer's pending command (on a fork PR
that is the opt-in, C-06). Replacement and coalescing therefore happen only inside a lane, and a
command lane holds one sender's commands only. C-07 still holds per sender: a flood of commands from
one user is one run plus at most one queued.

A claimed job holds a lease; a worker that dies loses its lease and the job is claimed again. Failed
attempts back off exponentially, honouring ``retry_after``; after ``max_attempts`` the job is dead and
its failure is reported.

The rules, in the order ``enqueue`` applies them (one transaction):

1. The ``X-GitHub-Delivery`` id was recorded before → ``DUPLICATE_DELIVERY`` (W-04). Ids are recorded
   only when the call queues work (``ACCEPTED``/``REPLACED``/``COALESCED``), in the same transaction,
   and kept for :data:`DELIVERY_RETENTION_SECONDS` (``prune``).
2. A job with the same :func:`semantic_key` (installation, repo, PR, head SHA and the trigger: the
   command comment's id, else the event and the clicked check run) is pending, running or done →
   ``DUPLICATE_KEY``; it failed for good → ``DEAD_LETTERED`` (D-05: a redelivery never re-queues a job
   that exhausted its attempts).
3. The job's lane of that PR has a pending job for the same head → ``COALESCED`` into it (C-07: a
   flood of commands is one run plus at most one queued; ``full=True`` is merged in).
4. The job's lane of that PR has a pending job for another head → that job becomes ``SUPERSEDED`` and
   the new one takes its place in line (``REPLACED``). It becomes runnable at the EARLIER of the
   replaced job's ``run_after`` and now + ``delay_seconds``: a push storm is debounced into its newest
   head (D-03), yet the window runs from the burst's first push, so a PR pushed more often than the
   delay is still reviewed.
5. Otherwise → ``ACCEPTED`` (a job pending in another lane is left alone).

``claim`` takes the oldest runnable job (pending with ``run_after`` reached, or running with an
expired lease) whose PR has no other job running, optionally keeping at most
``max_running_per_installation`` live leases per installation (D-04). Every later call on the
claimed job (``heartbeat``/``complete``/``retry``/``fail``) acts only while the lease token matches, so
a worker whose lease was taken over cannot overwrite the new owner's work. ``retry`` of a job whose
lane meanwhile got a pending job supersedes it instead (the pending job reviews a newer state).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from bot.models import PullRequestRef, ReviewJob

COMMAND_TRIGGERS = frozenset({"command", "rerequested"})
"""Triggers a person asks for explicitly; they are authorised per sender in the worker, not on receipt."""

AUTO_LANE = "auto"

DELIVERY_RETENTION_SECONDS = 8 * 24 * 3600.0
"""How long delivery ids are remembered: GitHub lets a delivery be redelivered for 7 days (W-04)."""


class EnqueueOutcome(StrEnum):
    ACCEPTED = "accepted"  # a new pending job
    REPLACED = "replaced"  # a newer head replaced the pending job of the same PR and lane
    COALESCED = "coalesced"  # merged into the pending job of the same PR, lane and head (C-07)
    DUPLICATE_DELIVERY = "duplicate_delivery"  # the X-GitHub-Delivery id was seen before
    DUPLICATE_KEY = "duplicate_key"  # same PR, head and trigger comment already queued/running/done
    DEAD_LETTERED = "dead_lettered"  # the same semantic key already failed for good (D-05)


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    outcome: EnqueueOutcome
    job_id: str | None = None  # the job that will do the work (for COALESCED/DUPLICATE_KEY: the existing one)

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
    SUPERSEDED = "superseded"  # replaced by a newer head of its lane before it ran


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job's recorded history (W-04: every job's outcome is kept). Times are Unix epoch seconds."""

    id: str
    job: ReviewJob
    state: JobState
    outcome: str | None
    error: str | None
    attempts: int
    created_at: float
    updated_at: float
    run_after: float
    finished_at: float | None

    @property
    def pr_key(self) -> str:
        return self.job.pr_key


class ReviewQueue(Protocol):
    async def enqueue(self, job: ReviewJob, *, delay_seconds: float = 0.0) -> EnqueueResult:
        """Queue ``job`` (runnable after ``delay_seconds``) following the rules in the module docstring."""
        ...

    async def claim(
        self, worker_id: str, lease_seconds: float, *, max_running_per_installation: int | None = None
    ) -> ClaimedJob | None:
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

    async def jobs(self, pr_key: str | None = None) -> list[JobRecord]:
        """Every recorded job (of one PR), oldest first."""
        ...

    async def prune(self, older_than_seconds: float = DELIVERY_RETENTION_SECONDS) -> int:
        """Forget delivery ids older than ``older_than_seconds``; returns how many were removed."""
        ...

    async def depth(self) -> dict[tuple[str, str], int]:
        """Pending and running jobs by (state, lane kind ``automatic``/``command``), for metrics."""
        ...

    async def close(self) -> None: ...


def semantic_key(job: ReviewJob) -> str:
    """The W-04 idempotency key: installation, repo, PR, head SHA and what triggered it — the command
    comment's id, else the clicked check run and the event, so that a draft marked ready or a "Re-run
    review" click on an already reviewed head is new work, and only a redelivery repeats a key."""
    if job.comment_id is not None:
        return f"{job.pr_key}@{job.head_sha}:{job.comment_id}"
    run = f":run{job.check_run_id}" if job.check_run_id is not None else ""
    return f"{job.pr_key}@{job.head_sha}:-:{job.trigger}{run}"


DEPTH_SQL = (
    "SELECT state, CASE WHEN lane = 'auto' THEN 'automatic' ELSE 'command' END, count(*) "
    "FROM review_jobs WHERE state IN ('pending', 'running') GROUP BY 1, 2"
)  # 'auto' is AUTO_LANE


def lane(job: ReviewJob) -> str:
    """The pending lane of ``job`` within its PR: ``auto``, or ``command:<sender login>``."""
    if job.trigger in COMMAND_TRIGGERS:
        return f"command:{(job.sender or '').lower()}"
    return AUTO_LANE


_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(ReviewJob) if f.name != "pr")
_PR_FIELDS = tuple(f.name for f in dataclasses.fields(PullRequestRef))


def job_to_json(job: ReviewJob) -> str:
    # Field by field rather than dataclasses.asdict: this runs on every webhook ack, and asdict's
    # recursive deep copy was half the cost of an enqueue.
    data: dict[str, Any] = {name: getattr(job, name) for name in _JOB_FIELDS}
    data["pr"] = {name: getattr(job.pr, name) for name in _PR_FIELDS}
    return json.dumps(data, separators=(",", ":"))


# the columns, in order, that job_record() reads: one row of review_jobs in either backend
RECORD_COLUMNS = "id, job, state, outcome, error, attempts, created_at, updated_at, run_after, finished_at"


def job_record(row: tuple[Any, ...]) -> JobRecord:
    return JobRecord(
        id=row[0],
        job=job_from_json(row[1]),
        state=JobState(row[2]),
        outcome=row[3],
        error=row[4],
        attempts=row[5],
        created_at=row[6],
        updated_at=row[7],
        run_after=row[8],
        finished_at=row[9],
    )


def job_from_json(text: str) -> ReviewJob:
    data: dict[str, Any] = json.loads(text)
    return ReviewJob(**{**data, "pr": PullRequestRef(**data["pr"])})


def with_full(text: str) -> str:
    """The stored job with ``full=True`` (a coalesced ``/backend-review full`` widens the pending run)."""
    return job_to_json(dataclasses.replace(job_from_json(text), full=True))


__all__ = [
    "AUTO_LANE",
    "COMMAND_TRIGGERS",
    "DELIVERY_RETENTION_SECONDS",
    "ClaimedJob",
    "EnqueueOutcome",
    "EnqueueResult",
    "JobRecord",
    "JobState",
    "ReviewQueue",
    "job_from_json",
    "job_to_json",
    "lane",
    "semantic_key",
    "with_full",
]
