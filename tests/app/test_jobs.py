"""The App's job runner against the fake GitHub: live re-checks, authorisation, publish (issue 3)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot import demo
from bot.config import CONFIG_PATH
from bot.errors import GitHubUnavailable, Superseded
from bot.events import HELP_REPLY, UNKNOWN_OPTION_REPLY, Enqueue
from bot.jobs import JobLimits
from bot.pipeline import ReviewInputs, review_workspace
from bot.queue.base import ClaimedJob
from bot.review import parse_markers
from tests.app.conftest import OPENED_FIXTURE, AppWorld, assert_k02_tokens, make_world, model_provider
from tests.support.fake_github import FakePull
from tests.support.model_server import ModelServer, Submit


def test_opened_posts_one_comment_review_and_a_completed_check(world: AppWorld) -> None:
    outcome = world.run(world.job("opened"))
    reviews = world.fake.reviews_for(world.pull)
    assert len(reviews) == 1, outcome
    review = reviews[0]
    assert review.event == "COMMENT" and review.commit_id == world.pull.head_sha
    assert len(review.comments) >= 5
    assert "Offline checks only" in review.body
    (check,) = world.fake.check_runs.values()
    assert check.status == "completed" and check.conclusion == "neutral"
    assert check.annotations
    assert len(world.fake.revoked) == len(world.fake.tokens) >= 3  # K-02: every token revoked


def test_rerun_on_same_head_posts_nothing_twice(world: AppWorld) -> None:
    world.run(world.job("opened"))
    world.run(world.job("synchronize", before_sha=world.pull.head_sha))
    assert len(world.fake.reviews_for(world.pull)) == 1
    assert len(world.fake.check_runs) == 2


def test_head_moved_before_start_is_superseded(world: AppWorld) -> None:
    job = world.job("opened")
    world.push_pr_commit({"app/extra.py": "x = 1\n"})
    with pytest.raises(Superseded):
        world.run(job)
    assert world.fake.reviews_for(world.pull) == []


# --- commands (C-01, C-04, W-04) ------------------------------------------------------------------


def test_c01_command_by_writer_reacts_eyes_then_reviews_then_thumbs_up(world: AppWorld) -> None:
    comment, job = world.command("/backend-review", "alice", "write")
    world.run(job)
    (review,) = world.fake.reviews_for(world.pull)
    assert review.event == "COMMENT" and review.commit_id == world.pull.head_sha  # C-05: pinned head
    assert world.reactions(comment) == ["eyes", "+1"]
    (check,) = world.fake.check_runs.values()
    assert check.status == "completed" and check.head_sha == world.pull.head_sha


@pytest.mark.parametrize("permission", ["read", "triage", "none", 404, 500])
def test_c01_command_by_reader_gets_at_most_one_thumbs_down(world: AppWorld, permission: str | int) -> None:
    comment, job = world.command("/backend-review", "mallory", permission)
    outcome = world.run(job)
    assert outcome.startswith("skipped"), outcome
    assert world.fake.reviews_for(world.pull) == []
    assert world.fake.check_runs == {}
    assert world.reactions(comment) in ([], ["-1"])
    assert world.app_comments() == []  # never a text reply


def test_c04_help_gets_one_fixed_reply(world: AppWorld) -> None:
    _, job = world.command("/backend-review help")
    world.run(job)
    assert world.app_comments() == [HELP_REPLY]
    assert world.fake.reviews_for(world.pull) == [] and world.fake.check_runs == {}


def test_c04_unknown_option_gets_one_fixed_reply_and_no_run(world: AppWorld) -> None:
    _, job = world.command("/backend-review model=gpt-5 budget=99999")
    world.run(job)
    assert world.app_comments() == [UNKNOWN_OPTION_REPLY]
    assert world.fake.reviews_for(world.pull) == [] and world.fake.check_runs == {}


def test_w04_command_deleted_before_the_worker_starts_does_nothing(world: AppWorld) -> None:
    comment, job = world.command()
    world.fake.delete_issue_comment(comment.id)
    assert world.run(job) == "skipped: the command comment was deleted"
    assert world.fake.reviews_for(world.pull) == [] and world.fake.check_runs == {}
    assert world.reactions(comment) == [] and world.app_comments() == []


def test_w04_closed_pull_request_does_nothing(world: AppWorld) -> None:
    job = world.job("opened")
    world.fake.update_pull(world.pull, state="closed")
    assert world.run(job) == "skipped: pull request is not open"
    assert world.fake.reviews_for(world.pull) == [] and world.fake.check_runs == {}


# --- forks (C-06) ---------------------------------------------------------------------------------


def test_c06_fork_pr_from_outsider_awaits_a_maintainer_then_a_command_runs_once(
    world: AppWorld, model_server: ModelServer
) -> None:
    world.fake.update_pull(world.pull, head_repo_full_name="mallory/orders-service", user_login="mallory")
    world.fake.set_permission(world.repo, "mallory", "none")
    decision = world.decide(OPENED_FIXTURE)
    assert isinstance(decision, Enqueue) and decision.on_deny == "await_maintainer"
    model_server.play([Submit([])])
    runner = world.runner(provider_factory=model_provider(model_server))
    assert world.run(decision.job, runner) == "awaiting maintainer"
    (check,) = world.fake.check_runs.values()
    assert check.conclusion == "neutral" and "maintainer" in check.output["title"].lower()
    assert model_server.attempts == 0 and world.fake.reviews_for(world.pull) == []

    comment, job = world.command("/backend-review", "maint", "maintain")
    world.run(job, runner)
    assert len(world.fake.reviews_for(world.pull)) == 1
    assert model_server.attempts >= 1
    assert world.reactions(comment) == ["eyes", "+1"]


# --- repository config (P-04, P-05) ---------------------------------------------------------------


def test_p04_base_branch_config_disabled_skips(tmp_path: Path) -> None:
    with make_world(tmp_path, {CONFIG_PATH: "enabled: false\n"}) as world:
        assert world.run(world.job("opened")) == "skipped: disabled by the repository config"
        assert world.fake.reviews_for(world.pull) == [] and world.fake.check_runs == {}


def test_p05_unknown_config_keys_review_still_posted_with_a_note(tmp_path: Path) -> None:
    with make_world(tmp_path, {CONFIG_PATH: "enabled: true\nmodel_override: gpt-9\n"}) as world:
        world.run(world.job("opened"))
        (review,) = world.fake.reviews_for(world.pull)
        visible = review.body.replace("\\", "")  # notes are Markdown-escaped: compare the rendered text
        assert "model_override" in visible and CONFIG_PATH in visible
        assert review.comments


def test_p04_head_only_config_change_cannot_disable_review(world: AppWorld) -> None:
    world.push_pr_commit({CONFIG_PATH: "enabled: false\nignore_authors: [octocat]\n"})
    world.run(world.job("opened"))
    assert len(world.fake.reviews_for(world.pull)) == 1


# --- cost gates (D-01, D-04) ----------------------------------------------------------------------


def test_d01_giant_pr_one_comment_neutral_check_zero_model_tokens(
    world: AppWorld, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = world.fake._pull_json

    def huge(pr: FakePull) -> dict[str, object]:
        return {**real(pr), "changed_files": 3000, "additions": 20000, "deletions": 5000}

    monkeypatch.setattr(world.fake, "_pull_json", huge)
    model_server.play([Submit([])])
    runner = world.runner(provider_factory=model_provider(model_server))
    assert world.run(world.job("opened"), runner) == "skipped: too large"
    assert world.run(world.job("reopened"), runner) == "skipped: too large"
    assert len(world.app_comments()) == 1
    assert "3000 files" in world.app_comments()[0]
    assert model_server.attempts == 0 and model_server.total_tokens == 0
    assert world.fake.reviews_for(world.pull) == []
    checks = list(world.fake.check_runs.values())
    assert len(checks) == 2 and all(c.conclusion == "neutral" for c in checks)


def test_d04_budget_spent_no_model_request_offline_review_one_notice(
    world: AppWorld, model_server: ModelServer
) -> None:
    asyncio.run(world.ledger.add(world.repo.installation_id, 10_000))
    model_server.play([Submit([]), Submit([])])
    runner = world.runner(
        provider_factory=model_provider(model_server), limits=JobLimits(daily_token_budget=5_000)
    )
    world.run(world.job("opened"), runner)
    world.run(world.job("ready_for_review", delivery_id="d-2"), runner)
    reviews = world.fake.reviews_for(world.pull)
    assert len(reviews) == 2 and all(r.comments or "finding" in r.body.lower() for r in reviews[:1])
    assert model_server.attempts == 0
    notices = sum(r.body.count("daily model budget") for r in reviews) + sum(
        c.count("daily model budget") for c in world.app_comments()
    )
    assert notices == 1


# --- failures (D-05, O-08, K-02) ------------------------------------------------------------------


def test_d05_model_500_forever_review_posted_offline_and_says_unavailable(
    world: AppWorld, model_server: ModelServer
) -> None:
    model_server.play([])  # an empty script: every request answers 500
    world.run(world.job("opened"), world.runner(provider_factory=model_provider(model_server)))
    (review,) = world.fake.reviews_for(world.pull)
    assert len(review.comments) >= 5  # the offline rules' findings
    assert "unavailable" in review.body.lower()
    assert 1 <= model_server.attempts <= 3


def test_github_502_on_review_post_retries_once_and_posts_one_review(world: AppWorld) -> None:
    reviews_path = f"/repos/{world.repo.full_name}/pulls/{world.pull.number}/reviews"
    world.fake.fail_next("POST", reviews_path, status=502)
    with pytest.raises(GitHubUnavailable):
        world.run(world.job("opened"), attempt=1)
    (first,) = world.fake.check_runs.values()
    assert first.status == "completed" and "retrying" in first.output["title"].lower()
    assert world.fake.reviews_for(world.pull) == []
    world.run(world.job("opened"), attempt=2)
    assert len(world.fake.reviews_for(world.pull)) == 1


def test_github_422_on_review_retried_without_inline_comments(world: AppWorld) -> None:
    reviews_path = f"/repos/{world.repo.full_name}/pulls/{world.pull.number}/reviews"
    world.fake.fail_next(
        "POST",
        reviews_path,
        status=422,
        json={"message": "Unprocessable Entity", "errors": ["Line could not be resolved"]},
    )
    world.run(world.job("opened"))
    (review,) = world.fake.reviews_for(world.pull)
    assert review.comments == []
    assert review.event == "COMMENT"


def test_k02_tokens_scoped_and_revoked_on_a_failure_path(world: AppWorld) -> None:
    world.fake.fail_next("GET", f"/repos/{world.repo.full_name}/pulls/*/reviews", status=500, times=None)
    with pytest.raises(GitHubUnavailable):
        world.run(world.job("opened"))
    assert world.fake.tokens
    assert_k02_tokens(world.fake, world.repo)
    kinds = {tuple(sorted(t.permissions.items())) for t in world.fake.tokens}
    assert all(dict(k).get("pull_requests") != "write" or dict(k).get("contents") != "write" for k in kinds)


def test_o08_conclusion_neutral_by_default_failure_at_fail_on(tmp_path: Path) -> None:
    with make_world(tmp_path, {CONFIG_PATH: "fail_on: high\n"}) as world:
        world.run(world.job("opened"))
        (review,) = world.fake.reviews_for(world.pull)
        assert review.event == "COMMENT"
        (check,) = world.fake.check_runs.values()
        assert check.conclusion == "failure"


def test_o08_review_is_always_a_comment_and_check_neutral(world: AppWorld) -> None:
    world.run(world.job("opened"))
    assert {r.event for r in world.fake.reviews} == {"COMMENT"}
    assert {c.conclusion for c in world.fake.check_runs.values()} == {"neutral"}
    bodies = [r.json for r in world.fake.requests_to("POST", "/repos/*/pulls/*/reviews")]
    assert all(b.get("event") == "COMMENT" for b in bodies)


def test_on_dead_neutral_review_failed_check_and_confused_on_command(world: AppWorld) -> None:
    comment, job = world.command()
    claimed = ClaimedJob(id="job-9", job=job, attempt=3, lease_token="t")
    asyncio.run(world.runner().on_dead(claimed, RuntimeError("model exploded")))
    (check,) = world.fake.check_runs.values()
    assert check.conclusion == "neutral" and check.output["title"] == "Review failed"
    assert check.head_sha == world.pull.head_sha
    assert world.reactions(comment) == ["confused"]


# --- incremental review on synchronize ------------------------------------------------------------

NEW_DEFECT: dict[str, str | bytes] = {
    "app/audit.py": (
        "import requests\n\n\n"
        "def ship(event: dict) -> None:\n"
        "    try:\n"
        '        requests.post("https://audit.internal/events", json=event, timeout=5)\n'
        "    except Exception:\n"
        "        pass\n"
    )
}


def _record_diff_base(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    seen: list[str | None] = []
    real = review_workspace

    async def spy(ws: Any, inputs: ReviewInputs, **kw: Any) -> Any:
        seen.append(inputs.diff_base)
        return await real(ws, inputs, **kw)

    monkeypatch.setattr("bot.jobs.review_workspace", spy)
    return seen


def test_synchronize_reviews_only_the_new_commits(world: AppWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    bases = _record_diff_base(monkeypatch)
    world.run(world.job("opened"))
    first = world.fake.reviews_for(world.pull)[0]
    first_fps = {m for c in first.comments for m in parse_markers(c["body"])}
    before = world.pull.head_sha
    world.push_pr_commit(NEW_DEFECT)
    world.run(world.job("synchronize", before_sha=before, delivery_id="d-2"))
    assert bases == [None, before]
    _, second = world.fake.reviews_for(world.pull)
    assert second.commit_id == world.pull.head_sha
    assert second.comments and {c["path"] for c in second.comments} == {"app/audit.py"}
    second_fps = {m for c in second.comments for m in parse_markers(c["body"])}
    assert second_fps and not second_fps & first_fps


def test_force_push_gets_a_full_review(world: AppWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    bases = _record_diff_base(monkeypatch)
    world.run(world.job("opened"))
    before = world.pull.head_sha
    world.work.git("reset", "-q", "--hard", "main")  # rewrite history: the old head is not an ancestor
    world.work.commit("rewritten", {**demo.PR, **NEW_DEFECT})
    world.repo.push(world.work, "feature")
    world.fake.update_pull(world.pull)
    world.run(world.job("synchronize", before_sha=before, delivery_id="d-2"))
    assert bases == [None, None]  # full diff against the base, not against the rewritten-away head
    reviews = world.fake.reviews_for(world.pull)
    assert len(reviews) == 2 and "app/audit.py" in {c["path"] for c in reviews[1].comments}
