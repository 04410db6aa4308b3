"""The job plan (issue 11.2): what the receiver decided travels typed and versioned in the queued job."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from bot import events
from bot.errors import UnreadableJob
from bot.models import Category, JobPlan, PrFacts, PullRequestRef, ReviewJob
from bot.queue.base import ClaimedJob, JobState, claimed_job, job_from_json, job_to_json, with_full
from bot.store.sqlite_queue import SQLiteQueue
from bot.worker import Worker, WorkerConfig
from tests.support.webhooks import command_payload, fixture

# Rows written by the serialiser before plans were typed (`Enqueue.to_job` then `job_to_json`, at
# bed5f1c) from real fixtures: a fork PR opened (labels "a,b" and "wip"), `/backend-review focus=api`
# and `/backend-review full`.
V0_FORK_OPENED = (
    '{"head_sha":"ec26c3e57ca3a959ca5aad62de7213c562f8c821","trigger":"opened","delivery_id":"d-1",'
    '"base_sha":"f95f852bd8fca8fcc58a9a2d6c842781e32a215e","before_sha":null,"full":false,'
    '"comment_id":null,"sender":"Codertocat","check_run_id":null,"extra":{"kind":"review",'
    '"on_deny":"await_maintainer","author":"Codertocat","title":"Update the README with new information.",'
    '"labels":"[\\"a,b\\", \\"wip\\"]","draft":"0","fork":"1","authorize":"Codertocat"},'
    '"pr":{"owner":"Codertocat","repo":"Hello-World","number":2,"installation_id":1,"repo_id":186853002}}'
)
V0_FOCUS_COMMAND = (
    '{"head_sha":"","trigger":"command","delivery_id":"d-2","base_sha":null,"before_sha":null,'
    '"full":false,"comment_id":546616131,"sender":"chhsia0","check_run_id":null,"extra":{"kind":"review",'
    '"on_deny":"react","author":"chhsia0","title":"Updated to v2.","labels":"[]","draft":"0","fork":"0",'
    '"authorize":"chhsia0","option":"focus=api"},"pr":{"owner":"chhsia0","repo":"knative-route-demo",'
    '"number":3,"installation_id":42,"repo_id":199540710}}'
)
V0_FULL_COMMAND = (
    '{"head_sha":"","trigger":"command","delivery_id":"d-3","base_sha":null,"before_sha":null,'
    '"full":true,"comment_id":546616131,"sender":"chhsia0","check_run_id":null,"extra":{"kind":"review",'
    '"on_deny":"react","author":"chhsia0","title":"Updated to v2.","labels":"[]","draft":"0","fork":"0",'
    '"authorize":"chhsia0","option":"full"},"pr":{"owner":"chhsia0","repo":"knative-route-demo",'
    '"number":3,"installation_id":42,"repo_id":199540710}}'
)


def _job(plan: JobPlan, number: int = 7, delivery: str = "d-1") -> ReviewJob:
    pr = PullRequestRef("octo", "app", number, installation_id=5, repo_id=9)
    return ReviewJob(pr=pr, head_sha="a" * 40, trigger="opened", delivery_id=delivery, plan=plan)


def _stored(job: ReviewJob, **plan_changes: Any) -> str:
    data = json.loads(job_to_json(job))
    data["plan"].update(plan_changes)
    return json.dumps(data)


def test_plan_round_trips_as_a_versioned_object() -> None:
    facts = PrFacts("octocat", 'Fix "quotes" ✓ \\ and ]', ("a,b", "wip"), draft=True, fork=True)
    for plan in (
        JobPlan(facts, "review", "octocat", "await_maintainer", Category.SECURITY),
        JobPlan(facts, "help", "alice", "react"),
        JobPlan(PrFacts(author=""), "unknown_option", None, "ignore"),
    ):
        job = _job(plan)
        stored = json.loads(job_to_json(job))
        assert stored["plan"]["v"] == JobPlan.VERSION == 1 and "extra" not in stored
        assert job_from_json(job_to_json(job)) == job


def test_the_receivers_decisions_round_trip_through_the_queue() -> None:
    opened = fixture("pull_request/opened.payload.json")
    opened["pull_request"]["head"]["repo"] = {
        **opened["pull_request"]["head"]["repo"],
        "full_name": "evil/fork",
    }
    options: dict[str, Any] = {"delivery_id": "d-1", "app_id": 777, "allowed_bot_app_ids": frozenset()}
    for event, payload in (
        ("pull_request", opened),
        ("issue_comment", command_payload("/backend-review focus=migration")),
        ("issue_comment", command_payload("/backend-review help")),
    ):
        decision = events.decide(event, payload, **options)
        assert isinstance(decision, events.Enqueue)
        assert events.Enqueue.planned(job_from_json(job_to_json(decision.job))) == decision


def test_v0_rows_written_before_plans_were_typed_still_load() -> None:
    fork = job_from_json(V0_FORK_OPENED)
    assert fork.plan == JobPlan(
        PrFacts("Codertocat", "Update the README with new information.", ("a,b", "wip"), fork=True),
        authorize="Codertocat",
        on_deny="await_maintainer",
    )
    focus = job_from_json(V0_FOCUS_COMMAND)
    assert focus.plan == JobPlan(
        PrFacts("chhsia0", "Updated to v2."), authorize="chhsia0", on_deny="react", focus=Category.API
    )
    full = job_from_json(V0_FULL_COMMAND)
    assert full.full and full.plan == JobPlan(
        PrFacts("chhsia0", "Updated to v2."), authorize="chhsia0", on_deny="react"
    )
    assert (fork.head_sha, focus.comment_id, full.pr.number) == (
        "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
        546616131,
        3,
    )
    # written back in the current version, and widened by a coalesced `full` without losing its plan
    assert json.loads(job_to_json(fork))["plan"]["v"] == 1 and job_from_json(job_to_json(fork)) == fork
    assert job_from_json(with_full(V0_FOCUS_COMMAND)).plan == focus.plan


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"facts": {"author": "a", "title": "", "labels": [], "draft": "1", "fork": False}}, "facts.draft"),
        ({"facts": {"author": "a", "title": "", "labels": [], "draft": 1, "fork": False}}, "facts.draft"),
        (
            {"facts": {"author": "a", "title": "", "labels": "[]", "draft": False, "fork": False}},
            "facts.labels",
        ),
        ({"kind": "delete"}, "kind"),
        ({"on_deny": None}, "on_deny"),
        ({"authorize": 5}, "authorize"),
        ({"focus": "everything"}, "focus"),
        ({"model": "gpt-9"}, "model"),
    ],
)
def test_a_plan_of_the_wrong_shape_is_refused_not_coerced(changes: dict[str, Any], where: str) -> None:
    text = _stored(_job(JobPlan(PrFacts("a"), authorize="a", on_deny="react")), **changes)
    with pytest.raises(UnreadableJob, match=rf"invalid job plan: {where}\b"):
        job_from_json(text)


@pytest.mark.parametrize("version", [2, 0, True, "1", None])
def test_an_unknown_plan_version_is_refused_with_its_version(version: object) -> None:
    text = _stored(_job(JobPlan(PrFacts("a"))), v=version)
    with pytest.raises(UnreadableJob, match=rf"job plan version {version!r} is unknown to this release"):
        job_from_json(text)
    claimed = claimed_job(("job-1", text, 0), "t")
    assert claimed.unreadable is not None and claimed.job.pr.number == 7 and claimed.attempt == 1


def test_a_job_of_an_unknown_plan_version_fails_alone_and_the_worker_goes_on(tmp_path: Path) -> None:
    """A newer release queued a job (plan v2) that this worker claims: only that job fails, for good,
    with the reason on record; its handler never runs; the next job runs."""
    path = tmp_path / "queue.db"
    ran: list[int] = []
    dead: list[tuple[str, BaseException]] = []

    async def handler(claimed: ClaimedJob) -> str:
        ran.append(claimed.job.pr.number)
        return "posted"

    async def on_dead(claimed: ClaimedJob, error: BaseException) -> None:
        dead.append((claimed.id, error))

    async def main() -> list[Any]:
        q = SQLiteQueue(path)
        try:
            newer = await q.enqueue(_job(JobPlan(PrFacts("a")), number=1, delivery="d-1"))
            await q.enqueue(_job(JobPlan(PrFacts("b")), number=2, delivery="d-2"))
            with sqlite3.connect(path) as conn:
                conn.execute(
                    "UPDATE review_jobs SET job = ? WHERE id = ?",
                    (_stored(_job(JobPlan(PrFacts("a")), number=1), v=2, shiny=True), newer.job_id),
                )
            conn.close()
            config = WorkerConfig(concurrency=1, idle_poll_seconds=0.02, max_attempts=3)
            worker = Worker(q, handler, on_dead=on_dead, config=config)
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            deadline = time.monotonic() + 10
            while not all(r.state in (JobState.DONE, JobState.FAILED) for r in await q.jobs()):
                assert time.monotonic() < deadline, "jobs not finished"
                await asyncio.sleep(0.02)
            stop.set()
            await task
            return [(r.id, r.job.pr.number, r.state, r.attempts, r.error) for r in await q.jobs()]
        finally:
            await q.close()

    records = asyncio.run(main())
    (first_id, _, state, attempts, error), second = records
    assert state is JobState.FAILED and attempts == 1
    assert error == "UnreadableJob: job plan version 2 is unknown to this release (it reads 1)"
    assert second[1:4] == (2, JobState.DONE, 1) and ran == [2]
    ((dead_id, why),) = dead
    assert dead_id == first_id and isinstance(why, UnreadableJob)


def test_v0_row_in_a_queue_is_claimed_with_its_plan(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"

    async def main() -> ClaimedJob | None:
        q = SQLiteQueue(path)
        try:
            queued = await q.enqueue(job_from_json(V0_FORK_OPENED))
            with sqlite3.connect(path) as conn:
                conn.execute("UPDATE review_jobs SET job = ? WHERE id = ?", (V0_FORK_OPENED, queued.job_id))
            conn.close()
            return await q.claim("w", 30.0)
        finally:
            await q.close()

    claimed = asyncio.run(main())
    assert claimed is not None and claimed.unreadable is None
    assert claimed.job.plan.authorize == "Codertocat" and claimed.job.plan.on_deny == "await_maintainer"
