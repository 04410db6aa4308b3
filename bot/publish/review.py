"""Posting one pull-request review: the payload, the 422 fallback and the lookup after a lost answer.

Shared by the App's and the workflow's publishers so a review reaches GitHub one way only.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.errors import GitHubUnavailable
from bot.formats import check_annotations
from bot.github import CheckAction, GitHubClient, GitHubUnprocessable
from bot.log import get_logger
from bot.models import InlineComment, PullRequestRef, ReviewDraft
from bot.pipeline import ReviewOutcome
from bot.publish.base import CHECK_NAME
from bot.publish.body import MAX_BODY, fold_comments
from bot.publish.markers import ANY_MARKER
from bot.sanitize import Sanitised, truncate

log = get_logger(__name__)


async def post_review(gh: GitHubClient, pr: PullRequestRef, draft: ReviewDraft) -> int:
    """Post the draft; returns the review id.

    A 422 (an anchor GitHub would not resolve) is retried once with the inline comments folded into
    the body. After a transient failure the review may exist anyway (GitHub created it, the answer
    was lost): it is looked up by head SHA and fingerprint markers and never posted twice."""
    try:
        return await _create(gh, pr, draft, draft.body, draft.comments)
    except GitHubUnprocessable:
        if not draft.comments:
            raise
        log.warning(
            "review rejected with 422; retrying without inline comments", comments=len(draft.comments)
        )
    return await _create(gh, pr, draft, fold_comments(draft.body, draft.comments), ())


async def _create(
    gh: GitHubClient,
    pr: PullRequestRef,
    draft: ReviewDraft,
    body: Sanitised,
    comments: Sequence[InlineComment],
) -> int:
    try:
        return await gh.create_review(pr, draft.head_sha, body, comments)
    except GitHubUnavailable:
        existing = await find_review(gh, pr, draft)
        if existing is not None:
            log.info("review already posted despite the error", review_id=existing)
            return existing
        raise


async def find_review(gh: GitHubClient, pr: PullRequestRef, draft: ReviewDraft) -> int | None:
    """The id of a bot review of ``draft.head_sha`` that carries the draft's fingerprint markers."""
    # the summary's own markers: inline comments' markers live on the comments, not the review body
    markers = set(ANY_MARKER.findall(draft.body))
    for review in await gh.list_reviews(pr):
        body = str(review.get("body") or "")
        if review.get("commit_id") != draft.head_sha or not gh.is_ours(review):
            continue
        found = set(ANY_MARKER.findall(body))
        if (markers and markers <= found) or (
            not markers and body.startswith(truncate(draft.body, MAX_BODY))
        ):
            return int(review["id"])
    return None


async def post_file_comments(gh: GitHubClient, pr: PullRequestRef, head_sha: str, draft: ReviewDraft) -> None:
    """Findings on files whose lines GitHub would not anchor: one file-level comment each."""
    for fc in draft.file_comments:
        await gh.post_file_comment(pr, head_sha, fc.path, fc.body)


async def complete_check(
    gh: GitHubClient,
    pr: PullRequestRef,
    check_id: int,
    outcome: ReviewOutcome,
    actions: Sequence[CheckAction] = (),
) -> None:
    """The check run completed from the review: the conclusion code computed, the summary, annotations."""
    draft = outcome.draft
    await gh.complete_check_run(
        pr,
        check_id,
        conclusion=outcome.conclusion,
        title=draft.check_title or CHECK_NAME,
        summary=draft.check_summary or draft.body,
        annotations=check_annotations(draft),
        actions=actions,
    )


__all__ = ["complete_check", "find_review", "post_file_comments", "post_review"]
