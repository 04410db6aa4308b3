"""D-05 as built: a model that fails forever costs at most three attempts per head; the offline review is
posted saying the model was unavailable, with the Re-run button, and a redelivery queues nothing.

Real worker and SQLite queue, the real job runner against the fake GitHub, the real Anthropic SDK against
the scripted model server answering 500 to everything.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bot.events import Enqueue
from bot.publish.github_app import RERUN_BUTTON
from bot.queue.base import EnqueueOutcome, JobState
from bot.store.sqlite_queue import SQLiteQueue
from bot.worker import Worker, WorkerConfig
from tests.app.conftest import OPENED_FIXTURE, AppWorld, model_provider
from tests.support.model_server import ModelServer

CONFIG = WorkerConfig(
    concurrency=1,
    lease_seconds=60.0,
    max_attempts=3,
    idle_poll_seconds=0.02,
    grace_seconds=5.0,
    backoff_base=0.01,
    backoff_cap=0.05,
)


def test_d05_model_500_forever_three_attempts_offline_review_rerun_button_redelivery_not_requeued(
    world: AppWorld, model_server: ModelServer, tmp_path: Path
) -> None:
    model_server.play([])  # an empty script: every request answers 500
    runner = world.runner(provider_factory=model_provider(model_server))
    delivered = world.decide(OPENED_FIXTURE)
    assert isinstance(delivered, Enqueue)
    job = delivered.job

    async def main() -> tuple[EnqueueOutcome, EnqueueOutcome, int]:
        q = SQLiteQueue(tmp_path / "queue.db")
        worker = Worker(q, runner, on_dead=runner.on_dead, config=CONFIG, rand=lambda: 0.5)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            assert (await q.enqueue(job)).created
            deadline = time.monotonic() + 120
            while not [r for r in await q.jobs() if r.state is JobState.DONE]:
                assert time.monotonic() < deadline, await q.jobs()
                await asyncio.sleep(0.05)
            # GitHub's "Redeliver" repeats the delivery id; a second delivery of the event has a new one
            again = await q.enqueue(job)
            redelivered = world.decide(OPENED_FIXTURE)
            assert isinstance(redelivered, Enqueue)
            assert redelivered.job.delivery_id != job.delivery_id
            second = await q.enqueue(redelivered.job)
            await asyncio.sleep(0.3)  # a worker that had been handed a job would have claimed it by now
            return again.outcome, second.outcome, len(await q.jobs())
        finally:
            stop.set()
            await task
            await q.close()

    again, second, jobs = asyncio.run(main())
    assert model_server.attempts == 3  # the provider's retries: never more, whatever the job does
    assert (again, second, jobs) == (EnqueueOutcome.DUPLICATE_DELIVERY, EnqueueOutcome.DUPLICATE_KEY, 1)
    (review,) = world.fake.reviews_for(world.pull)
    assert review.event == "COMMENT" and len(review.comments) >= 5  # the offline rules' findings
    assert "unavailable" in review.body.lower()
    (check,) = world.fake.check_runs.values()
    assert (check.status, check.conclusion) == ("completed", "neutral")
    assert check.update_bodies[0]["actions"] == [RERUN_BUTTON]
