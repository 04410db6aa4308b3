"""The completed check run offers "Re-run review"; clicking it (requested_action) re-runs for writers only."""

from __future__ import annotations

import json

from bot.events import Enqueue, Ignore, authorize, decide
from bot.jobs import RERUN_BUTTON
from tests.app.conftest import AppWorld
from tests.conftest import WEBHOOKS


def _click(world: AppWorld, check_id: int, login: str) -> Enqueue | Ignore:
    payload = json.loads((WEBHOOKS / "check_run/requested_action.payload.json").read_text())
    run = payload["check_run"]
    run.update(id=check_id, head_sha=world.pull.head_sha, app={"id": world.fake.app_id})
    run["pull_requests"] = [{"number": world.pull.number, "base": {"repo": {"id": world.repo.id}}}]
    payload["requested_action"] = {"identifier": RERUN_BUTTON["identifier"]}
    payload["installation"] = {"id": world.repo.installation_id}
    payload["repository"].update(
        id=world.repo.id,
        name=world.repo.name,
        full_name=world.repo.full_name,
        owner={"login": world.repo.owner},
    )
    payload["sender"] = {"login": login, "type": "User"}
    decision = decide(
        "check_run", payload, delivery_id="d-click", app_id=world.fake.app_id, allowed_bot_app_ids=frozenset()
    )
    assert isinstance(decision, Enqueue | Ignore)
    return decision


def test_completed_check_offers_rerun_and_a_writer_click_reviews_again(world: AppWorld) -> None:
    world.run(world.job("opened"))
    (check,) = world.fake.check_runs.values()
    assert check.update_bodies[0]["actions"] == [RERUN_BUTTON]
    assert len(RERUN_BUTTON["label"]) <= 20 and len(RERUN_BUTTON["description"]) <= 40  # GitHub's limits

    decision = _click(world, check.id, "alice")
    assert isinstance(decision, Enqueue) and decision.needs_permission_check == "alice"
    assert isinstance(authorize(decision, "read"), Ignore)  # a reader's click does nothing (C-01)
    world.fake.set_permission(world.repo, "alice", "write")
    world.run(decision.job)
    assert [c.status for c in world.fake.check_runs.values()] == ["completed", "completed"]
