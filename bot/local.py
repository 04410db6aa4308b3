"""`backend-review review` and `backend-review demo`: the review core on a git repository on disk."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from bot.checkout import GitSource, default_branch, merge_base, resolve_ref, run_git, workspace
from bot.config import parse_repo_config
from bot.diff import PathFilters
from bot.errors import ConfigError, UsageError, WorkspaceError
from bot.model_choice import provider_from_env
from bot.models import Severity
from bot.pipeline import ReviewInputs, ReviewOutcome, review_workspace, worst_severity
from bot.publish.local import LocalPublisher, check_output, emit, render
from bot.terminal import ReportFooter, plain

CONFIG_PATH = ".github/backend-review.yml"


class _Progress:
    """Progress on stderr, only when a person is watching and only for reviews that take a while:
    nothing shows for the first second; then the current step is kept on one line, cleared at the end."""

    DELAY = 1.0

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self._stream = stream or sys.stderr
        self._started = time.monotonic()
        self._current = ""
        self._shown = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        if enabled:
            self._timer = threading.Timer(self.DELAY, self._show)
            self._timer.daemon = True
            self._timer.start()

    def __call__(self, line: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._current = plain(line)
        if time.monotonic() - self._started >= self.DELAY:
            self._show()

    def _show(self) -> None:
        with self._lock:
            if self._current:
                self._stream.write(f"\r\x1b[2K\x1b[2m… {self._current}\x1b[0m")
                self._stream.flush()
                self._shown = True

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            if self._shown:
                self._stream.write("\r\x1b[2K")
                self._stream.flush()
            self._current = ""


def resolve_color(choice: str, stream: TextIO, environ: Mapping[str, str]) -> bool:
    """--color auto|always|never; auto honours NO_COLOR and FORCE_COLOR, then asks the terminal."""
    if choice != "auto":
        return choice == "always"
    if environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    return stream.isatty()


def resolve_format(fmt: str | None, *, to_terminal: bool, environ: Mapping[str, str]) -> str:
    """The readable report for a person at a terminal; Markdown for files, pipes and CI."""
    if fmt:
        return fmt
    return "text" if to_terminal and not environ.get("CI") else "markdown"


def footer_for(outcome: ReviewOutcome, seconds: float) -> ReportFooter:
    agent = outcome.agent
    if agent is None:
        reviewer = "offline checks only (no model)"
    elif agent.status == "ok":
        reviewer = f"model {agent.usage.model}" if agent.usage and agent.usage.model else "model"
    else:
        reviewer = "offline checks only (model unavailable)"
    return ReportFooter(seconds=seconds, reviewer=reviewer)


def exit_code(outcome: ReviewOutcome, fail_on: str | None) -> int:
    worst = worst_severity(outcome.draft)
    if fail_on is None or worst is None:
        return 0
    return 1 if worst.at_least(Severity(fail_on)) else 0


async def _read_base_config(
    repo: Path, base_sha: str, path: str = CONFIG_PATH
) -> tuple[str | None, list[str]]:
    """The repo config as of the base commit (never the head: the PR must not configure its own review)."""
    try:
        text = (await run_git(["show", f"{base_sha}:{path}"], cwd=repo)).decode("utf-8", "replace")
    except WorkspaceError:
        return None, []
    return text, []


async def _resolve(repo: Path, ref: str) -> str:
    try:
        return await resolve_ref(repo, ref)
    except WorkspaceError:
        raise UsageError(f"unknown ref {ref!r}: no such branch, tag or commit") from None


async def review_repository(
    repo: Path,
    *,
    base: str | None,
    head: str,
    model: str | None,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    max_comments: int | None = None,
    fail_on: str | None = None,
    title: str = "",
    body: str = "",
    environ: Mapping[str, str] | None = None,
    progress: _Progress | None = None,
    repo_name: str | None = None,
    already_posted: frozenset[str] = frozenset(),
    config_path: str = CONFIG_PATH,
) -> ReviewOutcome:
    """``repo_name`` ("owner/name") and ``already_posted`` (fingerprints of earlier bot comments) are
    for callers that publish to GitHub (``backend-review ci``)."""
    env = os.environ if environ is None else environ
    say = progress or _Progress(False)
    if not (repo / ".git").exists() and not (repo / "HEAD").exists():
        raise UsageError(f"not a git repository: {repo}")
    try:
        head_sha = await _resolve(repo, head)
        if base:
            base_sha = await _resolve(repo, base)
        else:
            branch = await default_branch(repo)
            if branch is None:
                raise UsageError("no default branch found; pass --base REF")
            found = await merge_base(repo, branch, head_sha)
            if found is None:
                raise UsageError(f"{branch} and {head} share no history; pass --base REF")
            base_sha = found
    except WorkspaceError as exc:
        raise UsageError(str(exc)) from exc
    config_text, _ = await _read_base_config(repo, base_sha, config_path)
    config, problems = parse_repo_config(config_text)
    for problem in problems:
        print(f"backend-review: {config_path}: {problem}", file=sys.stderr)
    provider = provider_from_env(model, env)
    filters = PathFilters(include=tuple(include) or config.include, exclude=tuple(exclude) + config.exclude)
    inputs = ReviewInputs(
        title=title,
        body=body,
        repo=repo_name,
        filters=filters,
        max_inline=max_comments or config.max_inline_comments,
        fail_on=Severity(fail_on) if fail_on else config.fail_on,
        focus=config.focus,
        already_posted=already_posted,
        notes=tuple(f"{config_path}: {p}" for p in problems),
    )
    say(f"preparing workspace at {head_sha[:7]}")
    try:
        async with workspace(GitSource.local(repo), head_sha, base_sha) as ws:
            outcome = await review_workspace(ws, inputs, provider=provider, progress=say)
        for note in outcome.rule_notes:
            print(f"backend-review: {note}", file=sys.stderr)
        return outcome
    finally:
        if provider is not None:
            await provider.aclose()  # the SDK's connection pool, before the event loop closes


def run_local_review(args: argparse.Namespace) -> int:
    if args.max_comments is not None and not 1 <= args.max_comments <= 50:
        raise UsageError("--max-comments must be between 1 and 50")
    check_output(args.output)
    to_terminal = args.output is None and sys.stdout.isatty()
    fmt = resolve_format(args.format, to_terminal=to_terminal, environ=os.environ)
    started = time.monotonic()
    progress = _Progress(sys.stderr.isatty())
    try:
        outcome = asyncio.run(
            review_repository(
                Path(args.path).resolve(),
                base=args.base,
                head=args.head,
                model=args.model,
                include=tuple(args.include),
                exclude=tuple(args.exclude),
                max_comments=args.max_comments,
                fail_on=args.fail_on,
                progress=progress,
            )
        )
    finally:
        progress.close()
    color = args.output is None and resolve_color(args.color, sys.stdout, os.environ)
    empty = nothing_to_review(outcome)
    if empty and fmt in ("text", "markdown"):
        emit(f"backend-review: {empty}", args.output)
        return 0
    if empty:
        print(f"backend-review: {empty}", file=sys.stderr)
    footer = footer_for(outcome, time.monotonic() - started)
    publisher = LocalPublisher(fmt, args.output, color=color, width=_width(to_terminal), footer=footer)
    asyncio.run(publisher.publish(outcome))
    return exit_code(outcome, args.fail_on)


def _width(to_terminal: bool) -> int:
    return shutil.get_terminal_size((100, 24)).columns if to_terminal else 100


def nothing_to_review(outcome: ReviewOutcome) -> str | None:
    """Say so when there was nothing to read, rather than "no issues"."""
    cs = outcome.changeset
    if not cs.files:
        return f"nothing to review: {cs.base_sha[:7]}..{cs.head_sha[:7]} changes no file"
    if not cs.reviewable_files:
        reasons = sorted({f.skip_reason or "skipped" for f in cs.skipped_files})
        return f"nothing to review: all {len(cs.files)} changed file(s) were skipped ({'; '.join(reasons)})"
    return None


DEMO_ENV = {
    "GIT_AUTHOR_NAME": "Demo Author",
    "GIT_AUTHOR_EMAIL": "demo@example.invalid",
    "GIT_COMMITTER_NAME": "Demo Author",
    "GIT_COMMITTER_EMAIL": "demo@example.invalid",
}


async def build_demo_repository(root: Path) -> Path:
    """A throwaway repository: an orders service on main and a PR branch planting backend defects."""
    from bot import demo

    repo = root / "orders-service"
    repo.mkdir()
    await run_git(["init", "-q", "-b", "main"], cwd=repo)
    for rel, text in demo.BASE.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    await run_git(["add", "-A"], cwd=repo)
    await run_git(["commit", "-q", "-m", "orders service"], cwd=repo, extra_env=DEMO_ENV)
    await run_git(["checkout", "-q", "-b", "feature/user-search"], cwd=repo)
    for rel, text in demo.PR.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    await run_git(["add", "-A"], cwd=repo)
    await run_git(["commit", "-q", "-m", demo.PR_TITLE], cwd=repo, extra_env=DEMO_ENV)
    return repo


def run_demo(args: argparse.Namespace) -> int:
    from bot import demo

    progress = _Progress(sys.stderr.isatty())
    started = time.monotonic()

    async def go() -> ReviewOutcome:
        with tempfile.TemporaryDirectory(prefix="backend-review-demo-") as tmp:
            repo = await build_demo_repository(Path(tmp))
            return await review_repository(
                repo,
                base="main",
                head="HEAD",
                model=args.model,
                title=demo.PR_TITLE,
                body=demo.PR_BODY,
                progress=progress,
            )

    try:
        outcome = asyncio.run(go())
    finally:
        progress.close()
    to_terminal = sys.stdout.isatty()
    fmt = resolve_format(args.format, to_terminal=to_terminal, environ=os.environ)
    if fmt == "markdown":
        header = f"# Pull request: {demo.PR_TITLE}\n\n_The review backend-review would post on GitHub:_\n\n"
        emit(header + render(outcome, "markdown"), None)
    else:
        color = resolve_color(args.color, sys.stdout, os.environ)
        footer = footer_for(outcome, time.monotonic() - started)
        asyncio.run(
            LocalPublisher(fmt, None, color=color, width=_width(to_terminal), footer=footer).publish(outcome)
        )
    return 0


__all__ = ["ConfigError", "build_demo_repository", "review_repository", "run_demo", "run_local_review"]
