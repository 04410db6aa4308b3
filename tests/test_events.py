from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest

from bot import events
from bot.config import RepoConfig
from bot.events import AwaitMaintainer, Enqueue, Ignore
from bot.models import Category
from bot.queue.base import job_from_json, job_to_json
from tests.conftest import WEBHOOKS
from tests.support.webhooks import SECRET, command_payload, fixture, sign

APP_ID = 777
RENOVATE = 2740


def decide(event: str, payload: dict[str, Any], **kw: Any) -> events.Decision:
    options: dict[str, Any] = {"delivery_id": "d-1", "app_id": APP_ID, "allowed_bot_app_ids": frozenset()}
    options.update(kw)
    return events.decide(event, payload, **options)


def enqueue(decision: events.Decision) -> Enqueue:
    assert isinstance(decision, Enqueue), decision
    return decision


# --- W-01 / W-03: signatures --------------------------------------------------------------------


def test_w01_signature_test_vector_verifies() -> None:
    vector = json.loads((WEBHOOKS / "signature_test_vector.json").read_text())
    body, secret = vector["payload"].encode(), vector["secret"].encode()
    assert events.verify_signature([secret], body, vector["x_hub_signature_256"])
    assert not events.verify_signature([b"another secret"], body, vector["x_hub_signature_256"])


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=" + "0" * 64,
        "sha1=" + hmac.new(SECRET, b"{}", hashlib.sha1).hexdigest(),
        "sha256=" + hmac.new(SECRET, b"{}", hashlib.sha256).hexdigest().upper(),
        "sha256=" + hmac.new(SECRET, b"{}", hashlib.sha256).hexdigest()[:-2],
        "sha256= " + hmac.new(SECRET, b"{}", hashlib.sha256).hexdigest(),
        "SHA256=" + hmac.new(SECRET, b"{}", hashlib.sha256).hexdigest(),
    ],
)
def test_w01_malformed_or_missing_signature_rejected(header: str | None) -> None:
    assert not events.verify_signature([SECRET], b"{}", header)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    calls: list[tuple[bytes, bytes]] = []
    real: Callable[[bytes, bytes], bool] = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return calls


@pytest.mark.parametrize("secrets", [[SECRET], [b"old" * 12, SECRET], [SECRET, b"old" * 12]])
@pytest.mark.parametrize("variant", ["valid", "last_digit", "missing", "garbage"])
def test_w03_compare_digest_once_per_call_on_equal_length_bytes(
    monkeypatch: pytest.MonkeyPatch, secrets: list[bytes], variant: str
) -> None:
    body = b'{"action":"opened"}'
    good = sign(body)
    last = "0" if good[-1] != "0" else "1"
    header = {"valid": good, "last_digit": good[:-1] + last, "missing": None, "garbage": "sha256=zz"}[variant]
    calls = _counting(monkeypatch)
    assert events.verify_signature(secrets, body, header) is (variant == "valid")
    assert len(calls) == 1
    a, b = calls[0]
    assert isinstance(a, bytes) and isinstance(b, bytes) and len(a) == len(b) == 32


def test_w01_rotation_accepts_both_secrets_only() -> None:
    body = b"{}"
    both = [SECRET, b"previous-secret-" * 3]
    assert events.verify_signature(both, body, sign(body, SECRET))
    assert events.verify_signature(both, body, sign(body, both[1]))
    assert not events.verify_signature(both, body, sign(body, b"third" * 8))


def test_w03_last_hex_digit_difference_rejected() -> None:
    body = b'{"x": 1}'
    good = sign(body)
    flipped = good[:-1] + format((int(good[-1], 16) + 1) % 16, "x")
    assert not events.verify_signature([SECRET], body, flipped)


def test_verify_requires_a_secret() -> None:
    with pytest.raises(ValueError):
        events.verify_signature([], b"{}", None)


# --- W-02: parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"action": "opened", "action": "closed"}',
        b'{"a": {"b": 1, "b": 2}}',
        b"[1, 2]",
        b'{"a": NaN}',
        b"\xff\xfe{}",
        b"{",
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_w02_parse_rejects(body: bytes) -> None:
    with pytest.raises(events.PayloadError):
        events.parse_payload(body)


def test_parse_accepts_fixture() -> None:
    raw = (WEBHOOKS / "pull_request/opened.payload.json").read_bytes()
    assert events.parse_payload(raw)["action"] == "opened"


