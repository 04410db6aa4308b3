"""`backend-review ci`: review the pull request of a GitHub Actions run and publish like the App.

Inputs come from the runner's environment: ``GITHUB_EVENT_NAME``/``GITHUB_EVENT_PATH`` (a
``pull_request`` event, or an ``issue_comment`` carrying ``/backend-review`` on a PR), the checkout in
``GITHUB_WORKSPACE``, ``GITHUB_REPOSITORY``, ``GITHUB_API_URL``, ``GITHUB_TOKEN`` and
``GITHUB_STEP_SUMMARY``. The review core is the local command's (:func:`bot.local.review_repository`).

Publishing mirrors the App's job: one ``COMMENT`` review pinned to the head SHA, deduplicated against
the bot's earlier fingerprints, and a check run whose conclusion code computes. A token that may not
write (a fork PR's read-only ``GITHUB_TOKEN``: 403) falls back to workflow-command annotations and
the job summary. Without a model key the model is skipped and the offline rules run (A-02).

The Actions log of a public repository is public and the runner executes ``::commands::`` found in
it, so nothing untrusted is printed raw (O-07): free text is fenced with ``::stop-commands::``,
annotations are escaped, prompts and tool output never appear (K-06). Nothing is ever written to
``$GITHUB_ENV`` or ``$GITHUB_OUTPUT``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from githubkit import GitHub, TokenAuthStrategy

from bot import __version__
from bot.checkout import GitSource, fetch_history, git_dir_of, history_ready
from bot.config import CONFIG_PATH
from bot.errors import ConfigError, GitHubUnavailable, UsageError, WorkspaceError
from bot.events import PayloadError, parse_command, parse_payload, permission_allows
from bot.github import GitHubClient, GitHubError, clone_url
from bot.local import exit_code, review_repository
from bot.model_choice import MissingModelKey, resolve
from bot.models import PullRequestRef
from bot.pipeline import ReviewOutcome
from bot.publish.base import Published
from bot.publish.ci import CiPublisher, log_annotations, write_summary
from bot.publish.history import read_history
from bot.publish.local import render
from bot.redact import SECRETS
from bot.settings import model_settings
from bot.workflow_commands import escape_data, fenced

MAX_EVENT_BYTES = 25 * 1024 * 1024  # GitHub's webhook payload cap
CI_BOT_LOGIN = "github-actions[bot]"
MODEL_SKIPPED = "model skipped: no API key (fork PR?)"


@dataclass(frozen=True)
class CiContext:
    """What the run is about, from the event file and (for a comment) the API."""

    pr: PullRequestRef
    head_sha: str
    base_sha: str
    title: str
    body: str
    trigger: str


class _Skip(Exception):
    """Nothing to review in this run (another event, not a command, …): exit 0 with a note."""


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise UsageError(
            f"${name} is not set: `backend-review ci` runs inside GitHub Actions "
            "(elsewhere use `backend-review review --base origin/<branch>`)"
        )
    return value


def _read_event(env: Mapping[str, str]) -> dict[str, Any]:
    path = Path(_require(env, "GITHUB_EVENT_PATH"))
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_EVENT_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read the event file: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > MAX_EVENT_BYTES:
        raise UsageError("the event file is larger than GitHub's 25 MB payload cap")
    try:
        return parse_payload(raw)
    except PayloadError as exc:
        raise UsageError(f"the event file is not a valid event: {exc}") from None


def _repo_ref(env: Mapping[str, str], number: int, payload: Mapping[str, Any]) -> PullRequestRef:
    owner, sep, name = _require(env, "GITHUB_REPOSITORY").partition("/")
    if not sep or not owner or not name or "/" in name:
        raise UsageError("$GITHUB_REPOSITORY must be owner/name")
    repo_id = (payload.get("repository") or {}).get("id")
    return PullRequestRef(owner, name, number, None, repo_id if isinstance(repo_id, int) else None)


def _github(env: Mapping[str, str], token: str) -> GitHub[TokenAuthStrategy]:
    return GitHub(
        TokenAuthStrategy(token),
        base_url=env.get("GITHUB_API_URL") or "https://api.github.com",
        http_cache=False,
        auto_retry=False,
        rest_api_validate_body=False,
        timeout=30.0,
    )


async def _context(
    env: Mapping[str, str], payload: dict[str, Any], gh: GitHubClient | None, pr_number: int
) -> CiContext:
    """Head/base and PR text: from the event for ``pull_request``, live from the API for a command."""
    pr = _repo_ref(env, pr_number, payload)
    pull = payload.get("pull_request")
    if isinstance(pull, dict):
        head, base = pull.get("head") or {}, pull.get("base") or {}
        return CiContext(
            pr,
            str(head.get("sha") or ""),
            str(base.get("sha") or ""),
            str(pull.get("title") or ""),
            str(pull.get("body") or ""),
            str(payload.get("action") or "opened"),
        )
    if gh is None:
        raise UsageError("a /backend-review comment needs $GITHUB_TOKEN to look up the pull request")
    live = await gh.get_pull(pr)
    if live.state != "open":
        raise _Skip("the pull request is not open")
    return CiContext(pr, live.head_sha, live.base_sha, live.title, live.body, "command")


def _event_pr_number(env: Mapping[str, str], payload: Mapping[str, Any]) -> tuple[int, str | None]:
    """The PR number, and for a command the commenter whose permission must be checked (C-01)."""
    event = env.get("GITHUB_EVENT_NAME", "")
    if event == "pull_request":
        number = (payload.get("pull_request") or {}).get("number") or payload.get("number")
        if not isinstance(number, int):
            raise UsageError("the pull_request event has no pull request number")
        return number, None
    if event == "issue_comment":
        issue = payload.get("issue") or {}
        if payload.get("action") != "created" or not isinstance(issue.get("pull_request"), dict):
            raise _Skip("not a new comment on a pull request")
        comment = payload.get("comment") or {}
        command = parse_command(str(comment.get("body") or ""))
        if command is None or command[0] != "review":
            raise _Skip("the comment is not a /backend-review command")
        login = str((comment.get("user") or {}).get("login") or "")
        if not isinstance(issue.get("number"), int) or not login:
            raise UsageError("the issue_comment event has no issue number or commenter")
        return int(issue["number"]), login
    raise _Skip(f"event {event or '(unset)'} is not handled: use pull_request or issue_comment")


# ------------------------------------------------------------------------------------------ git


async def ensure_commits(repo: Path, source: GitSource | None, head: str, base: str) -> None:
    """Fetch head and base into the Actions checkout when it lacks them (``actions/checkout`` fetches
    one merge commit by default), deepening until their merge base is there. The token travels in the
    fetch's environment only (``persist-credentials: false`` leaves none in ``.git/config``)."""
    git_dir = await git_dir_of(repo)
    if await history_ready(git_dir, head, base):
        return
    if source is None:
        raise UsageError(
            "the checkout lacks the pull request's commits and there is no $GITHUB_TOKEN to fetch them; "
            "use actions/checkout with fetch-depth: 0"
        )
    await fetch_history(git_dir, source, head, base, fresh=True)


