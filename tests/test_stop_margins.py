"""Issue 10.5: a supervisor's stop timeout leaves `serve` and `worker` time to drain their reviews.

Docker's default ``stop_grace_period`` is 10 s and a systemd ``TimeoutStopSec`` equal to the drain
grace killed reviews mid-run: each must exceed the drain grace (``BACKEND_REVIEW_DRAIN_SECONDS``) plus
the receiver's own shutdown, with a margin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bot.app import RECEIVER_SHUTDOWN_SECONDS
from bot.settings import Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
MARGIN_SECONDS = 10.0
NEEDED = Settings().drain_seconds + RECEIVER_SHUTDOWN_SECONDS + MARGIN_SECONDS


def _seconds(text: str) -> float:
    """A compose duration (``1m30s``, ``45s``) or a systemd time span (``60s``, ``2min``, ``90``)."""
    units = {"h": 3600.0, "min": 60.0, "m": 60.0, "s": 1.0, "ms": 0.001, "": 1.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|min|h|m|s|)", text.strip())
    assert parts and "".join(n + u for n, u in parts) == text.strip().replace(" ", ""), text
    return sum(float(n) * units[u] for n, u in parts)


def test_the_default_drain_grace_is_the_documented_setting() -> None:
    assert Settings().drain_seconds == 30.0
    assert Settings.from_env({"BACKEND_REVIEW_DRAIN_SECONDS": "12.5"}).drain_seconds == 12.5


@pytest.mark.parametrize("service", ["receiver", "worker"])
def test_compose_stop_grace_period_exceeds_the_drain(service: str) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    grace = compose["services"][service].get("stop_grace_period")
    assert grace is not None, f"{service}: docker's default is 10 s, shorter than the drain"
    assert _seconds(str(grace)) >= NEEDED


@pytest.mark.parametrize("unit", sorted(p.name for p in (DEPLOY / "systemd").glob("*.service")))
def test_systemd_stop_timeout_exceeds_the_drain(unit: str) -> None:
    text = (DEPLOY / "systemd" / unit).read_text(encoding="utf-8")
    (value,) = re.findall(r"^TimeoutStopSec=(.+)$", text, flags=re.M)
    assert _seconds(value) >= NEEDED
    assert not re.search(r"^KillSignal=(?!SIGTERM)", text, flags=re.M)  # the drain starts on SIGTERM


def test_durations_parse() -> None:
    assert _seconds("1m30s") == 90 and _seconds("2min") == 120 and _seconds("45") == 45
