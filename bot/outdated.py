"""Which of this App's earlier review threads a new review has made outdated (pure).

A thread is resolved only when this review looked again at what the thread pointed at and no longer
finds it there:

- none of the fingerprints in the thread's first comment (this App's own comment, matched by id) is
  among the verified findings of the new review, including the ones not reposted because they were
  already on the pull request;
- the commented lines changed since the comment was posted (GitHub's ``isOutdated``): the offline
  checks and an incremental review look only at changed lines, so a finding on an unchanged line
  may be missing from a review without having gone away;
- its file was part of what was reviewed: in the diff and not skipped (excluded, generated, too
  large), or deleted; on a full review, a file the pull request no longer changes at all counts too
  (nothing it adds is left). A file-level thread has no lines to compare, so it is resolved only when
  its file was deleted or the review was full;
- the review was whole: a focused review (``focus=``) or a model reviewer that did not finish could
  not have found every earlier finding, so such a review resolves nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.models import Changeset, FileStatus


@dataclass(frozen=True, slots=True)
class PostedThread:
    """A review thread whose first comment this App posted, as GitHub reports it now."""

    thread_id: str  # GraphQL node id of the thread
    comment_node_id: str  # GraphQL node id of the first comment (for minimizeComment)
    comment_id: int  # REST id of the first comment
    path: str
    fingerprints: frozenset[str]
    outdated: bool
    resolved: bool
    minimized: bool
    file_level: bool = False


@dataclass(frozen=True, slots=True)
class ReviewScope:
    """What the new review looked at and what it still finds."""

    standing: frozenset[str]  # fingerprints of every verified finding of the new review
    changeset: Changeset
    full: bool  # the diff was the whole pull request (merge base..head), not just the new commits
    whole: bool = True  # every reviewer ran to completion, over every category


def _reviewed(path: str, scope: ReviewScope) -> tuple[bool, bool]:
    """(reviewed, deleted) for a thread's path."""
    for fd in scope.changeset.files:
        if fd.path == path:
            deleted = fd.status == FileStatus.DELETED
            return fd.reviewable or deleted, deleted
        if fd.status == FileStatus.RENAMED and fd.old_path == path:
            return True, True  # moved away: nothing is left at the path the thread points at
    return scope.full, scope.full


def threads_to_resolve(threads: Iterable[PostedThread], scope: ReviewScope) -> list[PostedThread]:
    if not scope.whole:
        return []
    out = []
    for t in threads:
        if t.resolved or t.minimized or not t.fingerprints or t.fingerprints & scope.standing:
            continue
        reviewed, deleted = _reviewed(t.path, scope)
        if not reviewed:
            continue
        if t.file_level:
            if deleted or scope.full:
                out.append(t)
        elif t.outdated:
            out.append(t)
    return out


__all__ = ["PostedThread", "ReviewScope", "threads_to_resolve"]
