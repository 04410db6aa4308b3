"""Shared helpers for the webhook tests: signed fixture deliveries and an in-memory ReviewQueue."""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
from typing import Any

from bot.models import ReviewJob
from bot.queue.base import ClaimedJob, EnqueueOutcome, EnqueueResult, JobState
from tests.conftest import WEBHOOKS

SECRET = b"w" * 40
OTHER_SECRET = b"x" * 40


def fixture(path: str, **patch: Any) -> dict[str, Any]:
    """A deep copy of a webhook fixture with top-level keys replaced."""
    data: dict[str, Any] = json.loads((WEBHOOKS / path).read_text())
    data = copy.deepcopy(data)
    data.update(patch)
    return data


def command_payload(
    body: str = "/backend-review", installation_id: int = 42, **comment: Any
) -> dict[str, Any]:
    """SECURITY.md W-01's input: the go-playground PR comment with an installation and a command body."""
    data = fixture(
        "issue_comment/created.on-pull-request.go-playground.json", installation={"id": installation_id}
    )
    data["comment"]["body"] = body
    data["comment"].update(comment)
    return data


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def headers(body: bytes, event: str, delivery: str = "d-1", secret: bytes = SECRET) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(body, secret),
        "Content-Type": "application/json",
    }


class FakeQueue:
    """The ReviewQueue protocol's enqueue dedupe (delivery id, semantic key) in memory."""

    def __init__(self) -> None:
        self.jobs: dict[str, ReviewJob] = {}
        self._deliveries: set[str] = set()
        self._keys: set[tuple[object, ...]] = set()
        self._ids = itertools.count(1)
        self.fail_with: Exception | None = None

    async def enqueue(self, job: ReviewJob) -> EnqueueResult:
        if self.fail_with is not None:
            raise self.fail_with
        if job.delivery_id in self._deliveries:
            return EnqueueResult(EnqueueOutcome.DUPLICATE_DELIVERY)
        key = (job.pr.installation_id, job.pr.full_name, job.pr.number, job.head_sha, job.comment_id)
        if key in self._keys:
            self._deliveries.add(job.delivery_id)
            return EnqueueResult(EnqueueOutcome.DUPLICATE_KEY)
        job_id = f"job-{next(self._ids)}"
        self.jobs[job_id] = job
        self._deliveries.add(job.delivery_id)
        self._keys.add(key)
        return EnqueueResult(EnqueueOutcome.ACCEPTED, job_id)

    async def claim(self, worker_id: str, lease_seconds: float) -> ClaimedJob | None:
        return None

    async def heartbeat(self, claimed: ClaimedJob, lease_seconds: float) -> bool:
        return False

    async def complete(self, claimed: ClaimedJob, outcome: str) -> None:
        return None

    async def retry(self, claimed: ClaimedJob, error: str, delay_seconds: float) -> None:
        return None

    async def fail(self, claimed: ClaimedJob, error: str) -> None:
        return None

    async def state(self, job_id: str) -> JobState | None:
        if self.fail_with is not None:
            raise self.fail_with
        return JobState.PENDING if job_id in self.jobs else None

    async def close(self) -> None:
        return None
