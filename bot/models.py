"""Frozen value types shared by every stage. No I/O here.

The contracts (see DESIGN.md "Contracts worth keeping stable"): a :class:`Changeset` describes what a
change touched and where GitHub accepts comments; a :class:`Finding` is one issue found by a reviewer;
a :class:`ReviewDraft` is what the pure review stage hands to a publisher.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Literal

from bot.sanitize import Sanitised, SanitisedText, fixed, plain_text


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    NIT = "nit"

    @property
    def rank(self) -> int:
        """Higher is worse: critical=4 … nit=0."""
        return _SEVERITY_RANK[self]

    def at_least(self, other: Severity) -> bool:
        return self.rank >= other.rank


_SEVERITY_RANK = {
    Severity.CRITICAL: 4,
    Severity.HIGH: 3,
    Severity.MEDIUM: 2,
    Severity.LOW: 1,
    Severity.NIT: 0,
}


class Category(StrEnum):
    API = "api"
    DATABASE = "database"
    MIGRATION = "migration"
    AUTH = "auth"
    SECURITY = "security"
    PERFORMANCE = "performance"
    ERRORS = "errors"
    OBSERVABILITY = "observability"
    OTHER = "other"


class FileStatus(StrEnum):
    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"
    RENAMED = "renamed"


LineKind = Literal["+", "-", " "]


@dataclass(frozen=True, slots=True)
class DiffLine:
    kind: LineKind
    old_no: int | None  # line number in the base file (None for added lines)
    new_no: int | None  # line number in the head file (None for removed lines)
    text: str  # without the leading +/-/space and without the trailing newline


@dataclass(frozen=True, slots=True)
class Hunk:
    old_start: int
    old_count: int
    new_start: int
    new_count: int
    section: str  # the text after the second @@ (function context), may be empty
    lines: tuple[DiffLine, ...]

    @property
    def new_lines(self) -> range:
        """New-file lines this hunk spans on the RIGHT side."""
        return range(self.new_start, self.new_start + self.new_count)


@dataclass(frozen=True, slots=True)
class FileDiff:
    path: str  # new path (old path for a deletion)
    old_path: str | None  # set for renames
    status: FileStatus
    is_binary: bool
    hunks: tuple[Hunk, ...]
    additions: int
    deletions: int
    skip_reason: str | None = None  # e.g. "lock file", "generated", "vendored", "binary", "excluded"

    @property
    def reviewable(self) -> bool:
        return self.skip_reason is None

    def commentable_lines(self) -> frozenset[int]:
        """New-file lines GitHub accepts a RIGHT-side review comment on: added or context lines in a hunk."""
        return frozenset(
            ln.new_no for h in self.hunks for ln in h.lines if ln.new_no is not None and ln.kind != "-"
        )

    def hunk_index(self, new_line: int) -> int | None:
        """Index of the hunk whose RIGHT side holds ``new_line`` as an added/context line, else None."""
        for i, h in enumerate(self.hunks):
            in_span = h.new_start <= new_line < h.new_start + max(h.new_count, 1)
            if in_span and any(ln.new_no == new_line and ln.kind != "-" for ln in h.lines):
                return i
        return None

    def added_lines(self) -> Iterator[tuple[int, str]]:
        """(new line number, text) of every added line."""
        for h in self.hunks:
            for ln in h.lines:
                if ln.kind == "+" and ln.new_no is not None:
                    yield ln.new_no, ln.text


@dataclass(frozen=True, slots=True)
class Changeset:
    base_sha: str
    head_sha: str
    files: tuple[FileDiff, ...]

    def file(self, path: str) -> FileDiff | None:
        for f in self.files:
            if f.path == path:
                return f
        return None

    @property
    def reviewable_files(self) -> tuple[FileDiff, ...]:
        return tuple(f for f in self.files if f.reviewable)

    @property
    def skipped_files(self) -> tuple[FileDiff, ...]:
        return tuple(f for f in self.files if not f.reviewable)


@dataclass(frozen=True, slots=True)
class PromptDiff:
    """The changeset as budgeted for the model's first message."""

    text: str
    included: tuple[str, ...]  # paths whose whole patch is in ``text``
    clipped: tuple[str, ...]  # paths whose patch was cut at a line boundary
    omitted: tuple[str, ...]  # reviewable paths left out of ``text`` entirely (agent may still view them)
    estimated_tokens: int


@dataclass(frozen=True, slots=True)
class Finding:
    path: str
    line: int  # new-file line (1-based)
    severity: Severity
    category: Category
    title: str
    body: str
    evidence: str  # the exact code the finding is about, as it appears in the head file
    source: str  # agent name ("backend-engineer") or rule id ("py-sql-format")
    confidence: float = 0.8
    end_line: int | None = None
    suggestion: str | None = None  # full replacement text for lines line..end_line


