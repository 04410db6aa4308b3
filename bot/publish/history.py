"""What this identity posted on a pull request before: read back from its own reviews and comments, and
its threads resolved once their findings are gone (:mod:`bot.outdated` decides which)."""

from __future__ import annotations

import dataclasses

from bot.errors import GitHubUnavailable
from bot.github import GitHubClient, GitHubError
from bot.log import get_logger
from bot.models import PullRequestRef
from bot.outdated import ReviewScope, threads_to_resolve
from bot.publish.markers import ReviewHistory, fingerprints, review_history

log = get_logger(__name__)


async def read_history(gh: GitHubClient, pr: PullRequestRef) -> ReviewHistory:
    """Fingerprints in this identity's own earlier reviews and review comments (never in anyone else's:
    an author could otherwise paste markers to silence findings), and the last head it reviewed."""
    history = review_history(await gh.list_reviews(pr), gh.is_ours)
    posted = fingerprints(await gh.list_review_comment_bodies(pr, ours_only=True))
    return dataclasses.replace(history, fingerprints=history.fingerprints | posted)


async def resolve_outdated(gh: GitHubClient, pr: PullRequestRef, scope: ReviewScope) -> tuple[int, int]:
    """Resolve this identity's threads whose findings the new review no longer finds; a thread GitHub
    will not let us resolve has its comment minimized as OUTDATED instead. Returns (resolved,
    minimized). Best effort: never raises for GitHub's refusals or outages, since the review itself is
    already posted."""
    resolved = minimized = 0
    try:
        todo = threads_to_resolve(await gh.posted_threads(pr), scope)
        for t in todo:
            try:
                if await gh.resolve_review_thread(pr, t.thread_id):
                    resolved += 1
                    continue
            except GitHubError as e:
                log.info("review thread not resolved; minimizing its comment", error=str(e))
            if t.comment_node_id and await gh.minimize_comment(pr, t.comment_node_id):
                minimized += 1
    except (GitHubError, GitHubUnavailable) as e:
        log.warning("outdated findings not resolved", error=str(e))
    except Exception as e:  # e.g. an unexpected response shape: the review is posted all the same
        log.warning("outdated findings not resolved", error=type(e).__name__)
    log.info("outdated findings resolved", resolved=resolved, minimized=minimized)
    return resolved, minimized


__all__ = ["read_history", "resolve_outdated"]