# --- W-06: routing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("issue_comment", fixture("issue_comment/created.with-installation.payload.json")),
        ("issue_comment", fixture("issue_comment/created.with-installation.payload.json", action="edited")),
        ("issue_comment", fixture("issue_comment/created.with-installation.payload.json", action="deleted")),
        ("issue_comment", {**command_payload(), "action": "edited"}),
        ("issue_comment", {**command_payload(), "action": "deleted"}),
        ("pull_request", fixture("pull_request/edited.repo-automation-bots.no-changes.json")),
        ("pull_request", fixture("pull_request/converted_to_draft.with-installation.payload.json")),
        ("pull_request", fixture("pull_request/closed.payload.json")),
        ("pull_request_review_comment", fixture("pull_request_review_comment/created.payload.json")),
        ("check_suite", fixture("check_suite/requested.payload.json")),
        ("installation", fixture("installation/created.payload.json")),
        ("ping", fixture("ping/with-app_id.payload.json")),
        ("pull_request", fixture("pull_request/opened.payload.json", installation=None)),
        ("issue_comment", fixture("issue_comment/created.on-pull-request.go-playground.json")),
    ],
)
def test_w06_not_allowlisted_no_job(event: str, payload: dict[str, Any]) -> None:
    if event == "issue_comment" and "pull_request" in payload["issue"]:
        payload["comment"]["body"] = "/backend-review"
    assert isinstance(decide(event, payload), Ignore)


def test_w06_unknown_installation_no_job() -> None:
    for event, payload in [
        ("pull_request", fixture("pull_request/opened.payload.json")),
        ("issue_comment", command_payload()),
    ]:
        assert isinstance(decide(event, payload, known_installation=False), Ignore)
        assert isinstance(decide(event, payload), Enqueue)


def test_w06_check_run_rerequested_from_read_sender_no_job() -> None:
    payload = fixture("check_run/rerequested.payload.json")
    run = payload["check_run"]
    run["pull_requests"] = [{"number": 7, "base": {"repo": {"id": payload["repository"]["id"]}}}]
    first = enqueue(decide("check_run", payload, app_id=run["app"]["id"]))
    assert first.needs_permission_check == "octocat"
    assert first.job.head_sha == run["head_sha"] and first.job.pr.number == 7
    assert isinstance(events.authorize(first, "read"), Ignore)
    assert isinstance(events.authorize(first, "write"), Enqueue)
    # another app's check run, or one with no PR of this repository: never
    assert isinstance(decide("check_run", payload, app_id=APP_ID), Ignore)
    run["pull_requests"] = []
    assert isinstance(decide("check_run", payload, app_id=run["app"]["id"]), Ignore)


def test_w06_check_run_requested_action_identifier_allowlisted() -> None:
    payload = fixture("check_run/requested_action.payload.json")
    app = payload["check_run"]["app"]["id"]
    assert isinstance(decide("check_run", payload, app_id=app), Ignore)  # identifier "lgtm|26764"
    payload["requested_action"] = {"identifier": "rerun"}
    decision = enqueue(decide("check_run", payload, app_id=app))
    assert decision.job.pr.number == 26764 and decision.authorize == "codebytere"


@pytest.mark.parametrize("action", ["opened", "reopened", "ready_for_review", "synchronize"])
def test_pull_request_actions_enqueue_bound_job(action: str) -> None:
    payload = fixture("pull_request/synchronize.payload.json", action=action)
    decision = enqueue(decide("pull_request", payload, delivery_id="g-1"))
    job, pr = decision.job, payload["pull_request"]
    assert (job.pr.owner, job.pr.repo, job.pr.number) == ("Codertocat", "Hello-World", 2)
    assert job.pr.installation_id == 1 and job.pr.repo_id == payload["repository"]["id"]
    assert job.head_sha == pr["head"]["sha"] and job.base_sha == pr["base"]["sha"]
    assert job.trigger == action and job.delivery_id == "g-1"
    assert job.before_sha == (payload["before"] if action == "synchronize" else None)
    assert decision.authorize is None and not decision.facts.fork