@dataclass(frozen=True, slots=True)
class Usage:
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None  # None when the model's price is unknown

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd
        return Usage(
            self.model or other.model,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            cost,
        )


AgentStatus = Literal["ok", "disabled", "unavailable", "budget_exhausted", "no_submit", "invalid_output"]


@dataclass(frozen=True, slots=True)
class AgentResult:
    agent: str
    status: AgentStatus
    findings: tuple[Finding, ...] = ()
    usage: Usage | None = None
    turns: int = 0
    tool_calls: int = 0
    seconds: float = 0.0
    note: str = ""  # one human line, e.g. "model unavailable after 3 attempts (HTTP 529)"


@dataclass(frozen=True, slots=True)
class InlineComment:
    path: str
    line: int  # RIGHT-side new-file line (the last line for a range)
    body: Sanitised  # including the fingerprint marker
    fingerprint: str
    start_line: int | None = None  # set only for multi-line ranges, always < line, same hunk


@dataclass(frozen=True, slots=True)
class FileComment:
    path: str
    body: Sanitised
    fingerprint: str


@dataclass(frozen=True, slots=True)
class RankedFinding:
    """A verified finding with its placement decided."""

    finding: Finding
    fingerprint: str
    placement: Literal["inline", "file", "summary"]


_NO_TITLE = plain_text("")
_NO_SUMMARY = fixed("")


@dataclass(frozen=True, slots=True)
class ReviewDraft:
    head_sha: str
    body: Sanitised  # the summary
    comments: tuple[InlineComment, ...]
    file_comments: tuple[FileComment, ...]
    findings: tuple[RankedFinding, ...]  # every surviving finding, ranked worst first
    dropped: int = 0  # findings whose evidence was nowhere in the head, or were unplaceable
    check_title: SanitisedText = _NO_TITLE
    check_summary: Sanitised = _NO_SUMMARY
    # decided by code from every verified finding, including ones posted by an earlier review (O-08)
    conclusion: Literal["neutral", "failure", "success"] = "neutral"
    # fingerprints of every verified finding, also those not reposted (bot.outdated reads it)
    standing: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PullRequestRef:
    owner: str
    repo: str
    number: int
    installation_id: int | None = None
    repo_id: int | None = None

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    def __str__(self) -> str:
        return f"{self.owner}/{self.repo}#{self.number}"


Trigger = Literal["opened", "reopened", "ready_for_review", "synchronize", "command", "rerequested"]
Kind = Literal["review", "help", "unknown_option"]
OnDeny = Literal["ignore", "react", "await_maintainer"]


@dataclass(frozen=True, slots=True)
class PrFacts:
    """What the repo config's filters look at, as the payload showed it (the worker may refresh it)."""

    author: str
    title: str = ""
    labels: tuple[str, ...] = ()
    draft: bool = False
    fork: bool = False


@dataclass(frozen=True, slots=True)
class JobPlan:
    """What the receiver decided for a job (:func:`bot.events.decide`), carried to the worker as is.

    The worker re-checks only what can change before it runs (PR state and head, the facts, the live
    permission of ``authorize``); the rest is decided once. Stored as ``"plan": {"v": VERSION, ...}``
    (:mod:`bot.queue.base`): a change of meaning needs a new version.
    """

    VERSION: ClassVar[int] = 1

    facts: PrFacts = PrFacts(author="")
    kind: Kind = "review"
    authorize: str | None = None  # the login whose live permission must allow this (C-01, C-06)
    on_deny: OnDeny = "ignore"  # what a denied ``authorize`` gets
    focus: Category | None = None  # `/backend-review focus=<category>`


@dataclass(frozen=True, slots=True)
class ReviewJob:
    """A unit of queued work, bound to (installation, repo, head SHA) by the verified webhook (K-05)."""

    pr: PullRequestRef
    head_sha: str
    trigger: Trigger
    delivery_id: str
    base_sha: str | None = None
    before_sha: str | None = None  # synchronize: the previous head; orders late deliveries, never a diff base
    full: bool = False  # `/backend-review full` or history rewritten
    comment_id: int | None = None  # the command comment, for reactions
    sender: str | None = None
    check_run_id: int | None = None
    # `full` above stays a job field: the queue widens a pending job with it when a command coalesces
    plan: JobPlan = JobPlan()

    @property
    def pr_key(self) -> str:
        """The per-PR serialisation key: at most one running and one pending job per key."""
        return f"{self.pr.installation_id}:{self.pr.owner}/{self.pr.repo}#{self.pr.number}"
