"""The hidden markers this App puts in what it posts, and reading them back (pure).

Three kinds, all ``<!-- backend-review FIELDS -->`` (:func:`bot.sanitize.hidden_marker`):

- fingerprints (``fp=… sha=…``) on each finding's comment and in the summary: an earlier finding is not
  posted again, and a fixed one has its thread resolved;
- the job marker (``job=… head=…``), the last line of every review: the head it reviewed in full (the
  next push's diff base) and which job posted it (a retry finds its own review);
- the size-gate marker on the one "too large" notice of a pull request.

Only the exact formats count, and callers read them only from this App's own reviews and comments:
anyone else could paste one to silence findings or shrink the next review.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from bot.sanitize import Sanitised, hidden_marker

ANY_MARKER = re.compile(r"<!-- backend-review [^>]*-->")
_FINGERPRINTS = re.compile(r"<!-- backend-review fp=([0-9a-f]{16}(?:,[0-9a-f]{16})*) sha=[0-9a-f]{7} -->")
_JOB = re.compile(r"<!-- backend-review job=([\w.:-]{1,64})(?: head=([0-9a-f]{40}))? -->")
SIZE_GATE_MARKER = hidden_marker("size-gate")


def sha7(head_sha: str) -> str:
    return (re.sub(r"[^0-9a-f]", "", head_sha.lower())[:7]).ljust(7, "0")


def marker(fp: str, head_sha: str) -> Sanitised:
    """The fingerprint marker; ``fp`` may list several fingerprints (a merged duplicate) comma-separated."""
    fps = ",".join(x for x in fp.split(",") if re.fullmatch(r"[0-9a-f]{16}", x))
    return hidden_marker(f"fp={fps} sha={sha7(head_sha)}")


def parse_markers(body: str) -> set[str]:
    """Fingerprints in the markers of an earlier comment body (only the exact fixed format counts)."""
    return {fp for m in _FINGERPRINTS.finditer(body) for fp in m[1].split(",")}


def fingerprints(bodies: Iterable[str]) -> frozenset[str]:
    return frozenset(fp for body in bodies for fp in parse_markers(body))


def job_marker(job_id: str, head_sha: str) -> Sanitised:
    return hidden_marker(f"job={job_id} head={head_sha}")


@dataclass(frozen=True)
class ReviewHistory:
    """What this App's own earlier reviews on the PR say."""

    fingerprints: frozenset[str] = frozenset()
    last_head: str | None = None  # the head of the newest review this App posted
    last_job: str | None = None  # the job that posted it


def review_history(
    reviews: list[dict[str, object]], is_ours: Callable[[Mapping[str, object]], bool]
) -> ReviewHistory:
    """The fingerprints of this App's reviews and the head its newest one reviewed: a job marker counts
    only on the commit GitHub recorded the review against."""
    found: set[str] = set()
    last_head = last_job = None
    for review in reviews:  # GitHub lists them oldest first
        if not is_ours(review):
            continue
        body = str(review.get("body") or "")
        found |= parse_markers(body)
        commit = review.get("commit_id")
        for match in _JOB.finditer(body):
            head = match[2] or commit  # reviews posted before the head was in the marker
            if isinstance(head, str) and head == commit:
                last_head, last_job = head, match[1]
    return ReviewHistory(frozenset(found), last_head, last_job)


__all__ = [
    "ANY_MARKER",
    "SIZE_GATE_MARKER",
    "ReviewHistory",
    "fingerprints",
    "job_marker",
    "marker",
    "parse_markers",
    "review_history",
    "sha7",
]