# ------------------------------------------------------------------------------------------ command


def _model_choice(args: argparse.Namespace, env: Mapping[str, str], say: TextIO) -> str | None:
    """``--model`` as given, or ``"none"`` when the model has no key (a fork PR gets no secrets)."""
    try:
        choice = resolve(model_settings(env, args.model))
    except MissingModelKey:
        say.write(f"backend-review: {MODEL_SKIPPED}; running the offline checks only\n")
        return "none"
    if choice is None:
        say.write("backend-review: no model configured: offline checks only\n")
        return "none"
    return str(args.model) if args.model is not None else None


def _safe_config_path(value: str | None) -> str:
    path = value or CONFIG_PATH
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts) or any(ord(c) < 0x20 for c in path):
        raise UsageError("--config must be a relative path inside the repository")
    return path


async def _run(
    args: argparse.Namespace,
    env: Mapping[str, str],
    out: TextIO,
    payload: dict[str, Any],
    workspace_dir: Path,
) -> int:
    config_path = _safe_config_path(args.config)
    token = env.get("GITHUB_TOKEN", "")
    if token:
        SECRETS.add(token)
    number, commenter = _event_pr_number(env, payload)
    pr = _repo_ref(env, number, payload)
    async with contextlib.AsyncExitStack() as stack:
        gh: GitHubClient | None = None
        if token:
            github = await stack.enter_async_context(_github(env, token))
            # reviews posted with the workflow's GITHUB_TOKEN carry this login
            gh = GitHubClient(github, token=token, bound=pr, installation_id=0, author=CI_BOT_LOGIN)
        if (
            gh is not None
            and commenter is not None
            and not permission_allows(await gh.get_permission(pr, commenter))
        ):
            raise _Skip("the commenter may not run /backend-review (write access needed)")
        ctx = await _context(env, payload, gh, number)
        out.write(f"backend-review {__version__}: reviewing {pr} at {ctx.head_sha[:12]}\n")
        out.write(fenced(f"title: {escape_data(ctx.title)}"))
        model = _model_choice(args, env, out)
        source = None
        if token:
            api = env.get("GITHUB_API_URL") or "https://api.github.com"
            source = GitSource.https(clone_url(api, pr.owner, pr.repo), token)
        await ensure_commits(workspace_dir, source, ctx.head_sha, ctx.base_sha)
        posted = frozenset[str]()
        if gh is not None:
            try:
                posted = (await read_history(gh, pr)).fingerprints
            except GitHubError as exc:
                out.write(f"backend-review: earlier comments not read (HTTP {exc.status or '?'})\n")
        outcome = await review_repository(
            workspace_dir,
            base=ctx.base_sha,
            head=ctx.head_sha,
            model=model,
            max_comments=args.max_comments,
            fail_on=args.fail_on,
            title=ctx.title,
            body=ctx.body,
            environ=env,
            repo_name=pr.full_name,
            already_posted=posted,
            config_path=config_path,
        )
        if gh is None:
            published = Published(refused=["review", "check run"])
        else:
            publisher = CiPublisher(gh, pr, ctx.head_sha, ctx.trigger, with_review=not args.no_review)
            published = await publisher.publish(outcome)
    return _report(args, env, out, outcome, published)


