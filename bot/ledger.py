"""Model tokens spent per installation per UTC day (D-04), checked before any model call.

The ledger lives in the store (``bot.store``): the queue's SQLite file, or the shared Postgres
database, so workers on several machines share it. ``claim_notice`` is true once per installation and
day, so the "budget spent" notice is posted once, not on every review.
"""

from __future__ import annotations

import time
from typing import Protocol


def utc_day(now: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if now is None else now))


class TokenLedger(Protocol):
    async def spent(self, installation: int) -> int: ...

    async def add(self, installation: int, tokens: int) -> None: ...

    async def claim_notice(self, installation: int) -> bool:
        """True the first time it is asked on a day for an installation; false after that."""
        ...

    async def has_budget(self, installation: int, daily_budget: int) -> bool: ...

    async def close(self) -> None: ...
