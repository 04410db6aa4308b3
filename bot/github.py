"""GitHub adapter: App authentication, per-job installation tokens, and the REST calls the app makes.

githubkit 0.16.1, async only. Rules this module enforces (SECURITY.md):

- K-02: a token is minted per job with ``repository_ids=[job.pr.repo_id]`` and explicit ``permissions``
  (read for fetching, write only for publishing) and revoked with ``DELETE /installation/token`` when the
  session ends, on success and on failure.
- K-04: the App private key is used only by :class:`GitHubApp` to sign the JWT that mints tokens.
- K-05: the installation and repository come only from a bound :class:`~bot.models.ReviewJob`; anything
  else raises :class:`~bot.errors.TokenScopeError` and logs an alert, and nothing is minted.
- O-08: reviews are always posted with ``event: COMMENT``.
- O-03: every text parameter of a write is :data:`~bot.sanitize.Sanitised` (markdown) or
  :data:`~bot.sanitize.SanitisedText` (plain), which only :mod:`bot.sanitize` creates: mypy rejects raw
  strings, such as an error message, here. Reactions are a closed set.

Responses are read as plain dicts (``response.json()``): githubkit's strict models reject real payloads.
Request bodies are sent verbatim (``rest_api_validate_body=False``): its validation silently drops keys.
githubkit never retries (``auto_retry=False``); the worker owns retries, so transient failures surface as
:class:`~bot.errors.GitHubUnavailable` with the delay GitHub asked for.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict
from urllib.parse import urlsplit

import httpx
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.exception import (
    GitHubException,
    GraphQLFailed,
    RateLimitExceeded,
    RequestError,
    RequestFailed,
    RequestTimeout,
)

from bot import metrics
from bot.backoff import parse_retry_after
from bot.errors import GitHubUnavailable, Permanent, TokenScopeError
from bot.formats import Annotation
from bot.log import get_logger
from bot.models import InlineComment, PullRequestRef, ReviewJob
from bot.outdated import PostedThread
from bot.publish.body import MAX_BODY, MAX_OUTPUT_TEXT
from bot.publish.markers import parse_markers
from bot.redact import SECRETS, SecretSet
from bot.sanitize import Sanitised, SanitisedText, plain_text, truncate

log = get_logger(__name__)

READ_PERMISSIONS: Mapping[str, str] = {"contents": "read", "pull_requests": "read", "metadata": "read"}
"""Fetching: clone by SHA, PR metadata, base-branch config, permission checks."""

WRITE_PERMISSIONS: Mapping[str, str] = {"pull_requests": "write", "checks": "write", "metadata": "read"}
"""Publishing: reviews, review comments, PR conversation comments and reactions, check runs."""

MAX_ANNOTATIONS_PER_REQUEST = 50
SECONDARY_LIMIT_WAIT = 60.0  # "wait at least one minute" when GitHub gives no retry-after

# Fixed GraphQL documents: only ids and numbers travel as variables, never text.
_THREADS_QUERY = """
query($owner: String!, $name: String!, $number: Int!, $after: String) {
  repository(owner: $owner, name: $name) { pullRequest(number: $number) {
    reviewThreads(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { id isResolved isOutdated path subjectType
        comments(first: 1) { nodes { id databaseId isMinimized } } } } } } }
"""
_RESOLVE_THREAD = (
    "mutation($id: ID!) { resolveReviewThread(input: {threadId: $id}) { thread { id isResolved } } }"
)
_MINIMIZE_OUTDATED = (
    "mutation($id: ID!) { minimizeComment(input: {subjectId: $id, classifier: OUTDATED}) "
    "{ minimizedComment { isMinimized } } }"
)
MAX_THREAD_PAGES = 30  # 3,000 threads: far past any pull request this App reviews

DEFAULT_CHECK_NAME = plain_text("backend-review")
Reaction = Literal["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]


class CheckAction(TypedDict):
    """A button on a completed check run (GitHub: label ≤ 20, description ≤ 40 characters)."""

    label: SanitisedText
    description: SanitisedText
    identifier: str


# ------------------------------------------------------------------------------------------ errors


class GitHubError(Permanent):
    """GitHub refused the request in a way retrying cannot fix."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GitHubAuthError(GitHubError):
    """401: the token is invalid, expired or revoked, or the JWT was rejected."""


class GitHubForbidden(GitHubError):
    """403 that is not a rate limit: the token lacks a permission or the installation is suspended."""


