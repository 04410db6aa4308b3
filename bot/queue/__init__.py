"""The review queue's contract (``base``); its backends live in the store (``bot.store``)."""

from __future__ import annotations

from bot.queue.base import (
    ClaimedJob,
    EnqueueOutcome,
    EnqueueResult,
    JobRecord,
    JobState,
    ReviewQueue,
)

__all__ = [
    "ClaimedJob",
    "EnqueueOutcome",
    "EnqueueResult",
    "JobRecord",
    "JobState",
    "ReviewQueue",
]
