"""The GitHub App's job: one queued review, from live re-checks to one posted review and check run.

Order of work (each step refuses early, before money is spent):

1. read token: live PR state, head SHA (W-04, C-05), command comment still there, base-branch config
   (P-04), live permission for commands and fork PRs (C-01, C-06);
2. write token: the in-progress check run and 👀 on a command;
3. gates: size (D-01) and the installation's daily token budget (D-04);
4. read token: hardened checkout by SHA, review core (bot.pipeline);
5. write token: head re-checked (a moved head drops the review as superseded), one COMMENT review,
   check run completed with a conclusion computed by code, 👍 on a command.

Everything posted is sanitised text (O-03): a failure is reported with a short fixed reason for its
kind, and the error's own text (git's stderr, a library's message) goes to the log only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
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
    RERUN_ACTION,
    UNKNOWN_OPTION_REPLY,
    AwaitMaintainer,
    Enqueue,
    Ignore,
    apply_repo_config,
    authorize,
    push_plan,
)
from bot.formats import check_annotations
from bot.github import CheckAction, GitHubApp, GitHubClient, GitHubError, PullInfo
from bot.ledger import TokenLedger
from bot.log import bind, get_logger
from bot.models import PrFacts, ReviewJob
from bot.pipeline import ReviewInputs, ReviewOutcome, review_workspace
from bot.queue.base import ClaimedJob
from bot.repocache import RepoCache
from bot.review import MAX_BODY, parse_markers
from bot.sanitize import (
    Sanitised,
    SanitisedText,
    code_span,
    compose,
    fixed,
    hidden_marker,
    inert_plain,
    plain_text,
    truncate,
)
from bot.worker import SHUTDOWN

log = get_logger(__name__)

CHECK_NAME = plain_text("backend-review")
# A button on the completed check run; clicking it sends check_run.requested_action, which events.py
# accepts only with this identifier and only from someone with write access (C-01).
RERUN_BUTTON: CheckAction = {
    "label": plain_text("Re-run review"),
    "description": plain_text("Review this head again"),
    "identifier": RERUN_ACTION,
}
SIZE_GATE_MARKER = hidden_marker("size-gate")
BUDGET_MARKER = hidden_marker("budget")


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


def _facts(pull: PullInfo, job: ReviewJob) -> PrFacts:
    fork = pull.head_repo_full_name is None or pull.head_repo_full_name.lower() != job.pr.full_name.lower()
    return PrFacts(author=pull.user_login, title=pull.title, labels=pull.labels, draft=pull.draft, fork=fork)


# The last line of every review this App posts: the job that posted it and the head it reviewed in
# full. Only the exact format counts, and only in this App's own reviews, on the commit GitHub
# recorded the review against (an author could otherwise paste one to shrink the next review).
_JOB_MARKER = re.compile(r"<!-- backend-review job=([\w.:-]{1,64})(?: head=([0-9a-f]{40}))? -->")


def job_marker(job_id: str, head_sha: str) -> Sanitised:
    return hidden_marker(f"job={job_id} head={head_sha}")


@dataclass(frozen=True)
class ReviewHistory:
    """What this App's own earlier reviews on the PR say."""

    fingerprints: frozenset[str] = frozenset()
    last_head: str | None = None  # the head of the newest review this App posted
    last_job: str | None = None  # the job that posted it


def review_history(
    reviews: list[dict[str, object]], is_ours: Callable[[dict[str, object]], bool]
) -> ReviewHistory:
    found: set[str] = set()
    last_head = last_job = None
    for review in reviews:  # GitHub lists them oldest first
        if not is_ours(review):
            continue
        body = str(review.get("body") or "")
        found |= parse_markers(body)
        commit = review.get("commit_id")
        for match in _JOB_MARKER.finditer(body):
            head = match[2] or commit  # reviews posted before the head was in the marker
            if isinstance(head, str) and head == commit:
                last_head, last_job = head, match[1]
    return ReviewHistory(frozenset(found), last_head, last_job)


async def _history(gh: GitHubClient, job: ReviewJob) -> ReviewHistory:
    """Fingerprints in the app's own earlier comments and reviews (never in anyone else's: an author
    could otherwise paste markers to silence findings), and the last head it reviewed."""
    history = review_history(await gh.list_reviews(job.pr), gh.is_ours)
    found: set[str] = set(history.fingerprints)
    for body in await gh.list_review_comment_bodies(job.pr, ours_only=True):
        found |= parse_markers(body)
    return dataclasses.replace(history, fingerprints=frozenset(found))


