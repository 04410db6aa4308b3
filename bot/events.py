"""Webhook decisions (pure): signature check, strict parsing and event routing (W-01..W-06, C-01..C-06).

The flow for one delivery:

1. :func:`verify_signature` over the raw body (the server has already bounded its size, W-05);
2. :func:`parse_payload`, only after verification, rejecting duplicate keys (W-02);
3. :func:`decide` turns (event, payload) into a :class:`Decision` without any I/O; an :class:`Enqueue`
   may still need the live permission of a login (C-01) and the base-branch config (P-04), which the
   worker fetches; it then calls :func:`apply_repo_config` and :func:`authorize` — both pure.

The server enqueues ``Enqueue.job``, whose :class:`~bot.models.JobPlan` carries the decision typed;
the worker takes it back with :meth:`Enqueue.planned` and re-checks only what can change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import secrets as _random
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from bot.config import RepoConfig
from bot.errors import BackendReviewError
from bot.models import Category, JobPlan, Kind, OnDeny, PrFacts, PullRequestRef, ReviewJob, Trigger
from bot.sanitize import compose, fixed, inert_plain


class PayloadError(BackendReviewError):
    """The (authenticated) body is not a JSON object we accept (duplicate keys, bad UTF-8, …)."""


# --- W-01/W-03: signature ------------------------------------------------------------------------

_HEX = frozenset("0123456789abcdef")
# Blinding key for the multi-secret case (double-HMAC verification): fresh per process, never stored.
_BLIND_KEY = _random.token_bytes(32)


def _claimed_mac(header_256: str | None) -> bytes | None:
    """The 32 bytes a well-formed ``sha256=<64 lowercase hex>`` header claims, else None."""
    if header_256 is None:
        return None
    scheme, sep, hexpart = header_256.partition("=")
    if scheme != "sha256" or not sep or len(hexpart) != 64 or not _HEX.issuperset(hexpart):
        return None
    return bytes.fromhex(hexpart)


def verify_signature(secrets: Sequence[bytes], body: bytes, header_256: str | None) -> bool:
    """True when ``header_256`` is ``sha256=`` + hex HMAC-SHA256 of ``body`` under one of ``secrets``.

    ``hmac.compare_digest`` runs exactly once per call, on two 32-byte values, whatever the input
    (missing or malformed headers included), so the number of calls and their operand lengths reveal
    nothing. With one secret it compares the claimed MAC with the expected MAC directly.

    With several secrets (rotation) one decisive compare needs the matching candidate chosen first.
    The choice is made on *blinded* values — HMAC under a random per-process key of the claimed MAC
    and of each expected MAC (the "double HMAC" construction). An attacker cannot predict a blinded
    value, so whatever timing the selection has carries no information about an expected MAC; the
    chosen expected MAC (the first one when nothing matches) is then compared with ``compare_digest``.
    """
    if not secrets:
        raise ValueError("at least one webhook secret is required")
    expected = [hmac.digest(key, body, "sha256") for key in secrets]
    claimed = _claimed_mac(header_256)
    # a malformed header still costs one full compare, against a value no secret can produce
    probe = claimed if claimed is not None else hashlib.sha256(_BLIND_KEY + body).digest()
    chosen = 0
    if len(expected) > 1:
        blinded = {hmac.digest(_BLIND_KEY, mac, "sha256"): i for i, mac in enumerate(expected)}
        chosen = blinded.get(hmac.digest(_BLIND_KEY, probe, "sha256"), 0)
    matched = hmac.compare_digest(probe, expected[chosen])
    return matched and claimed is not None


# --- W-02: parsing -------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)  # built in C; a shorter dict means a key repeated
    if len(out) != len(pairs):
        raise PayloadError("duplicate key in JSON object")
    return out


def _no_constants(name: str) -> Any:
    raise PayloadError(f"non-standard JSON constant {name}")


def parse_payload(body: bytes) -> dict[str, Any]:
    """Strict JSON: UTF-8 only, an object at the top, no duplicate keys, no NaN/Infinity."""
    try:
        text = body.decode("utf-8")
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except PayloadError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"invalid JSON body: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise PayloadError("the payload must be a JSON object")
    return data


# --- decisions -----------------------------------------------------------------------------------

COMMAND = "/backend-review"
RERUN_ACTION = "rerun"  # the identifier of our check run's requested action button
ALLOWED_PERMISSIONS = frozenset({"admin", "maintain", "write"})
PR_ACTIONS: Mapping[str, Trigger] = {
    "opened": "opened",
    "reopened": "reopened",
    "ready_for_review": "ready_for_review",
    "synchronize": "synchronize",
}
HELP_REPLY = compose(
    "backend-review reviews this pull request when someone with write access comments "
    "`/backend-review`. Options: `full` (review every change again), `focus=<category>` "
    "(one of {}), `help`.",
    inert_plain(", ".join(c.value for c in Category)),
)
UNKNOWN_OPTION_REPLY = fixed(
    "backend-review did not run: unknown option. Usage: `/backend-review`, `/backend-review full`, "
    "`/backend-review focus=<category>` or `/backend-review help`."
)


@dataclass(frozen=True, slots=True)
class Ignore:
    reason: str
    react: bool = False  # put one 👎 on the command comment (C-01); never a text reply


@dataclass(frozen=True, slots=True)
class AwaitMaintainer:
    """A fork PR from an author without write access: a neutral "awaiting maintainer" check (C-06)."""

    job: ReviewJob
    reason: str


@dataclass(frozen=True, slots=True)
class Enqueue:
    """Queue ``job``; what was decided about it travels in ``job.plan``."""

    job: ReviewJob  # ``head_sha`` is "" for commands: the worker pins it at authorisation (C-05)

    @classmethod
    def planned(cls, job: ReviewJob) -> Enqueue:
        """The worker's entry point: the receiver's decision as it was queued, to be re-checked."""
        return cls(job)

    @property
    def plan(self) -> JobPlan:
        return self.job.plan

    @property
    def facts(self) -> PrFacts:
        return self.job.plan.facts

    @property
    def kind(self) -> Kind:
        return self.job.plan.kind

    @property
    def authorize(self) -> str | None:
        return self.job.plan.authorize

    @property
    def on_deny(self) -> OnDeny:
        return self.job.plan.on_deny

    @property
    def needs_permission_check(self) -> str | None:
        return self.job.plan.authorize

    def with_plan(self, plan: JobPlan) -> Enqueue:
        return Enqueue(dataclasses.replace(self.job, plan=plan))


@dataclass(frozen=True, slots=True)
class Reject:
    """A signed delivery whose identities are impossible (W-02): a 400, never a job."""

    reason: str


Decision: TypeAlias = Enqueue | Ignore | AwaitMaintainer


class _Invalid(Exception):
    """Raised inside a route for an impossible identity; :func:`decide` turns it into :class:`Reject`."""


# GitHub's identities: ids are positive 64-bit integers; SHAs are 40 lowercase hex digits; logins are
# ASCII letters, digits and hyphens (legacy accounts may end in one; GHES adds "_"; apps end in "[bot]");
# repository names are ASCII letters, digits, ".", "-" and "_". Anything else was not sent by GitHub.
_MAX_ID = 2**63 - 1
_SHA = re.compile(r"[0-9a-f]{40}\Z")
_LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}(?:\[bot\])?\Z")
_REPO_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}\Z")


def _id(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_ID:
        return value
    raise _Invalid(f"invalid {what}")


def _opt_id(value: Any, what: str) -> int | None:
    return None if value is None else _id(value, what)


def _sha(value: Any, what: str) -> str:
    if isinstance(value, str) and _SHA.match(value):
        return value
    raise _Invalid(f"invalid {what}")


def _login(value: Any, what: str) -> str:
    if isinstance(value, str) and _LOGIN.match(value):
        return value
    raise _Invalid(f"invalid {what}")


def _text(value: Any) -> str:
    """Free text (titles, labels) carried into the job: lone surrogates and NUL cannot be stored."""
    text = _str(value)
    if text.isascii():
        return text.replace("\0", "") if "\0" in text else text
    return text.encode("utf-8", "replace").decode("utf-8").replace("\0", "")


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _is_bot(user: Mapping[str, Any]) -> bool:
    # "[bot]" cannot occur in a human login, so the suffix is a safe extra signal, never an allow
    return user.get("type") == "Bot" or _str(user.get("login")).endswith("[bot]")


def permission_allows(permission: str | None) -> bool:
    """C-01: only live admin/maintain/write allows; None (404, 5xx, timeout) and anything else deny."""
    return permission in ALLOWED_PERMISSIONS


def parse_command(body: str) -> tuple[Kind, str | None] | None:
    """C-04: None when the comment is not a command, else (kind, option).

    Only the first line counts, trimmed. The command token must be ASCII in the comment itself and
    equal :data:`COMMAND` after NFKC; at most one option may follow, from a fixed allowlist.
    """
    first = body.split("\n", 1)[0].strip()
    tokens = first.split()
    if not tokens or not tokens[0].isascii() or unicodedata.normalize("NFKC", tokens[0]) != COMMAND:
        return None
    options = [unicodedata.normalize("NFKC", t) for t in tokens[1:]]
    if not options:
        return "review", None
    if len(options) > 1:
        return "unknown_option", None
    option = options[0]
    if option == "help":
        return "help", None
    if option == "full":
        return "review", "full"
    name, sep, value = option.partition("=")
    if name == "focus" and sep and value in {c.value for c in Category}:
        return "review", option
    return "unknown_option", None


def _repo_ref(payload: Mapping[str, Any], number: Any, installation_id: int) -> PullRequestRef:
    repo = _obj(payload.get("repository"))
    owner = _login(_obj(repo.get("owner")).get("login"), "repository owner")
    name = repo.get("name")
    if not isinstance(name, str) or not _REPO_NAME.match(name) or name in (".", ".."):
        raise _Invalid("invalid repository name")
    repo_id = _opt_id(repo.get("id"), "repository id")
    return PullRequestRef(owner, name, _id(number, "pull request number"), installation_id, repo_id)


def _labels(obj: Mapping[str, Any]) -> tuple[str, ...]:
    raw = obj.get("labels")
    items = raw if isinstance(raw, list) else []
    return tuple(_text(_obj(label).get("name")) for label in items if _str(_obj(label).get("name")))


def _sender_denied(
    user: Mapping[str, Any], app_id: int | None, via_app: int | None, allowed: frozenset[int]
) -> Ignore | None:
    """C-03: our own app is always ignored; other bots only with an allowlisted app id."""
    if app_id is not None and via_app == app_id:
        return Ignore("sent by this app")
    if _is_bot(user) and (via_app is None or via_app not in allowed):
        return Ignore("sent by a bot that is not allowlisted")
    return None


def decide(
    event: str,
    payload: Mapping[str, Any],
    *,
    delivery_id: str,
    app_id: int | None,
    allowed_bot_app_ids: frozenset[int],
    known_installation: bool = True,
) -> Decision | Reject:
    """Route one verified delivery. Only allowlisted (event, action) pairs can produce work (W-06)."""
    action = _str(payload.get("action"))
    if event == "pull_request" and action in PR_ACTIONS:
        route = _pull_request
    elif event == "issue_comment" and action == "created":
        route = _issue_comment
    elif event == "check_run" and action in ("rerequested", "requested_action"):
        route = _check_run
    else:
        return Ignore(f"event {event}.{action or '-'} is not handled")
    raw_installation = _obj(payload.get("installation")).get("id")
    if raw_installation is None:
        return Ignore("no installation in the payload")
    try:
        installation_id = _id(raw_installation, "installation id")
        if not known_installation:
            return Ignore("unknown or inactive installation")
        return route(payload, action, delivery_id, installation_id, app_id, allowed_bot_app_ids)
    except _Invalid as exc:
        return Reject(str(exc))


def _pull_request(
    payload: Mapping[str, Any],
    action: str,
    delivery_id: str,
    installation_id: int,
    app_id: int | None,
    allowed: frozenset[int],
) -> Decision:
    pr = _obj(payload.get("pull_request"))
    head = _obj(pr.get("head"))
    ref = _repo_ref(payload, pr.get("number"), installation_id)
    head_sha = _sha(head.get("sha"), "head sha")
    base_sha = _obj(pr.get("base")).get("sha")
    before = payload.get("before") if action == "synchronize" else None
    sender = _obj(payload.get("sender")).get("login")
    if pr.get("state") != "open":
        return Ignore("pull request is not open")
    author = _obj(pr.get("user"))
    denied = _sender_denied(author, app_id, _int(_obj(pr.get("performed_via_github_app")).get("id")), allowed)
    if denied is not None:
        return Ignore(f"pull request author: {denied.reason}")
    head_repo = _str(_obj(head.get("repo")).get("full_name"))
    base_repo = _str(_obj(_obj(pr.get("base")).get("repo")).get("full_name"))
    fork = not head_repo or head_repo.lower() != base_repo.lower()  # a deleted fork has head.repo null
    login = _login(author.get("login"), "pull request author")
    facts = PrFacts(login, _text(pr.get("title")), _labels(pr), pr.get("draft") is True, fork)
    job = ReviewJob(
        pr=ref,
        head_sha=head_sha,
        trigger=PR_ACTIONS[action],
        delivery_id=delivery_id,
        base_sha=_sha(base_sha, "base sha") if base_sha is not None else None,
        before_sha=_sha(before, "before sha") if before is not None else None,
        sender=_login(sender, "sender login") if sender is not None else None,
        plan=push_plan(facts),
    )
    return Enqueue(job)


def push_plan(facts: PrFacts) -> JobPlan:
    """What a push asks of the worker (also for the live head a superseded job found, whose delivery
    may never come): on a fork PR, the author's live permission, else a neutral "awaiting maintainer"
    check (C-06); on a PR from the repository itself, nothing."""
    if facts.fork:
        return JobPlan(facts, authorize=facts.author, on_deny="await_maintainer")
    return JobPlan(facts)


def _issue_comment(
    payload: Mapping[str, Any],
    action: str,
    delivery_id: str,
    installation_id: int,
    app_id: int | None,
    allowed: frozenset[int],
) -> Decision:
    issue = _obj(payload.get("issue"))
    if not isinstance(issue.get("pull_request"), Mapping):
        return Ignore("comment on an issue, not a pull request")
    comment = _obj(payload.get("comment"))
    user = _obj(comment.get("user"))
    denied = _sender_denied(
        user, app_id, _int(_obj(comment.get("performed_via_github_app")).get("id")), allowed
    )
    if denied is not None:
        return denied
    parsed = parse_command(_str(comment.get("body")))
    if parsed is None:
        return Ignore("not a command")
    kind, option = parsed
    # parse_command let through only a known category
    focus = Category(option.removeprefix("focus=")) if option and option.startswith("focus=") else None
    ref = _repo_ref(payload, issue.get("number"), installation_id)
    comment_id = _id(comment.get("id"), "comment id")
    login = _login(user.get("login"), "comment author")
    if issue.get("state") != "open":
        return Ignore("pull request is not open")
    facts = PrFacts(
        _login(_obj(issue.get("user")).get("login"), "pull request author"),
        _text(issue.get("title")),
        _labels(issue),
    )
    job = ReviewJob(
        pr=ref,
        head_sha="",
        trigger="command",
        delivery_id=delivery_id,
        full=option == "full",
        comment_id=comment_id,
        sender=login,
        plan=JobPlan(facts, kind, authorize=login, on_deny="react", focus=focus),
    )
    return Enqueue(job)


def _check_run(
    payload: Mapping[str, Any],
    action: str,
    delivery_id: str,
    installation_id: int,
    app_id: int | None,
    allowed: frozenset[int],
) -> Decision:
    run = _obj(payload.get("check_run"))
    if app_id is None or _int(_obj(run.get("app")).get("id")) != app_id:
        return Ignore("check run belongs to another app")
    if (
        action == "requested_action"
        and _obj(payload.get("requested_action")).get("identifier") != RERUN_ACTION
    ):
        return Ignore("requested action is not allowlisted")
    sender = _obj(payload.get("sender"))
    denied = _sender_denied(sender, app_id, None, allowed)
    if denied is not None:
        return denied
    repo_id = _int(_obj(payload.get("repository")).get("id"))
    prs = run.get("pull_requests")
    number = None
    for item in prs if isinstance(prs, list) else []:
        # fork PRs are not listed on check runs; only a PR of this repository may be targeted
        if _int(_obj(_obj(_obj(item).get("base")).get("repo")).get("id")) == repo_id:
            number = _int(_obj(item).get("number"))
            break
    if number is None:
        return Ignore("check run is not attached to a pull request of this repository")
    ref = _repo_ref(payload, number, installation_id)
    login = _login(sender.get("login"), "sender login")
    job = ReviewJob(
        pr=ref,
        head_sha=_sha(run.get("head_sha"), "head sha"),
        trigger="rerequested",
        delivery_id=delivery_id,
        sender=login,
        check_run_id=_opt_id(run.get("id"), "check run id"),
        plan=JobPlan(PrFacts(author=""), authorize=login),
    )
    return Enqueue(job)


def authorize(decision: Decision, permission: str | None) -> Decision:
    """Second step of C-01/C-06: apply the live permission the worker fetched for ``authorize``.

    ``author_association`` is never consulted (C-02): the permission API is the only authority.
    """
    if not isinstance(decision, Enqueue) or decision.authorize is None:
        return decision
    if permission_allows(permission):
        return decision.with_plan(dataclasses.replace(decision.plan, authorize=None))
    reason = f"{decision.authorize} lacks write permission"
    if decision.on_deny == "await_maintainer":
        return AwaitMaintainer(decision.job, "fork pull request: awaiting a maintainer's /backend-review")
    return Ignore(reason, react=decision.on_deny == "react")


def apply_repo_config(decision: Decision, config: RepoConfig) -> Decision:
    """Filter by the base-branch config. Explicit commands and re-runs skip the author/label/title filters."""
    if not isinstance(decision, Enqueue):
        return decision
    if not config.enabled:
        return Ignore("disabled by the repository config")
    trigger = decision.job.trigger
    if trigger in ("command", "rerequested"):
        return decision
    facts = decision.facts
    if trigger == "synchronize" and not config.review_on_push:
        return Ignore("reviews on push are disabled by the repository config")
    if facts.draft and not config.review_drafts:
        return Ignore("draft pull request")
    if facts.author.lower() in {a.lower() for a in config.ignore_authors}:
        return Ignore("author ignored by the repository config")
    if set(facts.labels) & set(config.ignore_labels):
        return Ignore("label ignored by the repository config")
    title = facts.title.casefold()
    if any(k.casefold() in title for k in config.ignore_title_keywords):
        return Ignore("title keyword ignored by the repository config")
    if facts.fork and config.forks == "auto" and decision.on_deny == "await_maintainer":
        return decision.with_plan(dataclasses.replace(decision.plan, authorize=None))
    return decision


__all__ = [
    "COMMAND",
    "HELP_REPLY",
    "RERUN_ACTION",
    "UNKNOWN_OPTION_REPLY",
    "AwaitMaintainer",
    "Decision",
    "Enqueue",
    "Ignore",
    "PayloadError",
    "Reject",
    "apply_repo_config",
    "authorize",
    "decide",
    "parse_command",
    "parse_payload",
    "permission_allows",
    "push_plan",
    "verify_signature",
]
