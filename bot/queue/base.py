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
   only when the call records a job (``ACCEPTED``/``REPLACED``/``COALESCED``/``STALE``), in the same
   transaction, and kept for :data:`DELIVERY_RETENTION_SECONDS` (``prune``).
2. A job with the same :func:`semantic_key` (installation, repo, PR, head SHA and the trigger: the
   command comment's id, else the event and the clicked check run) is pending, running or done →
   ``DUPLICATE_KEY``; it failed for good → ``DEAD_LETTERED`` (D-05: a redelivery never re-queues a job
   that exhausted its attempts).
3. An automatic job whose head is already known to be OLDER than one its PR has seen → ``STALE``:
   recorded as already superseded, nothing to run. GitHub does not guarantee delivery order, and a
   replacement must never move a lane backwards. "Older" is what the deliveries say: an automatic
   job of the PR was pushed on top of this head (its ``before_sha`` is this head) and is not a push
   back to this job's own ``before_sha`` (a force-push returning to an earlier head is new work).
   Stale records count too, so the order carries on to still older heads. What the queue cannot
   know (a lost delivery in between) the worker settles: it compares the job with the PR's live
   head and makes sure the live head gets a job (``bot.worker``).
4. The job's lane of that PR has a pending job for the same head → ``COALESCED`` into it (C-07: a
   flood of commands is one run plus at most one queued; ``full=True`` is merged in).
5. The job's lane of that PR has a pending job for another head → that job becomes ``SUPERSEDED`` and
   the new one takes its place in line (``REPLACED``). It becomes runnable at the EARLIER of the
   replaced job's ``run_after`` and now + ``delay_seconds``: a push storm is debounced into its newest
   head (D-03), yet the window runs from the burst's first push, so a PR pushed more often than the
   delay is still reviewed.
6. Otherwise → ``ACCEPTED`` (a job pending in another lane is left alone).

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
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Strict, ValidationError

from bot.errors import UnreadableJob
from bot.models import Category, JobPlan, Kind, OnDeny, PrFacts, PullRequestRef, ReviewJob

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
    STALE = "stale"  # an older head than one the PR already has (an out-of-order delivery): nothing queued


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
    # why the stored plan could not be read (a newer release wrote it): the worker fails the job
    # without running it, and ``job.plan`` is then a placeholder nothing may act on
    unreadable: str | None = None


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


_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(ReviewJob) if f.name not in ("pr", "plan"))
_PR_FIELDS = tuple(f.name for f in dataclasses.fields(PullRequestRef))


def job_to_json(job: ReviewJob) -> str:
    # Field by field rather than dataclasses.asdict: this runs on every webhook ack, and asdict's
    # recursive deep copy was half the cost of an enqueue.
    data: dict[str, Any] = {name: getattr(job, name) for name in _JOB_FIELDS}
    data["pr"] = {name: getattr(job.pr, name) for name in _PR_FIELDS}
    plan, facts = job.plan, job.plan.facts
    data["plan"] = {
        "v": JobPlan.VERSION,
        "facts": {
            "author": facts.author,
            "title": facts.title,
            "labels": list(facts.labels),
            "draft": facts.draft,
            "fork": facts.fork,
        },
        "kind": plan.kind,
        "authorize": plan.authorize,
        "on_deny": plan.on_deny,
        "focus": plan.focus,
    }
    return json.dumps(data, separators=(",", ":"))


_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)


class _FactsV1(BaseModel):
    model_config = _STRICT
    author: str
    title: str
    labels: list[str]  # a JSON array (strict refuses a list for a tuple)
    draft: bool
    fork: bool


class _PlanV1(BaseModel):
    """The stored form of :class:`JobPlan` version 1; every field present, no coercion ("1" is no bool)."""

    model_config = _STRICT
    v: Literal[1]
    facts: _FactsV1
    kind: Kind
    authorize: str | None
    on_deny: OnDeny
    focus: Annotated[Category, Strict(False)] | None  # stored as its value