def test_c06_fork_pr_awaits_maintainer_unless_author_writes() -> None:
    payload = fixture("pull_request/opened.payload.json")
    payload["pull_request"]["head"]["repo"] = {
        **payload["pull_request"]["head"]["repo"],
        "full_name": "evil/fork",
    }
    decision = enqueue(decide("pull_request", payload))
    assert decision.facts.fork and decision.authorize == "Codertocat"
    assert isinstance(events.authorize(decision, "none"), AwaitMaintainer)
    assert isinstance(events.authorize(decision, None), AwaitMaintainer)
    assert isinstance(events.authorize(decision, "write"), Enqueue)
    auto = events.apply_repo_config(decision, RepoConfig(forks="auto"))
    assert isinstance(auto, Enqueue) and auto.authorize is None
    # a maintainer's command on the same PR is a normal command (opt-in)
    assert isinstance(events.authorize(enqueue(decide("issue_comment", command_payload())), "admin"), Enqueue)


# --- C-01 / C-02 / C-03 / C-04 ------------------------------------------------------------------


@pytest.mark.parametrize("permission", ["read", "triage", "none", None, "", "WRITE", "owner"])
def test_c01_command_denied_without_write(permission: str | None) -> None:
    decision = enqueue(decide("issue_comment", command_payload()))
    denied = events.authorize(decision, permission)
    assert isinstance(denied, Ignore) and denied.react  # at most one 👎, never a text reply


@pytest.mark.parametrize("permission", ["admin", "maintain", "write"])
def test_c01_command_allowed_with_write(permission: str) -> None:
    decision = enqueue(decide("issue_comment", command_payload()))
    allowed = events.authorize(decision, permission)
    assert isinstance(allowed, Enqueue) and allowed.authorize is None


def test_c01_permission_allows() -> None:
    assert [events.permission_allows(p) for p in ("admin", "maintain", "write")] == [True] * 3
    assert not any(events.permission_allows(p) for p in ("read", "triage", "none", None, "", "Admin"))


def test_c02_author_association_is_not_a_permission() -> None:
    owner = enqueue(decide("issue_comment", command_payload(author_association="OWNER")))
    assert isinstance(events.authorize(owner, "read"), Ignore)
    contributor = enqueue(decide("issue_comment", command_payload(author_association="CONTRIBUTOR")))
    assert isinstance(events.authorize(contributor, "write"), Enqueue)
    assert owner.authorize == contributor.authorize == "chhsia0"


def test_c03_bots_and_self() -> None:
    evil = command_payload(user={"login": "evil-app[bot]", "type": "Bot", "id": 5})
    assert isinstance(decide("issue_comment", evil), Ignore)
    fake_type = command_payload(user={"login": "evil-app[bot]", "type": "User", "id": 5})
    assert isinstance(decide("issue_comment", fake_type), Ignore)
    own = command_payload(
        user={"login": "backend-review[bot]", "type": "Bot"}, performed_via_github_app={"id": APP_ID}
    )
    ignored = decide("issue_comment", own, allowed_bot_app_ids=frozenset({APP_ID}))
    assert isinstance(ignored, Ignore) and not ignored.react
    renovate = command_payload(
        user={"login": "renovate[bot]", "type": "Bot"}, performed_via_github_app={"id": RENOVATE}
    )
    assert isinstance(decide("issue_comment", renovate), Ignore)
    allowed = decide("issue_comment", renovate, allowed_bot_app_ids=frozenset({RENOVATE}))
    assert enqueue(allowed).authorize == "renovate[bot]"  # still needs the live permission check
    human = enqueue(decide("issue_comment", command_payload(user={"login": "foo-bot", "type": "User"})))
    assert human.authorize == "foo-bot"
    bot_pr = fixture("pull_request/opened.payload.json")
    bot_pr["pull_request"]["user"] = {"login": "dependabot[bot]", "type": "Bot"}
    assert isinstance(decide("pull_request", bot_pr), Ignore)


@pytest.mark.parametrize(
    "body",
    [
        "> /backend-review",
        "/backend-reviewer",
        "please /backend-review",
        "/backend_review",
        "/Backend-Review",
        "/backend-revi\u0435w",  # Cyrillic e
        "\uff0fbackend-review",  # fullwidth solidus: NFKC maps it to "/", but the token was not ASCII
        "/backend-\u200breview",
        "",
        "`/backend-review`",
        "hello\n/backend-review",
    ],
)
def test_c04_not_a_command(body: str) -> None:
    assert events.parse_command(body) is None
    assert isinstance(decide("issue_comment", command_payload(body)), Ignore)


