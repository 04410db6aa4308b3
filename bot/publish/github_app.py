"""Publishing for the GitHub App: everything a job writes to a pull request, with the job's write token.

One ``COMMENT`` review pinned to the reviewed head (O-08) carrying the job's marker (W-04), file
comments, earlier threads whose findings are gone resolved, the check run (opened at job start,
completed here or closed by the job on the way out), reactions on a command, replies, and the one
"too large" notice (D-01).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from bot import metrics
from bot.errors import Superseded
from bot.events import RERUN_ACTION
from bot.github import CheckAction, GitHubClient, PullInfo, Reaction
from bot.log import get_logger
from bot.models import JobPlan, PullRequestRef, ReviewJob
from bot.pipeline import ReviewOutcome
from bot.publish.base import CHECK_NAME, Published
from bot.publish.body import marked
from bot.publish.history import resolve_outdated
from bot.publish.markers import SIZE_GATE_MARKER, job_marker
from bot.publish.review import complete_check, post_file_comments, post_review
from bot.sanitize import Sanitised, SanitisedText, code_span, compose, plain_text
from bot.tokens import JobTokens

log = get_logger(__name__)

# A button on the completed check run; clicking it sends check_run.requested_action, which events.py
# accepts only with this identifier and only from someone with write access (C-01).
RERUN_BUTTON: CheckAction = {
    "label": plain_text("Re-run review"),
    "description": plain_text("Review this head again"),
    "identifier": RERUN_ACTION,
}
# Triggers that always get a review, even one saying there is nothing to report; a push that brings
# nothing new gets the check run only (quiet by design).
_ALWAYS_REVIEWED = frozenset({"command", "opened", "reopened", "ready_for_review"})


@dataclass
class CheckRun:
    """The job's check run on one head."""

    gw: GitHubClient
    pr: PullRequestRef
    id: int

    async def complete(self, conclusion: str, title: SanitisedText, summary: Sanitised) -> None:
        await self.gw.complete_check_run(
            self.pr, self.id, conclusion=conclusion, title=title, summary=summary
        )


class AppPublisher:
    """What one claimed job writes. ``job`` carries the head the job reviews once it is pinned."""

    def __init__(
        self,
        tokens: JobTokens,
        job: ReviewJob,
        *,
        job_id: str,
        attempt: int = 1,
        focused: bool = False,
        follow_up: Callable[[PullInfo], JobPlan] | None = None,
    ) -> None:
        self.tokens = tokens
        self.job = job
        self.job_id = job_id
        self.attempt = attempt
        self.focused = focused  # a focused review cannot tell that an earlier finding went away
        self.follow_up = follow_up  # the plan of the job for a head that moved on before publishing
        self.check: CheckRun | None = None

    async def react(self, reaction: Reaction) -> None:
        """A reaction on the command comment, when the job has one."""
        if self.job.comment_id is not None:
            gw = await self.tokens.write()
            await gw.add_reaction(self.job.pr, self.job.comment_id, reaction)

    async def reply(self, text: Sanitised) -> None:
        gw = await self.tokens.write()
        await gw.post_issue_comment(self.job.pr, text)

    async def open_check(self) -> CheckRun:
        """The in-progress check run for this job (an earlier attempt's unfinished one is taken over)."""
        gw = await self.tokens.write()
        check_id = await gw.open_check_run(
            self.job.pr, self.job.head_sha, name=CHECK_NAME, external_id=self.job_id
        )
        self.check = CheckRun(gw, self.job.pr, check_id)
        return self.check

    async def neutral_check(self, title: SanitisedText, summary: Sanitised) -> None:
        check = await self.open_check()
        await check.complete("neutral", title, summary)

    async def too_large(self, check: CheckRun, text: Sanitised) -> None:
        """D-01: one comment per PR (found again by its marker), a neutral check, zero model tokens."""
        gw = await self.tokens.write()
        bodies = await gw.list_issue_comment_bodies(self.job.pr, ours_only=True)
        if not any(SIZE_GATE_MARKER in b for b in bodies):
            await gw.post_issue_comment(self.job.pr, compose("{}\n\n{}", text, SIZE_GATE_MARKER))
        await check.complete("neutral", plain_text("Too large to review"), text)

    async def close_unfinished(self, conclusion: str, title: SanitisedText, summary: Sanitised) -> None:
        """Complete the check runs an earlier attempt of this job opened and could not close."""
        gw = await self.tokens.write()
        job = self.job
        # a command's record has no head: its earlier attempt pinned the live head of its time
        head = job.head_sha or (await gw.get_pull(job.pr)).head_sha
        for check_id in await gw.unfinished_check_runs(
            job.pr, head, name=CHECK_NAME, external_id=self.job_id
        ):
            await CheckRun(gw, job.pr, check_id).complete(conclusion, title, summary)

    async def report_failure(self, summary: Sanitised) -> None:
        """The job failed for good: a neutral check (on the live head for a command), 😕 on a command."""
        gw = await self.tokens.write()
        # a command's job record has no head (it is pinned at authorisation, in memory): report on the
        # live head so the failure is visible on the PR
        head_sha = self.job.head_sha or (await gw.get_pull(self.job.pr)).head_sha
        if head_sha:
            self.job = dataclasses.replace(self.job, head_sha=head_sha)
            await self.neutral_check(plain_text("Review failed"), summary)
        await self.react("confused")

    async def publish(self, outcome: ReviewOutcome) -> Published:
        """The review, file comments, outdated threads resolved, the completed check run, 👍 on a command.

        The head is checked first: a moved head closes the check run as superseded and posts nothing."""
        job, check, draft = self.job, self.check, outcome.draft
        assert check is not None, "the check run is opened before the review"
        gw = await self.tokens.write()
        live = await gw.get_pull(job.pr)
        if live.head_sha != job.head_sha:
            await check.complete(
                "skipped",
                plain_text(f"Superseded by {live.head_sha[:7]}"),
                compose("The head moved to {} before this review was posted.", code_span(live.head_sha)),
            )
            raise Superseded(
                f"head moved to {live.head_sha[:7]} during the review",
                live_head=live.head_sha,
                plan=self.follow_up(live) if self.follow_up is not None else None,
            )
        done = Published(check_id=check.id)
        if draft.comments or draft.file_comments or draft.findings or job.trigger in _ALWAYS_REVIEWED:
            # W-04: the job's own marker lets a retry see that its review went out before a later step
            # failed; never cut off by the body limit, since the next review's diff base is read from it
            marker = job_marker(self.job_id, job.head_sha)
            if self.attempt > 1:
                done.review_id = await self._own_review(gw, marker)
            if done.review_id is None:
                done.review_id = await post_review(
                    gw, job.pr, dataclasses.replace(draft, body=marked(draft.body, marker))
                )
            await post_file_comments(gw, job.pr, job.head_sha, draft)
            metrics.review_posted(draft.findings)
        # earlier findings this head no longer has: their threads resolved (never raises)
        await resolve_outdated(gw, job.pr, outcome.scope(focused=self.focused))
        await complete_check(gw, job.pr, check.id, outcome, actions=[RERUN_BUTTON])
        await self.react("+1")
        return done

    async def _own_review(self, gw: GitHubClient, marker: str) -> int | None:
        """The review an earlier attempt of this job already posted on this head, if any."""
        for review in await gw.list_reviews(self.job.pr):
            if (
                gw.is_ours(review)
                and review.get("commit_id") == self.job.head_sha
                and marker in str(review.get("body") or "")
            ):
                return int(review["id"])
        return None


__all__ = ["RERUN_BUTTON", "AppPublisher", "CheckRun"]