def _plan_v1(raw: object) -> JobPlan:
    version = raw.get("v") if isinstance(raw, dict) else None
    if type(version) is not int or version != JobPlan.VERSION:
        raise UnreadableJob(
            f"job plan version {version!r} is unknown to this release (it reads {JobPlan.VERSION})"
        )
    try:
        p = _PlanV1.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]  # its location and kind only: the input may be text from the PR
        where = ".".join(str(part) for part in first["loc"])
        raise UnreadableJob(f"invalid job plan: {where}: {first['type']}") from None
    f = p.facts
    return JobPlan(
        PrFacts(f.author, f.title, tuple(f.labels), f.draft, f.fork), p.kind, p.authorize, p.on_deny, p.focus
    )


def _plan_v0(extra: dict[str, str]) -> JobPlan:
    """The plan of a job queued before plans were typed: the strings ``Enqueue.to_job`` put in ``extra``."""
    kinds: dict[str | None, Kind] = {"review": "review", "help": "help", "unknown_option": "unknown_option"}
    denials: dict[str | None, OnDeny] = {
        "ignore": "ignore",
        "react": "react",
        "await_maintainer": "await_maintainer",
    }
    option = extra.get("option") or ""
    try:
        labels = json.loads(extra.get("labels", "[]"))
        focus = Category(option.removeprefix("focus=")) if option.startswith("focus=") else None
    except ValueError as exc:  # JSONDecodeError is one
        raise UnreadableJob(f"invalid version 0 job plan: {type(exc).__name__}") from None
    facts = PrFacts(
        author=extra.get("author", ""),
        title=extra.get("title", ""),
        labels=tuple(str(label) for label in labels) if isinstance(labels, list) else (),
        draft=extra.get("draft") == "1",
        fork=extra.get("fork") == "1",
    )
    kind, on_deny = kinds.get(extra.get("kind"), "review"), denials.get(extra.get("on_deny"), "ignore")
    return JobPlan(facts, kind, extra.get("authorize"), on_deny, focus)


def _decode(text: str) -> tuple[ReviewJob, str | None]:
    """The stored job and, when its plan is unreadable, why (its plan is then a placeholder)."""
    data: dict[str, Any] = json.loads(text)
    raw, extra = data.pop("plan", None), data.pop("extra", None)
    fields = {**data, "pr": PullRequestRef(**data["pr"])}
    try:
        plan = _plan_v0(extra or {}) if raw is None else _plan_v1(raw)
    except UnreadableJob as exc:
        return ReviewJob(**fields), str(exc)
    return ReviewJob(**fields, plan=plan), None


def job_from_json(text: str) -> ReviewJob:
    """The stored job; raises :class:`~bot.errors.UnreadableJob` when its plan cannot be read."""
    job, unreadable = _decode(text)
    if unreadable is not None:
        raise UnreadableJob(unreadable)
    return job


def claimed_job(row: tuple[Any, ...], lease_token: str) -> ClaimedJob:
    """The job of a claimed row (id, job, earlier attempts), readable or not (see ``unreadable``)."""
    job, unreadable = _decode(row[1])
    return ClaimedJob(id=row[0], job=job, attempt=row[2] + 1, lease_token=lease_token, unreadable=unreadable)


# the columns, in order, that job_record() reads: one row of review_jobs in either backend
RECORD_COLUMNS = "id, job, state, outcome, error, attempts, created_at, updated_at, run_after, finished_at"


def job_record(row: tuple[Any, ...]) -> JobRecord:
    return JobRecord(
        id=row[0],
        job=_decode(row[1])[0],  # history: an unreadable plan shows as the placeholder
        state=JobState(row[2]),
        outcome=row[3],
        error=row[4],
        attempts=row[5],
        created_at=row[6],
        updated_at=row[7],
        run_after=row[8],
        finished_at=row[9],
    )


def with_full(text: str) -> str:
    """The stored job with ``full=True`` (a coalesced ``/backend-review full`` widens the pending run).

    Edited as JSON, so that a job written by another release keeps its plan as it was."""
    data: dict[str, Any] = json.loads(text)
    data["full"] = True
    return json.dumps(data, separators=(",", ":"))


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
    "claimed_job",
    "job_from_json",
    "job_to_json",
    "lane",
    "semantic_key",
    "with_full",
]
