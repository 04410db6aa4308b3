"""W-04 semantic key: deduplicates redeliveries of one event, never a distinct later trigger on the
same head (a draft marked ready, a click on the completed check's "Re-run review" button)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from bot.models import PullRequestRef, ReviewJob
from bot.queue.base import EnqueueOutcome
from bot.store.sqlite_queue import SQLiteQueue

PR = PullRequestRef("octo", "app", 1, installation_id=7, repo_id=99)
HEAD = "a" * 40


def _job(delivery: str, trigger: str, **fields: object) -> ReviewJob:
    return ReviewJob(pr=PR, head_sha=HEAD, trigger=trigger, delivery_id=delivery, **fields)  # type: ignore[arg-type]


async def _done_then(q: SQLiteQueue, first: ReviewJob, later: ReviewJob) -> EnqueueOutcome:
    assert (await q.enqueue(first)).created
    claimed = await q.claim("w", 60.0)
    assert claimed is not None
    await q.complete(claimed, "skipped: draft pull request")
    return (await q.enqueue(later)).outcome


def test_w04_ready_for_review_after_a_draft_skip_on_the_same_head_is_queued(tmp_path: Path) -> None:
    async def main() -> None:
        q = SQLiteQueue(tmp_path / "q.db")
        try:
            outcome = await _done_then(q, _job("d-1", "opened"), _job("d-2", "ready_for_review"))
            assert outcome is EnqueueOutcome.ACCEPTED
            # a redelivery of that same event under a new GUID is still one job
            again = await q.enqueue(_job("d-3", "ready_for_review"))
            assert again.outcome is EnqueueOutcome.DUPLICATE_KEY
        finally:
            await q.close()

    asyncio.run(main())


def test_w04_rerun_button_on_a_reviewed_head_is_queued_once_per_check_run(tmp_path: Path) -> None:
    async def main() -> None:
        q = SQLiteQueue(tmp_path / "q.db")
        try:
            click = _job("d-2", "rerequested", check_run_id=555, sender="alice")
            assert await _done_then(q, _job("d-1", "opened"), click) is EnqueueOutcome.ACCEPTED
            # clicking the same run's button again (new delivery) adds nothing (C-07)
            twice = dataclasses.replace(click, delivery_id="d-3")
            assert (await q.enqueue(twice)).outcome is EnqueueOutcome.DUPLICATE_KEY
        finally:
            await q.close()

    asyncio.run(main())
