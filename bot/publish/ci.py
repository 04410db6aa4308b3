"""Publishing from a GitHub Actions run (``backend-review ci``).

With a token that may write: the App's publish step (one ``COMMENT`` review pinned to the head, file
comments, outdated threads resolved, a check run whose conclusion code computes); each write that gets
403 is noted, not fatal. What the token could not post goes to workflow-command annotations and the
step summary instead (a fork PR's read-only ``GITHUB_TOKEN``).
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.formats import to_markdown
from bot.github import GitHubClient, GitHubForbidden
from bot.models import PullRequestRef, ReviewDraft, Severity
from bot.pipeline import ReviewOutcome
from bot.publish.base import CHECK_NAME, Published
from bot.publish.history import resolve_outdated
from bot.publish.review import complete_check, post_file_comments, post_review
from bot.sanitize import plain_text, truncate
from bot.workflow_commands import annotation

MAX_SUMMARY_BYTES = 1024 * 1024  # the runner rejects a larger step summary
MAX_LOG_ANNOTATIONS = 50  # the runner shows at most 10 errors/10 warnings per step anyway
_REVIEW_TRIGGERS = frozenset({"opened", "reopened", "ready_for_review", "command"})
_LOG_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "notice",
    Severity.NIT: "notice",
}


class CiPublisher:
    """The review and check run with the workflow's token, for one pull request head."""

    def __init__(
        self, gh: GitHubClient, pr: PullRequestRef, head_sha: str, trigger: str, *, with_review: bool
    ) -> None:
        self.gh = gh
        self.pr = pr
        self.head_sha = head_sha
        self.trigger = trigger
        self.with_review = with_review

    async def publish(self, outcome: ReviewOutcome) -> Published:
        gh, draft = self.gh, outcome.draft
        done = Published()
        wants_review = bool(draft.comments or draft.file_comments or draft.findings)
        if self.with_review and (wants_review or self.trigger in _REVIEW_TRIGGERS):
            try:
                done.review_id = await post_review(gh, self.pr, draft)
                await post_file_comments(gh, self.pr, self.head_sha, draft)
            except GitHubForbidden:
                done.refused.append("review")
        if self.with_review and "review" not in done.refused:
            # a full review (merge base..head): earlier threads whose finding is gone get resolved
            await resolve_outdated(gh, self.pr, outcome.scope())
        try:
            done.check_id = await gh.create_check_run(self.pr, self.head_sha, name=CHECK_NAME)
        except GitHubForbidden:
            done.refused.append("check run")
        else:
            await complete_check(gh, self.pr, done.check_id, outcome)
        return done


def log_annotations(draft: ReviewDraft) -> list[str]:
    """Findings as workflow-command annotations (the read-only fallback for the check run's)."""
    out: list[str] = []
    for ranked in draft.findings[:MAX_LOG_ANNOTATIONS]:
        f = ranked.finding
        out.append(
            annotation(
                _LOG_LEVEL[f.severity],
                plain_text(f"{f.severity.value} · {f.category.value}: {f.title}", limit=1000),
                file=f.path,
                line=f.line,
                end_line=f.end_line or f.line,
                title=plain_text(f"backend-review: {f.title}"),
            )
        )
    return out


def write_summary(env: Mapping[str, str], draft: ReviewDraft) -> bool:
    """Append the review markdown (already sanitised for GitHub) to the job summary."""
    path = env.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    text = to_markdown(draft)
    if len(text.encode("utf-8")) >= MAX_SUMMARY_BYTES:
        text = truncate(text, MAX_SUMMARY_BYTES // 4 - 1)  # at most 4 bytes a character
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text + "\n")
    return True


__all__ = ["CiPublisher", "log_annotations", "write_summary"]