@pytest.mark.parametrize(
    ("body", "kind", "option"),
    [
        ("/backend-review", "review", None),
        ("  /backend-review  \r\nmore text", "review", None),
        ("/backend-review full", "review", "full"),
        ("/backend-review help", "help", None),
        ("/backend-review focus=security", "review", "focus=security"),
        ("/backend-review focus=everything", "unknown_option", None),
        ("/backend-review --model=gpt-9", "unknown_option", None),
        ("/backend-review llm_base_url=http://127.0.0.1:9/", "unknown_option", None),
        ("/backend-review full help", "unknown_option", None),
        ("/backend-review ｆｕｌｌ", "review", "full"),
    ],
)
def test_c04_command_options(body: str, kind: str, option: str | None) -> None:
    assert events.parse_command(body) == (kind, option)
    decision = enqueue(decide("issue_comment", command_payload(body)))
    focus = Category(option.removeprefix("focus=")) if option and option.startswith("focus=") else None
    assert decision.kind == kind and decision.plan.focus == focus
    assert decision.job.full is (option == "full")
    assert decision.authorize == "chhsia0" and decision.on_deny == "react"


def test_c04_fixed_replies_echo_nothing() -> None:
    assert "{" not in events.UNKNOWN_OPTION_REPLY and "{" not in events.HELP_REPLY


def test_command_job_binding() -> None:
    decision = enqueue(decide("issue_comment", command_payload(), delivery_id="g-9"))
    job = decision.job
    assert job.trigger == "command" and job.comment_id == 546616131 and job.sender == "chhsia0"
    assert job.head_sha == ""  # pinned by the worker at authorisation (C-05)
    assert (job.pr.full_name, job.pr.number, job.pr.installation_id) == ("chhsia0/knative-route-demo", 3, 42)


def test_closed_pr_comment_ignored() -> None:
    payload = command_payload()
    payload["issue"]["state"] = "closed"
    assert isinstance(decide("issue_comment", payload), Ignore)


def test_job_roundtrip_through_the_queue() -> None:
    payload = fixture("pull_request/opened.payload.json")
    payload["pull_request"]["head"]["repo"] = None
    payload["pull_request"]["labels"] = [{"name": "a,b"}, {"name": "wip"}]
    decision = enqueue(decide("pull_request", payload))
    job = decision.job
    assert events.Enqueue.planned(job_from_json(job_to_json(job))) == decision
    command = enqueue(decide("issue_comment", command_payload("/backend-review focus=api")))
    assert events.Enqueue.planned(job_from_json(job_to_json(command.job))) == command


# --- repo config --------------------------------------------------------------------------------


def test_apply_repo_config_filters_auto_reviews_only() -> None:
    pr = enqueue(decide("pull_request", fixture("pull_request/synchronize.payload.json")))
    cmd = enqueue(decide("issue_comment", command_payload()))
    assert events.apply_repo_config(pr, RepoConfig()) is pr
    assert isinstance(events.apply_repo_config(pr, RepoConfig(enabled=False)), Ignore)
    assert isinstance(events.apply_repo_config(cmd, RepoConfig(enabled=False)), Ignore)
    assert isinstance(events.apply_repo_config(pr, RepoConfig(review_on_push=False)), Ignore)
    assert isinstance(events.apply_repo_config(pr, RepoConfig(ignore_authors=("codertocat",))), Ignore)
    assert isinstance(events.apply_repo_config(pr, RepoConfig(ignore_labels=("bug",))), Ignore)
    assert isinstance(events.apply_repo_config(pr, RepoConfig(ignore_title_keywords=("readme",))), Ignore)
    for config in (RepoConfig(ignore_authors=("chhsia0",)), RepoConfig(ignore_title_keywords=("route",))):
        assert events.apply_repo_config(cmd, config) is cmd
    wip = fixture("pull_request/opened.payload.json")
    wip["pull_request"]["title"] = "WIP: new endpoint"
    assert isinstance(events.apply_repo_config(decide("pull_request", wip), RepoConfig()), Ignore)


def test_drafts_skipped_unless_configured() -> None:
    payload = fixture("pull_request/opened.payload.json")
    payload["pull_request"]["draft"] = True
    decision = enqueue(decide("pull_request", payload))
    assert isinstance(events.apply_repo_config(decision, RepoConfig()), Ignore)
    assert events.apply_repo_config(decision, RepoConfig(review_drafts=True)) is decision