class ReviewJobRunner:
    """The worker's ``JobHandler`` for GitHub App jobs."""

    def __init__(self, deps: JobDeps) -> None:
        self.deps = deps

    async def __call__(self, claimed: ClaimedJob) -> str:
        job = claimed.job
        with bind(job=claimed.id, delivery=job.delivery_id, pr=_describe(job), attempt=claimed.attempt):
            try:
                outcome = await self._run(claimed)
            except Superseded as exc:
                moved = f" by {exc.live_head[:7]}" if exc.live_head else ""
                await self._close_orphans(
                    claimed, "skipped", plain_text(f"Superseded{moved}"), inert_plain(f"{exc}.")
                )
                raise
            await self._close_orphans(
                claimed, "neutral", plain_text("Review skipped"), inert_plain(f"{outcome}.")
            )
            return outcome

    async def _close_orphans(
        self, claimed: ClaimedJob, conclusion: str, title: SanitisedText, summary: Sanitised
    ) -> None:
        """A retried job ending without a review: complete the check run an earlier attempt opened and
        could not close (its worker was killed), so no check is left spinning. The first attempt has
        none, and a run this attempt completed is not listed."""
        if claimed.attempt < 2:
            return
        job = claimed.job
        try:
            async with self.deps.github.installation_session(job, write=True) as gw:
                # a command's record has no head: its earlier attempt pinned the live head of its time
                head = job.head_sha or (await gw.get_pull(job.pr)).head_sha
                for check_id in await gw.unfinished_check_runs(
                    job.pr, head, name=CHECK_NAME, external_id=claimed.id
                ):
                    await gw.complete_check_run(
                        job.pr, check_id, conclusion=conclusion, title=title, summary=summary
                    )
        except Exception as exc:  # best effort: the job's own outcome stands
            log.warning("could not close an earlier attempt's check run", error=type(exc).__name__)

    async def on_dead(self, claimed: ClaimedJob, error: BaseException) -> None:
        """The job failed for good: say so on the PR (a neutral check; 😕 on a command)."""
        job = claimed.job
        with bind(job=claimed.id, delivery=job.delivery_id, pr=_describe(job)):
            # the detail is for the operator only; the log redacts secrets
            log.warning("job failed for good", kind=type(error).__name__, error=str(error)[:2000])
            try:
                async with self.deps.github.installation_session(job, write=True) as gw:
                    # a command's job record has no head (it is pinned at authorisation, in memory):
                    # report on the live head so the failure is visible on the PR
                    head_sha = job.head_sha or (await gw.get_pull(job.pr)).head_sha
                    if head_sha:
                        check_id = await gw.open_check_run(
                            job.pr, head_sha, name=CHECK_NAME, external_id=claimed.id
                        )
                        await gw.complete_check_run(
                            job.pr,
                            check_id,
                            conclusion="neutral",
                            title=plain_text("Review failed"),
                            summary=compose(
                                "backend-review could not complete this review: {} The job ({}) will "
                                "not be retried; comment `/backend-review` to try again.",
                                failure_reason(error),
                                code_span(claimed.id),
                            ),
                        )
                    if job.comment_id:
                        await gw.add_reaction(job.pr, job.comment_id, "confused")
            except Exception as exc:  # the failure report itself is best effort
                log.warning("could not report the failed job", error=type(exc).__name__)

    async def _run(self, claimed: ClaimedJob) -> str:
        job = claimed.job
        deps = self.deps
        fetch_started = metrics.clock()
        async with deps.github.installation_session(job, write=False) as gh:
            pull = await gh.get_pull(job.pr)
            if pull.state != "open":
                return "skipped: pull request is not open"
            # C-05: a command pins the head it was authorised on; a push-triggered job owns its SHA
            head_sha = job.head_sha or pull.head_sha
            history = await _history(gh, job)
            if pull.head_sha != head_sha:
                # deliveries come in any order and can be lost: the live head gets a job of its own
                # (the worker queues it) unless this App's newest review is already on it
                wanted = pull.head_sha if history.last_head != pull.head_sha else None
                moved = f"head moved from {head_sha[:7]} to {pull.head_sha[:7]}"
                raise Superseded(moved, live_head=wanted, plan=push_plan(_facts(pull, job)))
            if (
                job.trigger == "synchronize"
                and history.last_head == head_sha
                and history.last_job != claimed.id
            ):
                return "skipped: this head was already reviewed"
            if job.comment_id is not None and not await gh.comment_exists(job.pr, job.comment_id):
                return "skipped: the command comment was deleted"
            config, problems = parse_repo_config(await gh.get_file_text(job.pr, CONFIG_PATH, pull.base_sha))
            # the receiver's plan, re-checked: facts from the live PR, then the config and the permission
            planned = Enqueue.planned(job).with_plan(dataclasses.replace(job.plan, facts=_facts(pull, job)))
            decision: Enqueue | Ignore | AwaitMaintainer = apply_repo_config(planned, config)
            if isinstance(decision, Enqueue) and decision.needs_permission_check:
                permission = await gh.get_permission(job.pr, decision.needs_permission_check)
                decision = authorize(decision, permission)
        metrics.phase_since("fetch", fetch_started)
        job = dataclasses.replace(job, head_sha=head_sha, base_sha=pull.base_sha)
        if isinstance(decision, Ignore):
            if decision.react and job.comment_id is not None:
                async with deps.github.installation_session(job, write=True) as gw:
                    await gw.add_reaction(job.pr, job.comment_id, "-1")
            log.info("job skipped", reason=decision.reason)
            return f"skipped: {decision.reason}"
        if isinstance(decision, AwaitMaintainer):
            await self._neutral_check(
                job, claimed.id, plain_text("Awaiting a maintainer"), inert_plain(decision.reason)
            )
            return "awaiting maintainer"
        if decision.kind in ("help", "unknown_option"):
            reply = HELP_REPLY if decision.kind == "help" else UNKNOWN_OPTION_REPLY
            async with deps.github.installation_session(job, write=True) as gw:
                await gw.post_issue_comment(job.pr, reply)
            return f"replied: {decision.kind}"
        return await self._review(claimed, job, pull, config, problems, history)

    async def _neutral_check(
        self, job: ReviewJob, external_id: str, title: SanitisedText, summary: Sanitised
    ) -> None:
        async with self.deps.github.installation_session(job, write=True) as gw:
            check_id = await gw.open_check_run(job.pr, job.head_sha, name=CHECK_NAME, external_id=external_id)
            await gw.complete_check_run(job.pr, check_id, conclusion="neutral", title=title, summary=summary)

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

    async def _review(
        self,
        claimed: ClaimedJob,
        job: ReviewJob,
        pull: PullInfo,
        config: RepoConfig,
        problems: list[str],
        history: ReviewHistory,
    ) -> str:
        deps = self.deps
        too_large = self._gate(pull)
        async with deps.github.installation_session(job, write=True) as gw:
            check_id = await gw.open_check_run(job.pr, job.head_sha, name=CHECK_NAME, external_id=claimed.id)
            if job.comment_id is not None:
                await gw.add_reaction(job.pr, job.comment_id, "eyes")
            if too_large is not None:
                await _report_too_large(gw, job, check_id, too_large)
                return "skipped: too large"
        notes = [f"`{CONFIG_PATH}`: {p}" for p in problems]
        provider = deps.provider_factory()
        installation = job.pr.installation_id or 0
        if provider is not None and not await deps.ledger.has_budget(
            installation, deps.limits.daily_token_budget
        ):
            # D-04: no model spend past the cap; one notice a day, then offline checks quietly
            if await deps.ledger.claim_notice(installation):
                notes.append("The daily model budget is spent: offline checks only until tomorrow (UTC).")
            log.warning("daily token budget spent", installation=installation)
            await provider.aclose()
            provider = None
        try:
            outcome = await self._review_core(job, pull, config, notes, history, provider)
        except BudgetExceeded as exc:  # the diff or the checkout is over its cap (D-01, S-09)
            async with deps.github.installation_session(job, write=True) as gw:
                # our own message (counts and limits), still sanitised like any text we post
                text = compose("This pull request is too large to review: {}.", inert_plain(str(exc)))
                await _report_too_large(gw, job, check_id, text)
            return "skipped: too large"
        except BaseException as exc:
            await self._interrupted_check(job, check_id, claimed, exc)
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
                return await self._publish(claimed, job, check_id, outcome)
        except Superseded:
            raise  # _publish closed the check run as superseded itself
        except BaseException as exc:
            # e.g. a 502 on the review POST: never leave the check spinning while the job is retried
            await self._interrupted_check(job, check_id, claimed, exc)
            raise

    async def _review_core(
        self,
        job: ReviewJob,
        pull: PullInfo,
        config: RepoConfig,
        notes: list[str],
        history: ReviewHistory,
        provider: Provider | None,
    ) -> ReviewOutcome:
        deps = self.deps
        # A push is reviewed from the last head this App actually reviewed (its own marker), never from
        # the push's `before`: pushes coalesced in the queue, lost or out-of-order deliveries and quiet
        # pushes would otherwise drop files nobody reviewed. No such head (or history rewritten): the
        # merge base. A gated repository (fail_on) needs every finding that still stands for its
        # conclusion, so each push gets a full review there; fingerprints keep earlier comments from
        # being repeated.
        last = history.last_head
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
            already_posted=history.fingerprints,
            notes=tuple(notes),
        )
        async with deps.github.installation_session(job, write=False) as gh:
            url = deps.github.clone_url(job.pr.owner, job.pr.repo)
            if deps.git_base_url:
                url = f"{deps.git_base_url.rstrip('/')}/{job.pr.owner}/{job.pr.repo}.git"
            source = GitSource.https(url, gh.token)
            checkout_started = metrics.clock()
            async with workspace(
                source,
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

    async def _interrupted_check(
        self, job: ReviewJob, check_id: int, claimed: ClaimedJob, exc: BaseException
    ) -> None:
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
            async with asyncio.timeout(10), self.deps.github.installation_session(job, write=True) as gw:
                await gw.complete_check_run(
                    job.pr, check_id, conclusion=conclusion, title=plain_text(title), summary=summary
                )
        except Exception as report_exc:
            log.warning("could not close the check run", error=type(report_exc).__name__)

    async def _publish(
        self, claimed: ClaimedJob, job: ReviewJob, check_id: int, outcome: ReviewOutcome
    ) -> str:
        draft = outcome.draft
        # W-04: a worker that lost its lease (its loop was blocked past the lease) must not post beside
        # the worker that took the job over
        if self.deps.lease_check is not None and not await self.deps.lease_check(claimed):
            raise Superseded("the job's lease was taken over by another worker")
        # W-04: the job's own marker lets a retry see that its review went out before a later step failed
        marker = job_marker(claimed.id, job.head_sha)
        async with self.deps.github.installation_session(job, write=True) as gw:
            live = await gw.get_pull(job.pr)
            if live.head_sha != job.head_sha:
                await gw.complete_check_run(
                    job.pr,
                    check_id,
                    conclusion="skipped",
                    title=plain_text(f"Superseded by {live.head_sha[:7]}"),
                    summary=compose(
                        "The head moved to {} before this review was posted.", code_span(live.head_sha)
                    ),
                )
                raise Superseded(
                    f"head moved to {live.head_sha[:7]} during the review",
                    live_head=live.head_sha,
                    plan=push_plan(_facts(live, job)),  # a command's permission was for its own head
                )
            # Quiet by design: a push that brings nothing new gets the check run only.
            wants_review = bool(draft.comments or draft.file_comments or draft.findings)
            if job.trigger in ("command", "opened", "reopened", "ready_for_review"):
                wants_review = True
            review_id = None
            if wants_review:
                if claimed.attempt > 1:
                    review_id = await _own_review(gw, job, marker)
                if review_id is None:
                    # never cut off by the body limit: the next review's diff base is read from it
                    body = truncate(draft.body, MAX_BODY - len(marker) - 2)
                    marked = dataclasses.replace(draft, body=compose("{}\n\n{}", body, marker))
                    review_id = await gw.post_review(job.pr, marked)
                for fc in draft.file_comments:
                    await gw.post_file_comment(job.pr, job.head_sha, fc.path, fc.body)
                metrics.review_posted(draft.findings)
            # earlier findings this head no longer has: their threads resolved (never raises)
            await gw.resolve_outdated_threads(job.pr, outcome.scope(focused=job.plan.focus is not None))
            await gw.complete_check_run(
                job.pr,
                check_id,
                conclusion=outcome.conclusion,
                title=draft.check_title or CHECK_NAME,
                summary=draft.check_summary or draft.body,
                annotations=check_annotations(draft),
                actions=[RERUN_BUTTON],
            )
            if job.comment_id is not None:
                await gw.add_reaction(job.pr, job.comment_id, "+1")
        log.info(
            "review published",
            review=review_id,
            inline=len(draft.comments),
            findings=len(draft.findings),
            conclusion=outcome.conclusion,
        )
        return f"posted review {review_id} with {len(draft.comments)} inline comments"


async def _own_review(gw: GitHubClient, job: ReviewJob, marker: str) -> int | None:
    """The review an earlier attempt of this job already posted on this head, if any."""
    for review in await gw.list_reviews(job.pr):
        if (
            gw.is_ours(review)
            and review.get("commit_id") == job.head_sha
            and marker in str(review.get("body") or "")
        ):
            return int(review["id"])
    return None


async def _report_too_large(gw: GitHubClient, job: ReviewJob, check_id: int, text: Sanitised) -> None:
    """D-01: one comment per PR (found again by its marker), a neutral check, zero model tokens."""
    bodies = await gw.list_issue_comment_bodies(job.pr, ours_only=True)
    if not any(SIZE_GATE_MARKER in b for b in bodies):
        await gw.post_issue_comment(job.pr, compose("{}\n\n{}", text, SIZE_GATE_MARKER))
    await gw.complete_check_run(
        job.pr, check_id, conclusion="neutral", title=plain_text("Too large to review"), summary=text
    )


__all__ = ["CHECK_NAME", "BudgetExceeded", "JobDeps", "JobLimits", "ReviewJobRunner", "failure_reason"]
