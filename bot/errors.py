"""The one exception tree of backend-review.

Every error the package raises on purpose derives from :class:`BackendReviewError`:

- :class:`ConfigError` — settings or a repo config file are invalid (CLI exit 2; on a PR, a visible note).
- :class:`UsageError` — the command line is wrong (CLI exit 2).
- :class:`Retryable` — a transient failure (429, 5xx, timeout, lease lost). ``retry_after`` is the
  delay the remote asked for, in seconds, or ``None`` to let the caller back off on its own.
  - :class:`ModelUnavailable` — the model provider failed transiently.
  - :class:`GitHubUnavailable` — the GitHub API failed transiently or rate-limited us.
- :class:`Permanent` — retrying cannot help; the job is failed and reported.
  - :class:`WorkspaceError` — git could not produce the workspace (missing SHA, bad repo).
  - :class:`ToolRefused` — an agent tool call was refused (outside the jail, bad argument).
  - :class:`SecretLeak` — an outgoing text contained one of our own secrets; the send is blocked.
  - :class:`Superseded` — the PR head moved; the review of the old head is dropped.
  - :class:`NotAuthorized` — the sender may not trigger a review.
  - :class:`BudgetExceeded` — a size, token, time or quota gate refused the work.
  - :class:`TokenScopeError` — a token was requested for an installation/repo the job is not bound to.
  - :class:`UnreadableJob` — a queued job's plan is of a version or shape this release does not read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # bot.models imports bot.sanitize, which imports this module
    from bot.models import JobPlan


class BackendReviewError(Exception):
    """Base of every error backend-review raises deliberately."""


class ConfigError(BackendReviewError):
    """Invalid settings or repository configuration."""


class UsageError(BackendReviewError):
    """Invalid command-line usage."""


class Retryable(BackendReviewError):
    """A transient failure; the operation may succeed later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelUnavailable(Retryable):
    """The model provider answered 429/5xx/overloaded or timed out."""


class GitHubUnavailable(Retryable):
    """GitHub answered 5xx, 403/429 rate-limited, or timed out."""


class Permanent(BackendReviewError):
    """A failure retrying cannot fix."""


class WorkspaceError(Permanent):
    """git could not produce the workspace."""


class ToolRefused(Permanent):
    """An agent tool call was refused; the message is safe to show the model."""


class SecretLeak(Permanent):
    """An outgoing text contained one of our own secrets; the send was blocked."""


class Superseded(Permanent):
    """The pull request's head moved on; this review is no longer wanted.

    ``live_head`` is the head it moved to when that head still wants a job (the worker makes sure
    one is queued, planned as ``plan``, else as the superseded job); None when there is nothing newer
    to review."""

    def __init__(self, message: str, live_head: str | None = None, plan: JobPlan | None = None) -> None:
        super().__init__(message)
        self.live_head = live_head
        self.plan = plan


class NotAuthorized(Permanent):
    """The sender may not trigger a review."""


class BudgetExceeded(Permanent):
    """A size, token, time or quota gate refused the work."""


class TokenScopeError(Permanent):
    """A token was requested outside the job's binding (K-05)."""


class UnreadableJob(Permanent):
    """A queued job's plan is of a version or shape this release does not read: only that job fails."""


__all__ = [
    "BackendReviewError",
    "BudgetExceeded",
    "ConfigError",
    "GitHubUnavailable",
    "ModelUnavailable",
    "NotAuthorized",
    "Permanent",
    "Retryable",
    "SecretLeak",
    "Superseded",
    "TokenScopeError",
    "ToolRefused",
    "UnreadableJob",
    "UsageError",
    "WorkspaceError",
]
