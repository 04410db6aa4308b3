"""Shared helpers for the webhook tests: signed fixture deliveries and an in-memory ReviewQueue."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from bot.models import ReviewJob
from bot.queue.base import EnqueueResult, JobState
from bot.store.sqlite_queue import SQLiteQueue
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


class RecordingQueue:
    """The real SQLite queue, recording the jobs it accepted (for assertions) and able to fail on demand."""

    def __init__(self, path: Path) -> None:
        self.real = SQLiteQueue(path)
        self.jobs: dict[str, ReviewJob] = {}
        self.delays: list[float] = []
        self.fail_with: Exception | None = None

    async def enqueue(self, job: ReviewJob, *, delay_seconds: float = 0.0) -> EnqueueResult:
        if self.fail_with is not None:
            raise self.fail_with
        result = await self.real.enqueue(job, delay_seconds=delay_seconds)
        if result.created and result.job_id is not None:
            self.jobs[result.job_id] = job
            self.delays.append(delay_seconds)
        return result

    async def state(self, job_id: str) -> JobState | None:
        if self.fail_with is not None:
            raise self.fail_with
        return await self.real.state(job_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)