def _report(
    args: argparse.Namespace, env: Mapping[str, str], out: TextIO, outcome: ReviewOutcome, done: Published
) -> int:
    draft = outcome.draft
    report = render(outcome, args.format or "text")  # the Actions log: plain text, no colour
    if args.output:
        Path(args.output).write_text(report if report.endswith("\n") else report + "\n", encoding="utf-8")
    else:
        out.write(fenced(report))
    if args.sarif:
        Path(args.sarif).write_text(render(outcome, "sarif"), encoding="utf-8")
    if "check run" in done.refused:
        for line in log_annotations(draft):
            out.write(line + "\n")
    summary = write_summary(env, draft)
    if done.review_id is not None:
        out.write(f"backend-review: posted review {done.review_id}\n")
    if done.check_id is not None:
        out.write(f"backend-review: check run {done.check_id}: {outcome.conclusion}\n")
    if done.refused:
        why = "no $GITHUB_TOKEN" if not env.get("GITHUB_TOKEN") else "the token may not write (403)"
        where = "annotations" + (" and the job summary" if summary else "")
        out.write(f"backend-review: no {' or '.join(done.refused)} posted: {why}; results are in {where}\n")
    code = exit_code(outcome, args.fail_on)
    out.write(f"backend-review: {len(draft.findings)} finding(s); exit {code}\n")
    return code


def run_ci(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None, out: TextIO | None = None
) -> int:
    """Entry point of ``backend-review ci``; ``environ`` and ``out`` default to the process's own."""
    env = os.environ if environ is None else environ
    stream = out or sys.stdout
    try:
        payload = _read_event(env)
        workspace_dir = Path(_require(env, "GITHUB_WORKSPACE")).resolve()
        return asyncio.run(_run(args, env, stream, payload, workspace_dir))
    except _Skip as skip:
        stream.write(f"backend-review: nothing to do: {skip}\n")
        return 0
    except (GitHubError, GitHubUnavailable) as exc:
        raise ConfigError(f"GitHub API: {exc}") from None
    except WorkspaceError as exc:
        raise UsageError(str(exc)) from None


__all__ = [
    "MODEL_SKIPPED",
    "CiContext",
    "ensure_commits",
    "run_ci",
]
