from __future__ import annotations

import pytest

from bot.backoff import backoff_delay


def test_exponential_without_jitter() -> None:
    delays = [backoff_delay(n, base=2, cap=300, jitter=0) for n in range(1, 11)]
    assert delays == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_jitter_stays_within_its_band() -> None:
    assert backoff_delay(3, base=2, jitter=0.1, rand=lambda: 0.0) == pytest.approx(7.2)
    assert backoff_delay(3, base=2, jitter=0.1, rand=lambda: 0.999999) == pytest.approx(8.8, rel=1e-5)
    assert backoff_delay(3, base=2, jitter=0.1, rand=lambda: 0.5) == pytest.approx(8.0)


def test_d05_honours_retry_after_and_spreads_it_upwards() -> None:
    assert backoff_delay(1, base=2, retry_after=30, jitter=0.1, rand=lambda: 0.0) == pytest.approx(30)
    assert backoff_delay(1, base=2, retry_after=30, jitter=0.1, rand=lambda: 0.5) == pytest.approx(31.5)
    # A Retry-After shorter than the exponential delay does not shorten it.
    assert backoff_delay(5, base=2, retry_after=1, jitter=0) == 32


def test_cap_bounds_everything_including_retry_after() -> None:
    assert backoff_delay(1, cap=60, retry_after=3600, jitter=0) == 60
    assert backoff_delay(10_000, cap=60, jitter=0.1, rand=lambda: 0.999) == 60
    # Jitter still spreads delays that reached the cap (downwards only).
    assert backoff_delay(3, base=2, cap=5, jitter=0.1, rand=lambda: 0.0) == pytest.approx(4.5)


def test_default_random_jitter_is_bounded() -> None:
    for attempt in (1, 2, 3):
        delay = backoff_delay(attempt)
        nominal = 2.0 * 2 ** (attempt - 1)
        assert 0.9 * nominal <= delay <= 1.1 * nominal


@pytest.mark.parametrize(
    "kwargs", [{"attempt": 0}, {"attempt": 1, "jitter": 2.0}, {"attempt": 1, "base": -1}]
)
def test_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        backoff_delay(**kwargs)  # type: ignore[arg-type]
