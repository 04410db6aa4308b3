"""O-08 gating: a push that fixes nothing never turns a failing check green."""

from __future__ import annotations

from pathlib import Path

from tests.app.conftest import make_world


def test_gate_stays_failed_after_an_unrelated_push(tmp_path: Path) -> None:
    with make_world(tmp_path, base_files={".github/backend-review.yml": "fail_on: high\n"}) as world:
        world.run(world.job("opened"))
        before = world.pull.head_sha
        world.push_pr_commit({"docs/notes.md": "release notes\n"})
        world.run(
            world.job("synchronize", head_sha=world.pull.head_sha, before_sha=before, delivery_id="d-2")
        )
        first, second = sorted(world.fake.check_runs.values(), key=lambda c: c.id)
        assert first.conclusion == "failure"
        assert second.conclusion == "failure"  # the critical SQL injection is still there
        assert "still apply" in second.output["summary"]
        assert len(world.fake.reviews_for(world.pull)) == 1  # nothing new: no second review, no repeats