class GitHubNotFound(GitHubError):
    """404: missing, or not visible to this token (GitHub hides what a token may not see)."""


class GitHubUnprocessable(GitHubError):
    """422: validation failed (e.g. a review comment anchored outside the diff)."""


def map_graphql_error(exc: GraphQLFailed, what: str) -> GitHubUnavailable | GitHubError:
    """GraphQL answers 200 with ``errors``; their ``type`` says which of our errors it is."""
    errors = exc.response.errors or []
    types = {str(e.type or "").upper() for e in errors}
    message = "; ".join(e.message for e in errors)[:500]
    if "RATE_LIMITED" in types or "rate limit" in message.lower():
        return GitHubUnavailable(f"{what}: rate limited", retry_after=SECONDARY_LIMIT_WAIT)
    kind: type[GitHubError] = GitHubError
    if "FORBIDDEN" in types:
        kind = GitHubForbidden
    elif "NOT_FOUND" in types:
        kind = GitHubNotFound
    return kind(f"{what}: {message}".strip())


def _retry_after(headers: httpx.Headers) -> float | None:
    seconds = parse_retry_after(headers.get("retry-after"))
    if seconds is not None:
        return seconds
    if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
        with contextlib.suppress(ValueError):
            return max(0.0, float(headers["x-ratelimit-reset"]) - time.time())
    return None


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(data, dict):
        errors = data.get("errors")
        return f"{data.get('message', '')}{f' {errors}' if errors else ''}"[:500]
    return response.reason_phrase


def map_error(exc: GitHubException, what: str) -> GitHubUnavailable | GitHubError:
    """Translate a githubkit exception into our tree. ``what`` names the call, never its data."""
    if isinstance(exc, RateLimitExceeded):
        return GitHubUnavailable(f"{what}: rate limited", retry_after=exc.retry_after.total_seconds())
    if isinstance(exc, RequestFailed):
        response = exc.response.raw_response
        status = response.status_code
        message = _message(response)
        if status >= 500:
            return GitHubUnavailable(f"{what}: HTTP {status}", retry_after=_retry_after(response.headers))
        if status == 429 or (status == 403 and "rate limit" in message.lower()):
            # githubkit raises RequestFailed for a secondary limit without retry-after/remaining headers
            delay = _retry_after(response.headers)
            return GitHubUnavailable(
                f"{what}: rate limited (HTTP {status})",
                retry_after=SECONDARY_LIMIT_WAIT if delay is None else delay,
            )
        kind: type[GitHubError] = {
            401: GitHubAuthError,
            403: GitHubForbidden,
            404: GitHubNotFound,
            422: GitHubUnprocessable,
        }.get(status, GitHubError)
        return kind(f"{what}: HTTP {status} {message}".strip(), status)
    if isinstance(exc, RequestTimeout):
        return GitHubUnavailable(f"{what}: timed out")
    if isinstance(exc, RequestError):
        return GitHubUnavailable(f"{what}: connection failed ({type(exc.__cause__ or exc).__name__})")
    return GitHubError(f"{what}: {type(exc).__name__}")


# ------------------------------------------------------------------------------------------ values


@dataclass(frozen=True, slots=True)
class PullInfo:
    number: int
    state: str
    draft: bool
    title: str
    body: str
    head_sha: str
    base_sha: str
    base_ref: str
    head_repo_full_name: str | None  # None when the head repository (a fork) was deleted
    base_repo_full_name: str
    user_login: str
    user_type: str
    labels: tuple[str, ...]
    changed_files: int
    additions: int
    deletions: int
    html_url: str


def _pull_info(d: Mapping[str, Any]) -> PullInfo:
    head, base = d.get("head") or {}, d.get("base") or {}
    user = d.get("user") or {}
    head_repo = head.get("repo") or {}
    return PullInfo(
        number=int(d["number"]),
        state=str(d.get("state", "")),
        draft=bool(d.get("draft", False)),
        title=str(d.get("title") or ""),
        body=str(d.get("body") or ""),
        head_sha=str(head.get("sha", "")),
        base_sha=str(base.get("sha", "")),
        base_ref=str(base.get("ref", "")),
        head_repo_full_name=head_repo.get("full_name"),
        base_repo_full_name=str((base.get("repo") or {}).get("full_name", "")),
        user_login=str(user.get("login", "")),
        user_type=str(user.get("type", "")),
        labels=tuple(str(label.get("name", "")) for label in d.get("labels") or ()),
        changed_files=int(d.get("changed_files") or 0),
        additions=int(d.get("additions") or 0),
        deletions=int(d.get("deletions") or 0),
        html_url=str(d.get("html_url", "")),
    )


