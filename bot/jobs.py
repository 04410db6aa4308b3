"""The GitHub App's job: one queued review, from live re-checks to one posted review and check run.

Steps (each refuses early, before money is spent), with one read and one write token per job
(:class:`bot.tokens.JobTokens`) and every write made by :class:`bot.publish.github_app.AppPublisher`:

1. fetch (read token): live PR state, head SHA (W-04, C-05), command comment still there, base-branch
   config (P-04), live permission for commands and fork PRs (C-01, C-06);
2. decide: skip, await a maintainer, reply to a help command, or review;
3. check run opened (write token), 👀 on a command; gates: size (D-01), daily token budget (D-04);
4. review (read token): hardened checkout by SHA, review core (bot.pipeline);
5. publish (write token): lease and head re-checked (a moved head drops the review as superseded), one
   COMMENT review, check run completed with a conclusion computed by code, 👍 on a command.

Everything posted is sanitised text (O-03): a failure is reported with a short fixed reason for its
kind, and the error's own text (git's stderr, a library's message) goes to the log only.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bot import metrics
from bot.agent.providers import Provider
from bot.agent.runner import AgentBudgets
from bot.checkout import GitSource, workspace
from bot.config import CONFIG_PATH, RepoConfig, parse_repo_config
from bot.diff import PathFilters
from bot.errors import (
    BudgetExceeded,
    GitHubUnavailable,
    ModelUnavailable,
    Retryable,
    SecretLeak,
    Superseded,
    TokenScopeError,
    WorkspaceError,
)
from bot.events import (
    HELP_REPLY,
    UNKNOWN_OPTION_REPLY,
    AwaitMaintainer,
    Enqueue,
    Ignore,
    apply_repo_config,
    authorize,
    push_plan,
)
from bot.github import GitHubApp, GitHubClient, GitHubError, PullInfo
from bot.ledger import TokenLedger
from bot.log import bind, get_logger
from bot.models import PrFacts, ReviewJob
from bot.pipeline import ReviewInputs, ReviewOutcome, review_workspace
from bot.publish.base import Published
from bot.publish.github_app import AppPublisher, CheckRun
from bot.publish.history import read_history
from bot.publish.markers import ReviewHistory
from bot.queue.base import ClaimedJob
from bot.repocache import RepoCache
from bot.sanitize import (
    Sanitised,
    SanitisedText,
    code_span,
    compose,
    fixed,
    inert_plain,
    plain_text,
)
from bot.tokens import JobTokens
from bot.worker import SHUTDOWN

log = get_logger(__name__)


@dataclass(frozen=True)
class JobLimits:
    max_files: int = 300
    max_changed_lines: int = 5000
    max_diff_bytes: int = 2_000_000
    max_checkout_bytes: int = 1_000_000_000  # S-09: the head tree, checked before checkout
    max_checkout_files: int = 150_000  # S-09: likewise (Linux has ~90k files; 200k empty ones is a bomb)
    daily_token_budget: int = 2_000_000
    max_attempts: int = 3


@dataclass
class JobDeps:
    github: GitHubApp
    ledger: TokenLedger
    provider_factory: Callable[[], Provider | None]  # None: offline checks only
    limits: JobLimits = dataclasses.field(default_factory=JobLimits)
    budgets: AgentBudgets = dataclasses.field(default_factory=AgentBudgets)
    scratch_root: Path | None = None
    git_base_url: str | None = None  # clone host override (GHES); default derived from the API URL
    repo_cache: RepoCache | None = None  # persistent per-repository objects (issue 10); None: fetch afresh
    # extends the job's lease; False when another worker has taken the job over (its lease expired)
    lease_check: Callable[[ClaimedJob], Awaitable[bool]] | None = None


def failure_reason(error: BaseException) -> Sanitised:
    """What a failed job says on the PR: a fixed reason for the kind of failure, never the error's text
    (git's stderr echoes values from the PR, such as a `.gitmodules` URL; O-03)."""
    if isinstance(error, WorkspaceError):
        return fixed("the pull request's commits could not be fetched or read.")
    if isinstance(error, ModelUnavailable):
        return fixed("the model provider did not answer.")
    if isinstance(error, GitHubError | GitHubUnavailable):
        return fixed("GitHub's API refused or failed a request.")
    if isinstance(error, Retryable):
        return fixed("a temporary failure.")
    if isinstance(error, SecretLeak):
        return fixed("the review text contained a secret, so nothing was posted.")
    if isinstance(error, BudgetExceeded):
        return fixed("the pull request is over a size or budget limit.")
    if isinstance(error, TokenScopeError):
        return fixed("a request outside this repository was refused.")
    return fixed("an internal error; the operator's logs have the details.")


def _describe(job: ReviewJob) -> str:
    return f"{job.pr}@{job.head_sha[:7] or '?'}"


def _pr_facts(pull: PullInfo, job: ReviewJob) -> PrFacts:
    fork = pull.head_repo_full_name is None or pull.head_repo_full_name.lower() != job.pr.full_name.lower()
    return PrFacts(author=pull.user_login, title=pull.title, labels=pull.labels, draft=pull.draft, fork=fork)


@dataclass(frozen=True)
class _Facts:
    """What the fetch step learned with the read token."""

    job: ReviewJob  # head and base pinned
    pull: PullInfo
    history: ReviewHistory
    config: RepoConfig
    problems: list[str]
    decision: Enqueue | Ignore | AwaitMaintainer


class ReviewJobRunner:
    """The worker's ``JobHandler`` for GitHub App jobs: fetch facts → decide → gate → check run →
    review → publish, with one read and one write token (:class:`~bot.tokens.JobTokens`) and every
    write through :class:`~bot.publish.github_app.AppPublisher`."""

    def __init__(self, deps: JobDeps) -> None:
        self.deps = deps

    async def __call__(self, claimed: ClaimedJob) -> str:
        job = claimed.job
        with bind(job=claimed.id, delivery=job.delivery_id, pr=_describe(job), attempt=claimed.attempt):
            async with JobTokens(self.deps.github, job) as tokens:
                try:
                    outcome = await self._run(claimed, tokens)
                except Superseded as exc:
                    moved = f" by {exc.live_head[:7]}" if exc.live_head else ""
                    await self._close_orphans(
                        claimed, tokens, "skipped", plain_text(f"Superseded{moved}"), inert_plain(f"{exc}.")
                    )
                    raise
                await self._close_orphans(
                    claimed, tokens, "neutral", plain_text("Review skipped"), inert_plain(f"{outcome}.")
                )
                return outcome

    async def _close_orphans(
        self,
        claimed: ClaimedJob,
        tokens: JobTokens,
        conclusion: str,
        title: SanitisedText,
        summary: Sanitised,
    ) -> None:
        """A retried job ending without a review: complete the check run an earlier attempt opened and
        could not close (its worker was killed), so no check is left spinning. The first attempt has
        none, and a run this attempt completed is not listed."""
        if claimed.attempt < 2:
            return
        out = AppPublisher(tokens, claimed.job, job_id=claimed.id, attempt=claimed.attempt)
        try:
            await out.close_unfinished(conclusion, title, summary)
        except Exception as exc:  # best effort: the job's own outcome stands
            log.warning("could not close an earlier attempt's check run", error=type(exc).__name__)

    async def on_dead(self, claimed: ClaimedJob, error: BaseException) -> None:
        """The job failed for good: say so on the PR (a neutral check; 😕 on a command)."""
        job = claimed.job
        with bind(job=claimed.id, delivery=job.delivery_id, pr=_describe(job)):
            # the detail is for the operator only; the log redacts secrets
            log.warning("job failed for good", kind=type(error).__name__, error=str(error)[:2000])
            summary = compose(
                "backend-review could not complete this review: {} The job ({}) will "
                "not be retried; comment `/backend-review` to try again.",
                failure_reason(error),
                code_span(claimed.id),
            )
            try:
                async with JobTokens(self.deps.github, job) as tokens:
                    await AppPublisher(tokens, job, job_id=claimed.id).report_failure(summary)
            except Exception as exc:  # the failure report itself is best effort
                log.warning("could not report the failed job", error=type(exc).__name__)

    async def _run(self, claimed: ClaimedJob, tokens: JobTokens) -> str:
        fetch_started = metrics.clock()
        facts = await self._fetch(claimed, await tokens.read())
        if isinstance(facts, str):
            return facts
        metrics.phase_since("fetch", fetch_started)
        job, decision = facts.job, facts.decision
        out = AppPublisher(
            tokens,
            job,
            job_id=claimed.id,
            attempt=claimed.attempt,
            focused=job.plan.focus is not None,
            # a command's permission was for its own head: the live head is planned like a push
            follow_up=lambda live: push_plan(_pr_facts(live, job)),
        )
        if isinstance(decision, Ignore):
            if decision.react:
                await out.react("-1")
            log.info("job skipped", reason=decision.reason)
            return f"skipped: {decision.reason}"
        if isinstance(decision, AwaitMaintainer):
            await out.neutral_check(plain_text("Awaiting a maintainer"), inert_plain(decision.reason))
            return "awaiting maintainer"
        if decision.kind in ("help", "unknown_option"):
            await out.reply(HELP_REPLY if decision.kind == "help" else UNKNOWN_OPTION_REPLY)
            return f"replied: {decision.kind}"
        return await self._review(claimed, out, facts)

    async def _fetch(self, claimed: ClaimedJob, gh: GitHubClient) -> _Facts | str:
        """Live re-checks with the read token; a string is the reason the job stops here."""
        job = claimed.job
        pull = await gh.get_pull(job.pr)
        if pull.state != "open":
            return "skipped: pull request is not open"
        # C-05: a command pins the head it was authorised on; a push-triggered job owns its SHA
        head_sha = job.head_sha or pull.head_sha
        history = await read_history(gh, job.pr)
        if pull.head_sha != head_sha:
            # deliveries come in any order and can be lost: the live head gets a job of its own
            # (the worker queues it) unless this App's newest review is already on it
            wanted = pull.head_sha if history.last_head != pull.head_sha else None
            moved = f"head moved from {head_sha[:7]} to {pull.head_sha[:7]}"
            raise Superseded(moved, live_head=wanted, plan=push_plan(_pr_facts(pull, job)))
        if job.trigger == "synchronize" and history.last_head == head_sha and history.last_job != claimed.id:
            return "skipped: this head was already reviewed"
        if job.comment_id is not None and not await gh.comment_exists(job.pr, job.comment_id):
            return "skipped: the command comment was deleted"
        config, problems = parse_repo_config(await gh.get_file_text(job.pr, CONFIG_PATH, pull.base_sha))
        # the receiver's plan, re-checked: facts from the live PR, then the config and the permission
        planned = Enqueue.planned(job).with_plan(dataclasses.replace(job.plan, facts=_pr_facts(pull, job)))
        decision: Enqueue | Ignore | AwaitMaintainer = apply_repo_config(planned, config)
        if isinstance(decision, Enqueue) and decision.needs_permission_check:
            permission = await gh.get_permission(job.pr, decision.needs_permission_check)
            decision = authorize(decision, permission)
        job = dataclasses.replace(job, head_sha=head_sha, base_sha=pull.base_sha)
        return _Facts(job, pull, history, config, problems, decision)

    def _gate(self, pull: PullInfo) -> Sanitised | None:
        limits = self.deps.limits
        changed = pull.additions + pull.deletions
        if pull.changed_files > limits.max_files or changed > limits.max_changed_lines:
            return compose(
                "This pull request changes {} files and {} lines; backend-review reviews at most {} files "
                "and {} changed lines. Split it up, or narrow the reviewed paths in "
                "`.github/backend-review.yml`.",
                pull.changed_files,
                changed,
                limits.max_files,
                limits.max_changed_lines,
            )
        return None

    async def _model(self, installation: int, notes: list[str]) -> Provider | None:
        """The model provider, or None for offline checks only (none configured, or D-04's cap spent)."""
        deps = self.deps
        provider = deps.provider_factory()
        if provider is not None and not await deps.ledger.has_budget(
            installation, deps.limits.daily_token_budget
        ):
            # D-04: no model spend past the cap; one notice a day, then offline checks quietly
            if await deps.ledger.claim_notice(installation):
                notes.append("The daily model budget is spent: offline checks only until tomorrow (UTC).")
            log.warning("daily token budget spent", installation=installation)
            await provider.aclose()
            provider = None
        return provider

    async def _review(self, claimed: ClaimedJob, out: AppPublisher, facts: _Facts) -> str:
        deps = self.deps
        too_large = self._gate(facts.pull)
        check = await out.open_check()
        await out.react("eyes")
        if too_large is not None:
            await out.too_large(check, too_large)
            return "skipped: too large"
        notes = [f"`{CONFIG_PATH}`: {p}" for p in facts.problems]
        installation = facts.job.pr.installation_id or 0
        provider = await self._model(installation, notes)
        try:
            outcome = await self._review_core(out.tokens, facts, notes, provider)
        except BudgetExceeded as exc:  # the diff or the checkout is over its cap (D-01, S-09)
            # our own message (counts and limits), still sanitised like any text we post
            await out.too_large(
                check, compose("This pull request is too large to review: {}.", inert_plain(str(exc)))
            )
            return "skipped: too large"
        except BaseException as exc:
            await self._interrupted_check(check, claimed, exc)
            raise
        finally:
            if provider is not None:
                await provider.aclose()
        agent = outcome.agent
        if agent is not None and agent.usage is not None:
            await deps.ledger.add(installation, agent.usage.input_tokens + agent.usage.output_tokens)
            metrics.model_usage(installation, agent.usage)
        try:
            with metrics.phase("publish"):
                done = await self._publish(claimed, out, outcome)
        except Superseded:
            raise  # publish closed the check run as superseded itself (a lost lease: the new owner's)
        except BaseException as exc:
            # e.g. a 502 on the review POST: never leave the check spinning while the job is retried
            await self._interrupted_check(check, claimed, exc)
            raise
        draft = outcome.draft
        log.info(
            "review published",
            review=done.review_id,
            inline=len(draft.comments),
            findings=len(draft.findings),
            conclusion=outcome.conclusion,
        )
        return f"posted review {done.review_id} with {len(draft.comments)} inline comments"

    async def _publish(self, claimed: ClaimedJob, out: AppPublisher, outcome: ReviewOutcome) -> Published:
        # W-04: a worker that lost its lease (its loop was blocked past the lease) must not post beside
        # the worker that took the job over
        if self.deps.lease_check is not None and not await self.deps.lease_check(claimed):
            raise Superseded("the job's lease was taken over by another worker")
        return await out.publish(outcome)

    async def _review_core(
        self, tokens: JobTokens, facts: _Facts, notes: list[str], provider: Provider | None
    ) -> ReviewOutcome:
        deps = self.deps
        job, pull, config = facts.job, facts.pull, facts.config
        # A push is reviewed from the last head this App actually reviewed (its own marker), never from
        # the push's `before`: pushes coalesced in the queue, lost or out-of-order deliveries and quiet
        # pushes would otherwise drop files nobody reviewed. No such head (or history rewritten): the
        # merge base. A gated repository (fail_on) needs every finding that still stands for its
        # conclusion, so each push gets a full review there; fingerprints keep earlier comments from
        # being repeated.
        last = facts.history.last_head
        incremental = (
            job.trigger == "synchronize"
            and not job.full
            and config.fail_on is None
            and last is not None
            and last != job.head_sha
        )
        inputs = ReviewInputs(
            focus=config.focus if job.plan.focus is None else (job.plan.focus,),
            max_diff_bytes=deps.limits.max_diff_bytes,
            title=pull.title,
            body=pull.body,
            repo=job.pr.full_name,
            filters=PathFilters(include=config.include, exclude=config.exclude),
            max_inline=config.max_inline_comments,
            fail_on=config.fail_on,
            already_posted=facts.history.fingerprints,
            notes=tuple(notes),
        )
        gh = await tokens.read()
        url = deps.github.clone_url(job.pr.owner, job.pr.repo)
        if deps.git_base_url:
            url = f"{deps.git_base_url.rstrip('/')}/{job.pr.owner}/{job.pr.repo}.git"
        checkout_started = metrics.clock()
        async with workspace(
            GitSource.https(url, gh.token),
            job.head_sha,
            pull.base_sha,
            scratch_root=deps.scratch_root,
            max_bytes=deps.limits.max_checkout_bytes,
            max_files=deps.limits.max_checkout_files,
            cache=deps.repo_cache,
            lazy=True,  # review_workspace writes the files it reads (all of them for the agent)
        ) as ws:
            metrics.phase_since("checkout", checkout_started)
            diff_base = None
            if incremental and last is not None and await ws.is_ancestor(last):
                diff_base = last
            log.info("diff base", base=(diff_base or "merge base")[:12])
            inputs = dataclasses.replace(inputs, diff_base=diff_base)
            return await review_workspace(ws, inputs, provider=provider, budgets=deps.budgets)

    async def _interrupted_check(self, check: CheckRun, claimed: ClaimedJob, exc: BaseException) -> None:
        """Never leave a check spinning: close it, saying whether the job will be retried."""
        shutdown = isinstance(exc, asyncio.CancelledError) and exc.args == (SHUTDOWN,)
        if isinstance(exc, asyncio.CancelledError) and not shutdown:
            # a lost lease: the worker that took the job over takes this run over too
            return
        retrying = isinstance(exc, Retryable) and claimed.attempt < self.deps.limits.max_attempts
        if shutdown:
            # past the drain grace: the job's lease expires and a retry reviews it, perhaps never if
            # the fleet stays down, so the run is closed now and the retry opens its own
            conclusion, title = "neutral", "Review interrupted by a shutdown; it will be retried"
            summary = fixed("Review interrupted by a shutdown. It will be retried.")
        elif isinstance(exc, Superseded):
            conclusion, title, summary = "skipped", "Superseded by a newer push", fixed("Superseded.")
        elif retrying:
            conclusion, title = "neutral", "Review interrupted; retrying"
            summary = compose("Review interrupted: {} It will be retried.", failure_reason(exc))
        else:
            conclusion, title = "neutral", "Review failed"
            summary = compose("Review failed: {}", failure_reason(exc))
        try:
            async with asyncio.timeout(10):
                await check.complete(conclusion, plain_text(title), summary)
        except Exception as report_exc:
            log.warning("could not close the check run", error=type(report_exc).__name__)


__all__ = ["BudgetExceeded", "JobDeps", "JobLimits", "ReviewJobRunner", "failure_reason"]
