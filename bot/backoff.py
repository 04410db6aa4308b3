"""Retry delays: exponential backoff with jitter that honours Retry-After (D-05). Pure.

``backoff_delay(attempt)`` for the ``attempt``-th failure (1-based) is
``base * 2 ** (attempt - 1)`` scaled by a random factor in ``[1 - jitter, 1 + jitter]`` (so a burst of
jobs failing together does not come back together), never less than ``retry_after`` when the remote
named one (spread upwards by up to ``jitter`` for the same reason), and never more than ``cap``.
A ``retry_after`` beyond ``cap`` is cut to ``cap``: a job never sleeps longer than ``cap`` seconds
between attempts, and its attempts stay bounded by the worker's ``max_attempts``.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable


def backoff_delay(
    attempt: int,
    *,
    base: float = 2.0,
    cap: float = 300.0,
    retry_after: float | None = None,
    jitter: float = 0.1,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retrying after failed attempt number ``attempt`` (≥ 1)."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    if base < 0 or cap < 0 or not 0 <= jitter <= 1:
        raise ValueError("base and cap must be >= 0 and jitter within [0, 1]")
    # min() before the power would overflow for huge attempt numbers.
    exponential = min(cap, base * 2.0 ** min(attempt - 1, 64))
    delay = exponential * (1 + jitter * (2 * rand() - 1))
    if retry_after is not None and retry_after > 0:
        delay = max(delay, retry_after * (1 + jitter * rand()))
    return min(cap, max(0.0, delay))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if seconds == seconds else None  # NaN → None


__all__ = ["backoff_delay", "parse_retry_after"]
