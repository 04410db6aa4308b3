"""`backend-review review` and `backend-review demo`: the review core on a git repository on disk."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from bot import __version__
from bot.checkout import GitSource, default_branch, merge_base, resolve_ref, run_git, workspace
from bot.config import parse_repo_config
from bot.diff import PathFilters
from bot.errors import ConfigError, UsageError, WorkspaceError
from bot.formats import to_codeclimate, to_json, to_markdown, to_sarif, to_text
from bot.model_choice import provider_from_env
from bot.models import Severity
from bot.pipeline import ReviewInputs, ReviewOutcome, review_workspace, worst_severity

CONFIG_PATH = ".github/backend-review.yml"


class _Progress:
    """Progress lines on stderr, only when a person is watching."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, line: str) -> None:
        if self.enabled:
            print(f"\033[2m… {line}\033[0m", file=sys.stderr, flush=True)


def render(outcome: ReviewOutcome, fmt: str, *, color: bool = False) -> str:
    draft = outcome.draft
    if fmt == "json":
        return to_json(draft, outcome.changeset)
    if fmt == "sarif":
        return to_sarif(draft, tool_version=__version__)
    if fmt == "codeclimate":
        return to_codeclimate(draft)
    if fmt == "markdown":
        return to_markdown(draft)
    return to_text(draft, color=color)


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


def _emit(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text if text.endswith("\n") else text + "\n")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def run_local_review(args: argparse.Namespace) -> int:
    if args.max_comments is not None and not 1 <= args.max_comments <= 50:
        raise UsageError("--max-comments must be between 1 and 50")
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
            progress=_Progress(sys.stderr.isatty()),
        )
    )
    color = args.output is None and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    _emit(render(outcome, args.format, color=color), args.output)
    return exit_code(outcome, args.fail_on)


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
                progress=_Progress(sys.stderr.isatty()),
            )

    outcome = asyncio.run(go())
    if args.format == "markdown":
        header = f"# Pull request: {demo.PR_TITLE}\n\n_The review backend-review would post on GitHub:_\n\n"
        _emit(header + render(outcome, "markdown"), None)
    else:
        _emit(render(outcome, args.format, color=sys.stdout.isatty()), None)
    return 0


__all__ = ["ConfigError", "build_demo_repository", "review_repository", "run_demo", "run_local_review"]