def clone_url(api_url: str, owner: str, repo: str) -> str:
    """The git HTTPS URL that belongs to an API base URL.

    ``https://api.github.com`` → ``https://github.com/o/r.git``; GHES ``https://HOST/api/v3`` →
    ``https://HOST/o/r.git``; anything else (a local fake) serves git at its origin's root."""
    parts = urlsplit(api_url)
    host = "github.com" if parts.netloc == "api.github.com" else parts.netloc
    prefix = parts.path.rstrip("/")
    prefix = prefix.removesuffix("/api/v3") if prefix.endswith("/api/v3") else ""
    return f"{parts.scheme}://{host}{prefix}/{owner}/{repo}.git"


def git_auth_header(token: str) -> str:
    """The header git sends (``http.<url>.extraheader``), as actions/checkout does: the token never
    appears in a URL, ``.git/config`` or argv."""
    cred = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return f"AUTHORIZATION: basic {cred}"


# ------------------------------------------------------------------------------------------ pacing


class WritePacer:
    """Spaces content-creating requests of one installation by at least ``interval`` seconds (GitHub's
    secondary limits punish bursts of writes)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._locks: dict[int, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last: dict[int, float] = {}

    @contextlib.asynccontextmanager
    async def slot(self, installation_id: int) -> AsyncIterator[None]:
        if self.interval <= 0:
            yield
            return
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # an asyncio.Lock must not be shared across event loops
            self._loop, self._locks = loop, {}
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            wait = self._last.get(installation_id, float("-inf")) + self.interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._last[installation_id] = time.monotonic()


# ------------------------------------------------------------------------------------------ client


class GitHubClient:
    """REST calls with one installation token, bound to one repository (the job's)."""

    def __init__(
        self,
        gh: GitHub[TokenAuthStrategy],
        *,
        token: str,
        bound: PullRequestRef,
        installation_id: int,
        pacer: WritePacer | None = None,
        author: str | None = None,
    ) -> None:
        self._gh = gh
        self._token = token
        self._bound = bound
        self._installation_id = installation_id
        self._pacer = pacer or WritePacer(0.0)
        self.author = author
        """The login this identity posts as (``<app-slug>[bot]``; ``github-actions[bot]`` in CI)."""

    def _only(self, ours_only: bool) -> str | None:
        if not ours_only:
            return None
        if self.author is None:
            raise ValueError("this client does not know the login it posts as")
        return self.author

    def is_ours(self, item: Mapping[str, Any]) -> bool:
        """Whether a review or comment was written by this identity (never merely by some bot)."""
        login = str((item.get("user") or {}).get("login") or "")
        return self.author is not None and login.lower() == self.author.lower()

    @property
    def token(self) -> str:
        """The installation token, for the git fetch header only (see :func:`git_auth_header`)."""
        return self._token

    def _repo_path(self, pr: PullRequestRef) -> str:
        if (pr.owner.lower(), pr.repo.lower()) != (self._bound.owner.lower(), self._bound.repo.lower()):
            log.error("token scope refused", alert=True, reason="client used for another repository")
            raise TokenScopeError("this client is bound to another repository")
        return f"/repos/{self._bound.owner}/{self._bound.repo}"

    async def _request(
        self,
        method: str,
        url: str,
        what: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        async def send() -> httpx.Response:
            try:
                resp = await self._gh.arequest(method, url, json=json, params=params, headers=headers)
            except GitHubException as e:
                raise map_error(e, what) from None
            metrics.github_response(self._installation_id, resp.raw_response.headers)
            return resp.raw_response

        if method == "GET":
            return await send()
        async with self._pacer.slot(self._installation_id):
            return await send()

    async def _paginate(self, url: str, what: str) -> list[Any]:
        items: list[Any] = []
        next_url: str | None = url
        params: Mapping[str, str | int] | None = {"per_page": 100}
        while next_url:
            resp = await self._request("GET", next_url, what, params=params)
            data = resp.json()
            if not isinstance(data, list):
                raise GitHubError(f"{what}: unexpected response shape")
            items.extend(data)
            next_url = resp.links.get("next", {}).get("url")
            params = None  # the Link URL carries its own query
        return items

    # ---------------------------------------------------------------- reads

    async def get_pull(self, pr: PullRequestRef) -> PullInfo:
        resp = await self._request("GET", f"{self._repo_path(pr)}/pulls/{pr.number}", "get pull")
        return _pull_info(resp.json())

    async def get_file_text(self, pr: PullRequestRef, path: str, ref: str) -> str | None:
        """A file's text at ``ref`` (the base branch, for repo config), or None when absent or not a file."""
        try:
            resp = await self._request(
                "GET",
                f"{self._repo_path(pr)}/contents/{path.lstrip('/')}",
                "get contents",
                params={"ref": ref},
            )
        except GitHubNotFound:
            return None
        data = resp.json()
        if not isinstance(data, dict) or data.get("type") != "file" or data.get("encoding") != "base64":
            return None
        return base64.b64decode(data.get("content") or "").decode("utf-8", errors="replace")

    async def list_review_comment_bodies(self, pr: PullRequestRef, *, ours_only: bool = False) -> list[str]:
        items = await self._paginate(
            f"{self._repo_path(pr)}/pulls/{pr.number}/comments", "list review comments"
        )
        return _bodies(items, self._only(ours_only))

    async def list_reviews(self, pr: PullRequestRef) -> list[dict[str, Any]]:
        return await self._paginate(f"{self._repo_path(pr)}/pulls/{pr.number}/reviews", "list reviews")

    async def list_review_bodies(self, pr: PullRequestRef, *, ours_only: bool = False) -> list[str]:
        return _bodies(await self.list_reviews(pr), self._only(ours_only))

    async def list_issue_comment_bodies(self, pr: PullRequestRef, *, ours_only: bool = False) -> list[str]:
        items = await self._paginate(
            f"{self._repo_path(pr)}/issues/{pr.number}/comments", "list issue comments"
        )
        return _bodies(items, self._only(ours_only))

    async def get_permission(self, pr: PullRequestRef, login: str) -> str | None:
        """``admin``/``write``/``read``/``none``, or None when GitHub could not say: callers deny (C-01)."""
        try:
            resp = await self._request(
                "GET", f"{self._repo_path(pr)}/collaborators/{login}/permission", "get permission"
            )
            permission = resp.json().get("permission")
        except (GitHubError, GitHubUnavailable) as e:
            log.warning("permission lookup failed; denying", error=str(e))
            return None
        return permission if isinstance(permission, str) else None

    async def comment_exists(self, pr: PullRequestRef, comment_id: int) -> bool:
        """Whether an issue comment still exists (a command deleted before the job ran is void, W-04)."""
        try:
            await self._request("GET", f"{self._repo_path(pr)}/issues/comments/{comment_id}", "get comment")
        except GitHubNotFound:
            return False
        return True

    # ---------------------------------------------------------------- writes

    async def add_reaction(self, pr: PullRequestRef, comment_id: int, content: Reaction) -> bool:
        """React to an issue comment. True when created, False when it already existed."""
        resp = await self._request(
            "POST",
            f"{self._repo_path(pr)}/issues/comments/{comment_id}/reactions",
            "add reaction",
            json={"content": content},
        )
        return resp.status_code == 201

    async def post_issue_comment(self, pr: PullRequestRef, body: Sanitised) -> int:
        resp = await self._request(
            "POST",
            f"{self._repo_path(pr)}/issues/{pr.number}/comments",
            "post issue comment",
            json={"body": truncate(body, MAX_BODY)},
        )
        return int(resp.json()["id"])

    async def create_check_run(
        self,
        pr: PullRequestRef,
        head_sha: str,
        *,
        name: SanitisedText = DEFAULT_CHECK_NAME,
        status: str = "in_progress",
        external_id: str | None = None,
    ) -> int:
        body: dict[str, Any] = {"name": name, "head_sha": head_sha, "status": status}
        if external_id is not None:
            body["external_id"] = external_id
        resp = await self._request("POST", f"{self._repo_path(pr)}/check-runs", "create check run", json=body)
        return int(resp.json()["id"])

    async def open_check_run(
        self, pr: PullRequestRef, head_sha: str, *, name: SanitisedText, external_id: str
    ) -> int:
        """The check run for this job: an earlier attempt's run still in progress (its worker died) is
        taken over, so a retried job never leaves a check spinning; otherwise a new one."""
        for check_id in await self.unfinished_check_runs(pr, head_sha, name=name, external_id=external_id):
            return check_id
        return await self.create_check_run(pr, head_sha, name=name, external_id=external_id)

    async def unfinished_check_runs(
        self, pr: PullRequestRef, head_sha: str, *, name: str, external_id: str
    ) -> list[int]:
        """The runs named ``name`` on ``head_sha`` opened for ``external_id`` and not completed yet."""
        resp = await self._request(
            "GET",
            f"{self._repo_path(pr)}/commits/{head_sha}/check-runs",
            "list check runs",
            params={"check_name": name, "filter": "all", "per_page": 100},
        )
        return [
            int(run["id"])
            for run in resp.json().get("check_runs") or []
            if run.get("external_id") == external_id and run.get("status") != "completed"
        ]

    async def complete_check_run(
        self,
        pr: PullRequestRef,
        check_id: int,
        *,
        conclusion: str,
        title: SanitisedText,
        summary: Sanitised,
        text: Sanitised | None = None,
        annotations: Sequence[Annotation] = (),
        actions: Sequence[CheckAction] = (),
    ) -> None:
        """Complete the run; annotations go in batches of ≤ 50 (GitHub appends them across PATCHes);
        ``actions`` are buttons (at most 3) shown on the completed run.

        The first PATCH carries the conclusion, so a failure in a later batch still leaves a completed run."""
        url = f"{self._repo_path(pr)}/check-runs/{check_id}"
        output: dict[str, Any] = {"title": title[:255], "summary": truncate(summary, MAX_OUTPUT_TEXT)}
        if text:
            output["text"] = truncate(text, MAX_OUTPUT_TEXT)
        batches = [
            [dict(a) for a in annotations[i : i + MAX_ANNOTATIONS_PER_REQUEST]]
            for i in range(0, len(annotations), MAX_ANNOTATIONS_PER_REQUEST)
        ] or [[]]
        first: dict[str, Any] = {
            "status": "completed",
            "conclusion": conclusion,
            "output": {**output, "annotations": batches[0]},
        }
        if actions:
            first["actions"] = [dict(a) for a in actions[:3]]
        await self._request("PATCH", url, "complete check run", json=first)
        for batch in batches[1:]:
            await self._request(
                "PATCH", url, "add annotations", json={"output": {**output, "annotations": batch}}
            )

    async def post_file_comment(self, pr: PullRequestRef, head_sha: str, path: str, body: Sanitised) -> int:
        """A file-level review comment (``subject_type: file``, only on the single-comment endpoint)."""
        resp = await self._request(
            "POST",
            f"{self._repo_path(pr)}/pulls/{pr.number}/comments",
            "post file comment",
            json={
                "body": truncate(body, MAX_BODY),
                "commit_id": head_sha,
                "path": path,
                "subject_type": "file",
            },
        )
        return int(resp.json()["id"])

    async def create_review(
        self, pr: PullRequestRef, head_sha: str, body: Sanitised, comments: Sequence[InlineComment]
    ) -> int:
        """POST ONE ``COMMENT`` review pinned to ``head_sha`` (the bot never approves); returns its id.
        :func:`bot.publish.review.post_review` owns the 422 fallback and the lookup after a lost answer."""
        payload = {
            "commit_id": head_sha,
            "event": "COMMENT",
            "body": truncate(body, MAX_BODY),
            "comments": [_comment_json(c) for c in comments],
        }
        url = f"{self._repo_path(pr)}/pulls/{pr.number}/reviews"
        resp = await self._request("POST", url, "post review", json=payload)
        return int(resp.json()["id"])

    # ---------------------------------------------------------------- review lifecycle (GraphQL)

    async def _graphql(
        self, query: str, variables: dict[str, Any], what: str, *, write: bool = False
    ) -> dict[str, Any]:
        async def send() -> dict[str, Any]:
            try:
                return await self._gh.async_graphql(query, variables)
            except GraphQLFailed as e:
                raise map_graphql_error(e, what) from None
            except GitHubException as e:
                raise map_error(e, what) from None

        if not write:
            return await send()
        async with self._pacer.slot(self._installation_id):  # mutations count toward write limits too
            return await send()

    async def review_threads(self, pr: PullRequestRef) -> list[dict[str, Any]]:
        """Every review thread of the pull request (GraphQL nodes; resolution state lives only there)."""
        self._repo_path(pr)  # K-05: only the bound repository
        nodes: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(MAX_THREAD_PAGES):
            data = await self._graphql(
                _THREADS_QUERY,
                {"owner": self._bound.owner, "name": self._bound.repo, "number": pr.number, "after": after},
                "list review threads",
            )
            pull = ((data.get("repository") or {}).get("pullRequest")) or {}
            page = pull.get("reviewThreads") or {}
            nodes.extend(n for n in page.get("nodes") or () if isinstance(n, dict))
            info = page.get("pageInfo") or {}
            after = info.get("endCursor")
            if not info.get("hasNextPage") or not after:
                break
        return nodes

    async def resolve_review_thread(self, pr: PullRequestRef, thread_id: str) -> bool:
        self._repo_path(pr)
        data = await self._graphql(_RESOLVE_THREAD, {"id": thread_id}, "resolve review thread", write=True)
        thread = (data.get("resolveReviewThread") or {}).get("thread") or {}
        return bool(thread.get("isResolved"))

    async def minimize_comment(self, pr: PullRequestRef, node_id: str) -> bool:
        """Hide a comment as outdated (``minimizeComment``, classifier OUTDATED)."""
        self._repo_path(pr)
        data = await self._graphql(_MINIMIZE_OUTDATED, {"id": node_id}, "minimize comment", write=True)
        comment = (data.get("minimizeComment") or {}).get("minimizedComment") or {}
        return bool(comment.get("isMinimized"))

    async def posted_threads(self, pr: PullRequestRef) -> list[PostedThread]:
        """Review threads whose first comment this identity wrote, with that comment's fingerprints.

        Ownership and fingerprints come from the REST comment (its ``user.login`` is the App's
        ``<slug>[bot]``), matched to the thread by the first comment's ``databaseId``: a thread someone
        else started is never touched, whatever markers its text carries."""
        ours: dict[int, frozenset[str]] = {}
        for c in await self._paginate(
            f"{self._repo_path(pr)}/pulls/{pr.number}/comments", "list review comments"
        ):
            if isinstance(c, Mapping) and self.is_ours(c) and c.get("in_reply_to_id") is None:
                ours[int(c["id"])] = frozenset(parse_markers(str(c.get("body") or "")))
        if not any(ours.values()):
            return []  # nothing of ours to resolve: spare the GraphQL query
        out = []
        for node in await self.review_threads(pr):
            first = next(iter((node.get("comments") or {}).get("nodes") or ()), None)
            if not isinstance(first, dict) or first.get("databaseId") not in ours:
                continue
            out.append(
                PostedThread(
                    thread_id=str(node["id"]),
                    comment_node_id=str(first.get("id") or ""),
                    comment_id=int(first["databaseId"]),
                    path=str(node.get("path") or ""),
                    fingerprints=ours[int(first["databaseId"])],
                    outdated=bool(node.get("isOutdated")),
                    resolved=bool(node.get("isResolved")),
                    minimized=bool(first.get("isMinimized")),
                    file_level=str(node.get("subjectType") or "").upper() == "FILE",
                )
            )
        return out


def _bodies(items: Sequence[Any], author: str | None) -> list[str]:
    """Comment bodies; with ``author``, only those that login wrote. Any other account, bots
    included (github-actions, other Apps), could paste our markers to silence findings."""
    out = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        login = str((item.get("user") or {}).get("login") or "")
        if author is not None and login.lower() != author.lower():
            continue
        out.append(str(item.get("body") or ""))
    return out


def _comment_json(c: InlineComment) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": c.path,
        "line": c.line,
        "side": "RIGHT",
        "body": truncate(c.body, MAX_BODY),
    }
    if c.start_line is not None and c.start_line < c.line:
        out["start_line"] = c.start_line
        out["start_side"] = "RIGHT"
    return out


# ------------------------------------------------------------------------------------------ app


class GitHubApp:
    """The App identity. Holds the private key (K-04) and mints per-job installation tokens (K-02, K-05)."""

    def __init__(
        self,
        *,
        private_key: str,
        app_id: int | str | None = None,
        client_id: str | None = None,
        base_url: str = "https://api.github.com/",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        write_interval: float = 1.0,
        secrets: SecretSet = SECRETS,  # the key and every token minted are registered here while live
    ) -> None:
        if app_id is None and client_id is None:
            raise ValueError("app_id or client_id is required")
        self._secrets = secrets
        secrets.add(private_key)
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._transport = transport
        self._timeout = timeout
        self._pacer = WritePacer(write_interval)
        self._bot_login: str | None = None
        auth = (
            AppAuthStrategy(app_id=app_id, private_key=private_key)
            if app_id is not None
            else AppAuthStrategy(app_id=None, private_key=private_key, client_id=client_id)
        )
        self._app_gh = self._github(auth)

    def _github(self, auth: Any) -> GitHub[Any]:
        return GitHub(
            auth,
            base_url=self.base_url,
            async_transport=self._transport,
            http_cache=False,
            auto_retry=False,
            rest_api_validate_body=False,
            timeout=self._timeout,
        )

    def clone_url(self, owner: str, repo: str) -> str:
        return clone_url(self.base_url, owner, repo)

    async def _mint(self, job: ReviewJob, target: PullRequestRef, write: bool) -> str:
        bound = job.pr
        if bound.installation_id is None or bound.repo_id is None:
            log.error(
                "token scope refused", alert=True, reason="job is not bound to an installation and repo"
            )
            raise TokenScopeError("job has no installation/repository binding")
        if (
            target.installation_id != bound.installation_id
            or target.repo_id != bound.repo_id
            or (target.owner.lower(), target.repo.lower()) != (bound.owner.lower(), bound.repo.lower())
        ):
            log.error(
                "token scope refused",
                alert=True,
                reason="request outside the job binding",
                job_installation=bound.installation_id,
                job_repo=bound.repo_id,
                requested_installation=target.installation_id,
                requested_repo=target.repo_id,
            )
            raise TokenScopeError("token requested for an installation/repository the job is not bound to")
        permissions = dict(WRITE_PERMISSIONS if write else READ_PERMISSIONS)
        try:
            resp = await self._app_gh.arequest(
                "POST",
                f"/app/installations/{bound.installation_id}/access_tokens",
                json={"repository_ids": [bound.repo_id], "permissions": permissions},
            )
        except GitHubException as e:
            raise map_error(e, "mint installation token") from None
        token = str(resp.json()["token"])
        self._secrets.add(token)
        log.info("installation token minted", installation=bound.installation_id, write=write)
        return token

    @contextlib.asynccontextmanager
    async def installation_session(
        self, job: ReviewJob, *, write: bool = False, target: PullRequestRef | None = None
    ) -> AsyncIterator[GitHubClient]:
        """A client with a fresh token scoped to the job's repository; the token is revoked on exit.

        ``target`` lets a caller state which repository it means to touch; it must be the job's own
        (K-05). ``write=True`` is for the publish step only (K-02)."""
        author = await self.bot_login()
        token = await self._mint(job, target or job.pr, write)
        gh = self._github(TokenAuthStrategy(token))
        try:
            async with gh:
                yield GitHubClient(
                    gh,
                    token=token,
                    bound=job.pr,
                    installation_id=int(job.pr.installation_id or 0),
                    pacer=self._pacer,
                    author=author,
                )
        finally:
            await self._revoke(token)

    async def bot_login(self) -> str:
        """``<app-slug>[bot]``, the login this App's reviews and comments carry (asked once, JWT)."""
        if self._bot_login is None:
            try:
                resp = await self._app_gh.arequest("GET", "/app")
            except GitHubException as e:
                raise map_error(e, "get app") from None
            self._bot_login = f"{resp.json()['slug']}[bot]"
        return self._bot_login

    async def _revoke(self, token: str) -> None:
        gh = self._github(TokenAuthStrategy(token))
        try:
            await gh.arequest("DELETE", "/installation/token")
        except GitHubException as e:
            # the token expires within the hour anyway; never mask the job's own outcome
            log.warning("installation token revoke failed", error=str(map_error(e, "revoke token")))
        else:
            # revoked, so no longer a secret worth matching; keeps a long-running worker's set small
            self._secrets.discard(token)
            log.info("installation token revoked")


__all__ = [
    "MAX_ANNOTATIONS_PER_REQUEST",
    "READ_PERMISSIONS",
    "WRITE_PERMISSIONS",
    "CheckAction",
    "GitHubApp",
    "GitHubAuthError",
    "GitHubClient",
    "GitHubError",
    "GitHubForbidden",
    "GitHubNotFound",
    "GitHubUnprocessable",
    "PullInfo",
    "Reaction",
    "clone_url",
    "git_auth_header",
    "map_error",
]
