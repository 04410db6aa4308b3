"""What every destination is given and says back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bot.pipeline import ReviewOutcome
from bot.sanitize import plain_text

CHECK_NAME = plain_text("backend-review")  # the check run's name, for the App and in CI


@dataclass
class Published:
    review_id: int | None = None
    check_id: int | None = None
    refused: list[str] = field(default_factory=list)  # writes the token was not allowed to make


class Publisher(Protocol):
    """Takes the review outcome (the draft's findings and comments, summary, check conclusion, skipped
    files and notices, all sanitised by type) to one destination."""

    async def publish(self, outcome: ReviewOutcome) -> Published: ...


__all__ = ["CHECK_NAME", "Published", "Publisher"]
