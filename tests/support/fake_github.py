"""A fake GitHub (REST API + git smart HTTP) on 127.0.0.1, for integration and end-to-end tests.

It is a real HTTP server (``ThreadingHTTPServer`` in a background thread) so the product's real
githubkit/httpx clients and a real ``git fetch`` talk to it exactly as they would to GitHub. Repositories
are REAL bare git repositories on disk: tests build history with :mod:`tests.support.gitrepo` and push it
with :meth:`FakeRepo.push`; diffs, files, contents and compares are computed by running ``git`` (argv
lists only) on the bare repository.

Typical use::

    with FakeGitHub(tmp_path) as gh:                      # starts in well under a second
        inst = gh.add_installation("octo-org")
        repo = gh.add_repo(inst, "octo-org", "svc")
        repo.push(work, "main", "feature")                 # work: tests.support.gitrepo.GitRepo
        pr = gh.add_pull(repo, head_ref="feature", title="Add endpoint")
        gh.set_permission(repo, "alice", "write")
        app = GitHubApp(app_id=gh.app_id, private_key=gh.private_key_pem, base_url=gh.api_url)
        ...
        assert gh.reviews[0].event == "COMMENT"

What it models (paths and JSON shaped like GitHub's; see each ``_r_*`` handler):

- App auth: ``POST /app/installations/{id}/access_tokens`` verifies the RS256 JWT (``iss`` = app id or
  client id, ``exp - iat <= 600``), honours ``repository_ids``/``repositories``/``permissions`` as narrowing
  only, and records the body in :attr:`FakeGitHub.tokens`. Every later call with that token is checked
  against its repositories (404 outside) and permissions (403 "Resource not accessible by integration").
  ``DELETE /installation/token`` revokes (later use → 401). ``GET /app``, ``GET /app/installations/{id}``
  and ``GET /repos/{o}/{r}/installation`` need the JWT.
- Pull requests: JSON, ``application/vnd.github.diff`` (406 ``too_large`` over 300 files), ``/files``
  (paginated with ``Link``, ``per_page`` ≤ 100, ≤ 3000 files), ``contents`` and ``compare``.
- Reviews are validated like GitHub: ``commit_id`` must be one of the PR's commits, ``event`` one of
  APPROVE/REQUEST_CHANGES/COMMENT (or absent → PENDING), and every inline comment must anchor on the PR
  diff at that commit (RIGHT: added/context line inside a hunk; LEFT: removed/context line; a range must be
  in one hunk with ``start_line < line``); otherwise the WHOLE review fails with 422 "Line could not be
  resolved" and nothing is recorded. Review comments (incl. ``subject_type: "file"``), issue comments,
  reactions (201 new / 200 existing), check runs (≤ 50 annotations per request, appended) and collaborator
  permissions (a level, or a forced status such as 404/500).
- GraphQL ``POST /graphql``: just the review lifecycle (see :meth:`FakeGitHub._r_graphql`): the
  ``pullRequest.reviewThreads`` query (threads = top-level review comments with their replies;
  ``isOutdated`` computed with git: the commented lines changed, or the file is gone, at the head) and the
  ``resolveReviewThread`` / ``minimizeComment`` mutations, with the REST token checks (pull_requests
  read / write). :attr:`FakeGitHub.resolve_needs_contents_write` refuses ``resolveReviewThread`` for a
  token without ``contents: write`` (FORBIDDEN), as reported for github.com.
- Faults: :meth:`FakeGitHub.fail_next` (any status/headers/body, optionally after the request has been
  processed, optionally delayed), :meth:`FakeGitHub.rate_limit_next`, and :attr:`FakeGitHub.delay` for
  every call.
- git smart HTTP at ``/{owner}/{repo}.git/...`` through ``git http-backend`` with fetch-by-SHA and filters
  enabled, only for a valid, unrevoked token with ``contents: read`` on that repo (Basic
  ``x-access-token:<token>``), else 401. Each git request is recorded with the object ids it asked for
  (:attr:`FakeGitHub.git_requests`) so tests can check that only the authorised SHA was wanted (C-05).
- Everything is recorded in :attr:`FakeGitHub.requests` (secret headers removed).
- :meth:`FakeGitHub.webhook` patches a fixture from ``tests/fixtures/webhooks`` with the fake's ids and
  signs it with :attr:`FakeGitHub.webhook_secret`.
"""

from __future__ import annotations

import base64
import fnmatch
import gzip
import hashlib
import hmac
import html
import itertools
import json
import os
import re
import secrets
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from unidiff import PatchSet

from tests.support.gitrepo import GIT_ENV, GitRepo

APP_PERMISSIONS = {"metadata": "read", "contents": "read", "pull_requests": "write", "checks": "write"}
"""What the fake App is granted by default (K-01's set); tokens can only narrow it."""

REACTIONS = frozenset({"+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"})
MAX_DIFF_FILES = 300
MAX_LIST_FILES = 3000
MAX_ANNOTATIONS = 50

_KEY_LOCK = threading.Lock()
_KEY: rsa.RSAPrivateKey | None = None


def _app_key() -> rsa.RSAPrivateKey:
    """One RSA key per test process: generating 2048-bit keys for every test would be slow."""
    global _KEY
    with _KEY_LOCK:
        if _KEY is None:
            _KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return _KEY


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git_env() -> dict[str, str]:
    return {**os.environ, **GIT_ENV}


# ------------------------------------------------------------------------------------------- state


@dataclass
class FakeInstallation:
    id: int
    account: str
    permissions: dict[str, str] = field(default_factory=lambda: dict(APP_PERMISSIONS))
    suspended: bool = False


@dataclass
class FakeRepo:
    id: int
    owner: str
    name: str
    installation_id: int
    bare: Path
    default_branch: str = "main"
    private: bool = True

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def git(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(
            ["git", "--git-dir", str(self.bare), *args],
            env=_git_env(),
            check=check,
            capture_output=True,
            text=True,
        )
        return out.stdout

    def push(self, work: GitRepo, *refs: str) -> None:
        """Push branches/refs from a working repository into this bare repository (force)."""
        work.git("push", "-q", "-f", str(self.bare), *(f"{r}:{r}" if ":" not in r else r for r in refs))

    def sha(self, ref: str) -> str:
        return self.git("rev-parse", "--verify", "-q", f"{ref}^{{commit}}").strip()

    def has_commit(self, sha: str) -> bool:
        return (
            subprocess.run(
                ["git", "--git-dir", str(self.bare), "cat-file", "-e", f"{sha}^{{commit}}"],
                env=_git_env(),
                capture_output=True,
            ).returncode
            == 0
        )


@dataclass
class FakePull:
    repo: FakeRepo
    number: int
    title: str
    body: str | None
    head_sha: str
    base_sha: str
    head_ref: str
    base_ref: str
    user_login: str = "octocat"
    user_type: str = "User"
    draft: bool = False
    state: str = "open"
    labels: list[str] = field(default_factory=list)
    head_repo_full_name: str | None = None  # a fork's full name; None → same repository


@dataclass
class MintedToken:
    value: str
    installation_id: int
    body: dict[str, Any]  # the request body exactly as received
    repository_ids: frozenset[int] | None  # None → every repository of the installation
    permissions: dict[str, str]
    expires_at: datetime
    revoked: bool = False


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names; authorization and cookies removed
    json: Any
    auth: str | None  # "jwt", "token" (installation token), "basic" (token as Basic password) or None
    token: MintedToken | None
    status: int = 0


@dataclass
class GitRequest:
    repo: str  # owner/name
    path: str  # e.g. /info/refs or /git-upload-pack
    service: str | None
    wants: list[str]  # object ids named by "want" lines
    status: int = 0


@dataclass
class FaultRule:
    method: str
    path: str  # exact path or fnmatch glob, without query
    status: int | None
    times: int | None  # None → forever
    headers: dict[str, str]
    json: Any
    delay: float
    process: bool  # True → handle the request normally first (writes happen), then answer with the fault


@dataclass
class FakeReview:
    id: int
    repo: str
    pull_number: int
    body: str
    event: str | None
    state: str
    commit_id: str
    comments: list[dict[str, Any]]
    user_login: str
    user_type: str = "Bot"


@dataclass
class FakeReviewComment:
    id: int
    repo: str
    pull_number: int
    review_id: int | None
    body: str
    path: str
    commit_id: str
    line: int | None
    side: str | None
    start_line: int | None
    start_side: str | None
    subject_type: str
    user_login: str
    in_reply_to_id: int | None = None
    resolved: bool = False  # on the thread this comment starts
    minimized: str | None = None  # the classifier, e.g. "OUTDATED"


@dataclass
class FakeIssueComment:
    id: int
    repo: str
    issue_number: int
    body: str
    user_login: str
    user_type: str = "User"
    deleted: bool = False
    posted_by_app: bool = False


@dataclass
class FakeReaction:
    id: int
    repo: str
    comment_id: int
    content: str
    user_login: str


@dataclass
class FakeCheckRun:
    id: int
    repo: str
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    external_id: str | None
    output: dict[str, Any]
    annotations: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    create_body: dict[str, Any]
    update_bodies: list[dict[str, Any]] = field(default_factory=list)


class _GraphQLError(Exception):
    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type, self.message = type_, message


class HTTPError(Exception):
    def __init__(self, status: int, message: str, errors: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.payload: dict[str, Any] = {
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": str(status),
        }
        if errors is not None:
            self.payload["errors"] = errors
        self.headers = headers or {}


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> _Response:
    return _Response(
        status,
        json.dumps(data).encode(),
        {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )


@dataclass
class _Ctx:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    auth: str | None
    credential: str | None
    token: MintedToken | None


# ------------------------------------------------------------------------------------------- server

Handler = Callable[[_Ctx, re.Match[str]], _Response]
_OWNER_REPO = r"/repos/(?P<o>[^/]+)/(?P<r>[^/]+)"


class FakeGitHub:
    """The fake. Use as a context manager, or call :meth:`start`/:meth:`stop`."""

    def __init__(
        self,
        root: Path,
        *,
        app_id: int = 4242,
        client_id: str = "Iv23liFakeClient01",
        app_slug: str = "backend-review",
        webhook_secret: str = "fake-webhook-secret-1234567890",  # noqa: S107
        host: str = "127.0.0.1",  # the compose test binds a container network's gateway address
        port: int = 0,
        tls: ssl.SSLContext | None = None,  # https, for clients that allow plain http on loopback only
    ) -> None:
        self.root = Path(root)
        self.host, self._port, self._tls = host, port, tls
        self.git_root = self.root / "fake-github-git"
        self.git_root.mkdir(parents=True, exist_ok=True)
        self.app_id = app_id
        self.client_id = client_id
        self.app_slug = app_slug
        self.webhook_secret = webhook_secret
        key = _app_key()
        self.private_key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        self._public_key = key.public_key()
        self.lock = threading.RLock()
        self._ids = itertools.count(1001)
        self.delay = 0.0
        """Seconds every call waits before it is answered (e.g. the bench's "GitHub answers after 3 s")."""

        self.installations: dict[int, FakeInstallation] = {}
        self.repos: dict[str, FakeRepo] = {}
        self.pulls: dict[tuple[str, int], FakePull] = {}
        self.permissions: dict[tuple[str, str], str | int] = {}
        self.tokens: list[MintedToken] = []
        self.revoked: list[MintedToken] = []
        self.reviews: list[FakeReview] = []
        self.review_comments: list[FakeReviewComment] = []
        self.issue_comments: dict[int, FakeIssueComment] = {}
        self.reactions: list[FakeReaction] = []
        self.check_runs: dict[int, FakeCheckRun] = {}
        self.requests: list[RecordedRequest] = []
        self.git_requests: list[GitRequest] = []
        self.faults: list[FaultRule] = []
        self.git_remote_errors: list[
            str
        ] = []  # next git fetches answered "ERR <message>" (see git_error_next)
        self.manifest_codes: set[str] = set()  # codes the manifest flow would hand to the browser
        self.manifest_posts: list[dict[str, Any]] = []  # what the stand-in App-creation page received
        self.token_mint_errors: list[str] = []  # why a mint was refused (JWT problems etc.)
        self.errors: list[str] = []  # unexpected exceptions inside the fake; tests may assert it is empty
        self.resolve_needs_contents_write = False
        """github.com has been seen refusing ``resolveReviewThread`` to tokens without ``contents: write``."""
        self.graphql_calls: list[str] = []  # the operation of each GraphQL request, in order

        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._install_routes()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeGitHub:
        fake = self

        class _Bound(_RequestHandler):
            owner = fake

        server = ThreadingHTTPServer((self.host, self._port), _Bound)
        if self._tls is not None:
            # the handshake runs in the handler thread, so a silent client cannot stall accept()
            server.socket = self._tls.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeGitHub not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Origin with a trailing slash; the REST API is served at its root (like api.github.com)."""
        return f"{'https' if self._tls else 'http'}://{self.host}:{self.port}/"

    api_url = url

    def clone_url(self, repo: FakeRepo) -> str:
        return f"{self.url}{repo.owner}/{repo.name}.git"

    @property
    def bot_login(self) -> str:
        return f"{self.app_slug}[bot]"

    def _poster(self, ctx: _Ctx) -> str:
        """Who GitHub shows as the author: a workflow's GITHUB_TOKEN posts as github-actions[bot]."""
        token = ctx.token
        if token is not None and token.body.get("workflow"):
            return "github-actions[bot]"
        return self.bot_login

    # ------------------------------------------------------------------ state builders

    def next_id(self) -> int:
        with self.lock:
            return next(self._ids)

    def add_installation(
        self,
        account: str = "octo-org",
        *,
        id: int | None = None,
        permissions: dict[str, str] | None = None,
        suspended: bool = False,
    ) -> FakeInstallation:
        inst = FakeInstallation(
            id or self.next_id(), account, dict(permissions or APP_PERMISSIONS), suspended=suspended
        )
        with self.lock:
            self.installations[inst.id] = inst
        return inst

    def add_repo(
        self,
        installation: FakeInstallation,
        owner: str,
        name: str,
        *,
        id: int | None = None,
        default_branch: str = "main",
        private: bool = True,
    ) -> FakeRepo:
        """Create the repository and its empty bare git repository; push with :meth:`FakeRepo.push`."""
        bare = self.git_root / owner / f"{name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "init", "-q", "--bare", "-b", default_branch, str(bare)],
            env=_git_env(),
            check=True,
            capture_output=True,
        )
        repo = FakeRepo(id or self.next_id(), owner, name, installation.id, bare, default_branch, private)
        with self.lock:
            self.repos[repo.full_name.lower()] = repo
        return repo

    def add_pull(
        self,
        repo: FakeRepo,
        *,
        head_ref: str,
        base_ref: str | None = None,
        number: int | None = None,
        title: str = "A change",
        body: str | None = "",
        user_login: str = "octocat",
        user_type: str = "User",
        draft: bool = False,
        state: str = "open",
        labels: list[str] | None = None,
        head_repo_full_name: str | None = None,
    ) -> FakePull:
        """Open a PR from ``head_ref`` into ``base_ref`` (both already pushed). Like GitHub, this also
        writes ``refs/pull/{n}/head``. Call :meth:`update_pull` after pushing new commits."""
        base_ref = base_ref or repo.default_branch
        with self.lock:
            number = number or 1 + max((n for (r, n) in self.pulls if r == repo.full_name), default=0)
        pr = FakePull(
            repo,
            number,
            title,
            body,
            repo.sha(head_ref),
            repo.sha(base_ref),
            head_ref,
            base_ref,
            user_login,
            user_type,
            draft,
            state,
            list(labels or []),
            head_repo_full_name,
        )
        repo.git("update-ref", f"refs/pull/{number}/head", pr.head_sha)
        with self.lock:
            self.pulls[(repo.full_name, number)] = pr
        return pr

    def update_pull(self, pr: FakePull, **changes: Any) -> FakePull:
        """Re-read head/base SHAs from the refs (after a push) and apply field changes."""
        with self.lock:
            for k, v in changes.items():
                setattr(pr, k, v)
            pr.head_sha = pr.repo.sha(pr.head_ref)
            pr.base_sha = pr.repo.sha(pr.base_ref)
        pr.repo.git("update-ref", f"refs/pull/{pr.number}/head", pr.head_sha)
        return pr

    def set_permission(self, repo: FakeRepo, login: str, level: str | int) -> None:
        """``level``: "admin" | "write" | "read" | "none", or an HTTP status to answer with (404, 500)."""
        with self.lock:
            self.permissions[(repo.full_name, login.lower())] = level

    def add_issue_comment(
        self, pr: FakePull, body: str, *, user_login: str = "alice", user_type: str = "User"
    ) -> FakeIssueComment:
        c = FakeIssueComment(self.next_id(), pr.repo.full_name, pr.number, body, user_login, user_type)
        with self.lock:
            self.issue_comments[c.id] = c
        return c

    def add_token(self, repo: FakeRepo, *, permissions: dict[str, str]) -> str:
        """A token handed out without the App flow, like a workflow's ``GITHUB_TOKEN``: bound to ``repo``
        with exactly ``permissions`` (e.g. ``{"contents": "read", "pull_requests": "read"}`` for a fork
        PR). It is recorded in :attr:`tokens` like a minted one."""
        value = "ghs_" + secrets.token_hex(18)
        tok = MintedToken(
            value,
            repo.installation_id,
            {"workflow": True, "permissions": dict(permissions)},
            frozenset({repo.id}),
            dict(permissions),
            datetime.now(UTC) + timedelta(hours=1),
        )
        with self.lock:
            self.tokens.append(tok)
        return value

    def delete_issue_comment(self, comment_id: int) -> None:
        with self.lock:
            self.issue_comments[comment_id].deleted = True

    # ------------------------------------------------------------------ faults

    def fail_next(
        self,
        method: str,
        path: str,
        *,
        status: int | None = 502,
        times: int | None = 1,
        headers: dict[str, str] | None = None,
        json: Any = None,
        delay: float = 0.0,
        process: bool = False,
    ) -> FaultRule:
        """Answer the next ``times`` matching calls (``None`` → all) with ``status``.

        ``path`` is exact or an fnmatch glob (``/repos/o/r/pulls/*/reviews``). ``process=True`` handles
        the request first (the write happens) and then answers with the fault: "GitHub created the
        review but the response was lost". ``status=None`` with ``process=True`` returns the normal
        answer after ``delay`` (provoking a client timeout)."""
        rule = FaultRule(
            method.upper(),
            path,
            status,
            times,
            dict(headers or {}),
            json if json is not None else {"message": "Server Error"},
            delay,
            process,
        )
        with self.lock:
            self.faults.append(rule)
        return rule

    def git_error_next(self, message: str, times: int = 1) -> None:
        """Answer the next ``times`` git ref advertisements with ``ERR <message>``, which real git prints
        to stderr as ``fatal: remote error: <message>``: hostile text in a git failure."""
        with self.lock:
            self.git_remote_errors.extend([message] * times)

    def rate_limit_next(
        self,
        method: str,
        path: str,
        *,
        kind: str = "secondary",
        retry_after: int | None = 30,
        reset_in: int = 120,
        times: int | None = 1,
    ) -> FaultRule:
        """``kind``: "secondary" (403, message, optional ``retry-after``), "primary" (403,
        ``x-ratelimit-remaining: 0`` + reset) or "429" (429 with ``retry-after``)."""
        headers: dict[str, str] = {}
        if kind == "primary":
            headers = {
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-used": "5000",
                "x-ratelimit-reset": str(int(time.time()) + reset_in),
                "x-ratelimit-resource": "core",
            }
            body = {"message": "API rate limit exceeded for installation ID 1."}
        else:
            body = {
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you "
                "try again."
            }
        if retry_after is not None and kind != "primary":
            headers["retry-after"] = str(retry_after)
        status = 429 if kind == "429" else 403
        return self.fail_next(method, path, status=status, times=times, headers=headers, json=body)

    def _take_fault(self, method: str, path: str) -> FaultRule | None:
        with self.lock:
            for rule in self.faults:
                if rule.method in (method, "*") and (
                    rule.path == path or fnmatch.fnmatchcase(path, rule.path)
                ):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self.faults.remove(rule)
                    return rule
        return None

    # ------------------------------------------------------------------ webhooks

    def webhook(
        self,
        fixture: Path | str,
        *,
        pr: FakePull | None = None,
        repo: FakeRepo | None = None,
        installation: FakeInstallation | int | None = None,
        sender: str | None = None,
        event: str | None = None,
        delivery: str | None = None,
        secret: str | None = None,
        **overrides: Any,
    ) -> tuple[dict[str, str], bytes]:
        """Patch a fixture with the fake's ids and sign it. Returns (headers, raw body).

        ``overrides`` set nested keys with ``__`` as separator: ``comment__body="/backend-review"``,
        ``action="edited"``, ``pull_request__draft=True``. The event name defaults to the fixture's
        directory name."""
        path = Path(fixture)
        payload: dict[str, Any] = json.loads(path.read_text())
        repo = repo or (pr.repo if pr else None)
        inst_id = installation.id if isinstance(installation, FakeInstallation) else installation
        if inst_id is None and repo is not None:
            inst_id = repo.installation_id
        if inst_id is not None:
            payload["installation"] = {**(payload.get("installation") or {}), "id": inst_id}
        if repo is not None and isinstance(payload.get("repository"), dict):
            payload["repository"].update(self._repo_json(repo))
        if pr is not None:
            if isinstance(payload.get("pull_request"), dict):
                payload["pull_request"].update(self._pull_json(pr))
                payload["number"] = pr.number
            issue = payload.get("issue")
            if isinstance(issue, dict):
                issue["number"] = pr.number
                if isinstance(issue.get("pull_request"), dict):
                    issue["pull_request"]["url"] = f"{self.url}repos/{pr.repo.full_name}/pulls/{pr.number}"
            run = payload.get("check_run")
            if isinstance(run, dict):
                run["head_sha"] = pr.head_sha
                run["pull_requests"] = [
                    {
                        "number": pr.number,
                        "head": {"ref": pr.head_ref, "sha": pr.head_sha},
                        "base": {"ref": pr.base_ref, "sha": pr.base_sha},
                    }
                ]
        if sender is not None:
            payload["sender"] = {**(payload.get("sender") or {}), "login": sender}
        for key, value in overrides.items():
            node = payload
            *parents, leaf = key.split("__")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        raw = json.dumps(payload).encode()
        digest = hmac.new((secret or self.webhook_secret).encode(), raw, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/fake",
            "X-GitHub-Event": event or path.parent.name,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "1",
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-GitHub-Hook-Installation-Target-ID": str(self.app_id),
            "X-Hub-Signature-256": f"sha256={digest}",
        }
        return headers, raw

    # ------------------------------------------------------------------ helpers for assertions

    def reviews_for(self, pr: FakePull) -> list[FakeReview]:
        with self.lock:
            return [r for r in self.reviews if r.repo == pr.repo.full_name and r.pull_number == pr.number]

    def requests_to(self, method: str, pattern: str) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.method == method and fnmatch.fnmatchcase(r.path, pattern)]

    # ------------------------------------------------------------------ request handling

    def _handle(self, h: _RequestHandler) -> None:
        split = urllib.parse.urlsplit(h.path)
        path = urllib.parse.unquote(split.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(split.query).items()}
        headers = {k.lower(): v for k, v in h.headers.items()}
        body = h.read_body()
        auth, credential = _parse_auth(headers.get("authorization", ""))
        try:
            parsed = json.loads(body) if body and "json" in headers.get("content-type", "json") else None
        except ValueError:
            parsed = None
        token = self._find_token(credential) if auth in ("token", "basic") and credential else None
        rec = RecordedRequest(
            h.command,
            path,
            query,
            {k: v for k, v in headers.items() if k not in ("authorization", "cookie")},
            parsed,
            auth,
            token,
        )
        with self.lock:
            self.requests.append(rec)
        if self.delay:
            time.sleep(self.delay)
        ctx = _Ctx(h.command, path, query, headers, body, parsed, auth, credential, token)
        fault = self._take_fault(h.command, path)
        if fault is not None and not fault.process:
            time.sleep(fault.delay)
            resp = _json(fault.status or 500, fault.json, fault.headers)
        else:
            resp = self._dispatch(ctx, split.query)
            if fault is not None:
                time.sleep(fault.delay)
                if fault.status is not None:
                    resp = _json(fault.status, fault.json, fault.headers)
        rec.status = resp.status
        h.send(resp)

    def _dispatch(self, ctx: _Ctx, raw_query: str) -> _Response:
        try:
            git = re.fullmatch(r"/(?P<o>[^/]+)/(?P<r>[^/]+)\.git(?P<rest>/.*)", ctx.path)
            if git is not None:
                return self._git(ctx, git, raw_query)
            for method, pattern, handler in self._routes:
                m = pattern.fullmatch(ctx.path)
                if m is not None and method == ctx.method:
                    return handler(ctx, m)
            raise HTTPError(404, "Not Found")
        except HTTPError as e:
            return _json(e.status, e.payload, e.headers)
        except Exception as e:  # a bug in the fake or a git failure: visible to the test, not a hang
            with self.lock:
                self.errors.append(f"{ctx.method} {ctx.path}: {type(e).__name__}: {e}")
            return _json(500, {"message": f"fake error: {type(e).__name__}"})

    def _install_routes(self) -> None:
        R = _OWNER_REPO
        table: list[tuple[str, str, Handler]] = [
            ("POST", r"/app/installations/(?P<id>\d+)/access_tokens", self._r_mint),
            ("POST", r"/app-manifests/(?P<code>[^/]+)/conversions", self._r_manifest),
            ("POST", r"/settings/apps/new", self._r_create_app_page),
            ("POST", r"/organizations/(?P<org>[^/]+)/settings/apps/new", self._r_create_app_page),
            ("GET", r"/app", self._r_app),
            ("GET", r"/app/installations/(?P<id>\d+)", self._r_installation),
            ("GET", R + r"/installation", self._r_repo_installation),
            ("DELETE", r"/installation/token", self._r_revoke),
            ("GET", R, self._r_repo),
            ("GET", R + r"/pulls/(?P<n>\d+)", self._r_pull),
            ("GET", R + r"/pulls/(?P<n>\d+)/files", self._r_pull_files),
            ("GET", R + r"/pulls/(?P<n>\d+)/reviews", self._r_list_reviews),
            ("POST", R + r"/pulls/(?P<n>\d+)/reviews", self._r_create_review),
            ("GET", R + r"/pulls/(?P<n>\d+)/comments", self._r_list_review_comments),
            ("POST", R + r"/pulls/(?P<n>\d+)/comments", self._r_create_review_comment),
            ("GET", R + r"/contents/(?P<path>.*)", self._r_contents),
            ("GET", R + r"/compare/(?P<a>[^/]+?)\.\.\.(?P<b>[^/]+)", self._r_compare),
            ("GET", R + r"/issues/comments/(?P<id>\d+)", self._r_get_issue_comment),
            ("POST", R + r"/issues/comments/(?P<id>\d+)/reactions", self._r_reaction),
            ("GET", R + r"/issues/(?P<n>\d+)/comments", self._r_list_issue_comments),
            ("POST", R + r"/issues/(?P<n>\d+)/comments", self._r_create_issue_comment),
            ("POST", R + r"/check-runs", self._r_create_check),
            ("PATCH", R + r"/check-runs/(?P<id>\d+)", self._r_update_check),
            ("GET", R + r"/check-runs/(?P<id>\d+)", self._r_get_check),
            ("GET", R + r"/commits/(?P<ref>[^/]+)/check-runs", self._r_list_checks_for_ref),
            ("GET", R + r"/collaborators/(?P<login>[^/]+)/permission", self._r_permission),
            ("POST", r"/graphql", self._r_graphql),
        ]
        self._routes = [(m, re.compile(p), h) for m, p, h in table]

    # ------------------------------------------------------------------ auth

    def _find_token(self, value: str) -> MintedToken | None:
        with self.lock:
            return next((t for t in self.tokens if t.value == value), None)

    def _require_jwt(self, ctx: _Ctx) -> None:
        if ctx.auth != "jwt" or not ctx.credential:
            raise HTTPError(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(
                ctx.credential,
                self._public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"], "verify_iat": False},
                leeway=30,
            )
        except jwt.PyJWTError as e:
            self.token_mint_errors.append(f"jwt: {type(e).__name__}")
            raise HTTPError(401, "A JSON web token could not be decoded") from e
        if str(claims["iss"]) not in (str(self.app_id), self.client_id):
            self.token_mint_errors.append("jwt: wrong iss")
            raise HTTPError(401, "Integration not found")
        if int(claims["exp"]) - int(claims["iat"]) > 600 or int(claims["iat"]) > time.time() + 30:
            self.token_mint_errors.append("jwt: bad iat/exp")
            raise HTTPError(401, "'Expiration time' claim ('exp') is too far in the future")

    def _require_token(self, ctx: _Ctx) -> MintedToken:
        tok = ctx.token
        if tok is None or tok.revoked or tok.expires_at < datetime.now(UTC):
            raise HTTPError(401, "Bad credentials")
        inst = self.installations.get(tok.installation_id)
        if inst is None or inst.suspended:
            raise HTTPError(403, "This installation has been suspended")
        return tok

    def _authorize(self, ctx: _Ctx, m: re.Match[str], perms: tuple[str, ...], level: str) -> FakeRepo:
        """The repo in the path, if the request's token may use it with ``level`` on any of ``perms``."""
        tok = self._require_token(ctx)
        repo = self.repos.get(f"{m['o']}/{m['r']}".lower())
        if (
            repo is None
            or repo.installation_id != tok.installation_id
            or (tok.repository_ids is not None and repo.id not in tok.repository_ids)
        ):
            raise HTTPError(404, "Not Found")
        if "metadata" in perms:
            return repo  # every installation token can read metadata
        for p in perms:
            have = tok.permissions.get(p)
            if have == "write" or (have == "read" and level == "read"):
                return repo
        raise HTTPError(403, "Resource not accessible by integration")

    # ------------------------------------------------------------------ app / token routes

    def _r_mint(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        self._require_jwt(ctx)
        inst = self.installations.get(int(m["id"]))
        if inst is None:
            raise HTTPError(404, "Not Found")
        if inst.suspended:
            raise HTTPError(403, "This installation has been suspended")
        body = ctx.json if isinstance(ctx.json, dict) else {}
        own = {r.id: r for r in self.repos.values() if r.installation_id == inst.id}
        repo_ids: set[int] | None = None
        if "repository_ids" in body:
            repo_ids = set()
            for rid in body["repository_ids"]:
                if rid not in own:
                    raise HTTPError(
                        422,
                        "There is at least one repository that does not exist or is not "
                        "accessible to the parent installation.",
                    )
                repo_ids.add(int(rid))
        if "repositories" in body:
            by_name = {r.name.lower(): r.id for r in own.values()}
            repo_ids = repo_ids or set()
            for name in body["repositories"]:
                if str(name).lower() not in by_name:
                    raise HTTPError(
                        422,
                        "There is at least one repository that does not exist or is not "
                        "accessible to the parent installation.",
                    )
                repo_ids.add(by_name[str(name).lower()])
        perms = dict(inst.permissions)
        if "permissions" in body:
            perms = {}
            for name, level in body["permissions"].items():
                granted = inst.permissions.get(name)
                if (
                    granted is None
                    or (level == "write" and granted != "write")
                    or level not in ("read", "write")
                ):
                    raise HTTPError(
                        422, f"The permissions requested are not granted to this installation: {name}"
                    )
                perms[name] = level
        value = "ghs_" + "".join(
            secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
            for _ in range(36)
        )
        tok = MintedToken(
            value,
            inst.id,
            body,
            frozenset(repo_ids) if repo_ids is not None else None,
            perms,
            datetime.now(UTC) + timedelta(hours=1),
        )
        with self.lock:
            self.tokens.append(tok)
        out: dict[str, Any] = {
            "token": value,
            "expires_at": tok.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "permissions": perms,
            "repository_selection": "selected" if repo_ids is not None else "all",
        }
        if repo_ids is not None:
            out["repositories"] = [self._repo_json(own[i]) for i in sorted(repo_ids)]
        return _json(201, out)

    def _r_manifest(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        """The manifest flow's code exchange: no auth, each code works once."""
        with self.lock:
            if m["code"] not in self.manifest_codes:
                raise HTTPError(404, "Not Found")
            self.manifest_codes.discard(m["code"])
        return _json(
            201,
            {
                "id": self.app_id,
                "slug": self.app_slug,
                "client_id": self.client_id,
                "client_secret": "fake-client-secret-0123456789abcdef",
                "webhook_secret": self.webhook_secret,
                "pem": self.private_key_pem,
                "html_url": f"{self.url}apps/{self.app_slug}",
            },
        )

    def _r_create_app_page(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        """A stand-in for GitHub's App-creation page (github.com, not the API): it receives the manifest
        form, and its "Create GitHub App" button sends the browser to ``redirect_url?code=…&state=…``."""
        form = urllib.parse.parse_qs(ctx.body.decode("utf-8", "replace"))
        try:
            manifest = json.loads(form["manifest"][-1])
            redirect = str(manifest["redirect_url"])
            hook = str(manifest["hook_attributes"]["url"])
        except (KeyError, IndexError, TypeError, ValueError):
            return _Response(422, b"invalid manifest", {"Content-Type": "text/plain"})
        code = f"code{self.next_id()}"
        with self.lock:
            self.manifest_codes.add(code)
            self.manifest_posts.append(
                {"manifest": manifest, "state": ctx.query.get("state"), "org": m.groupdict().get("org")}
            )
        state = html.escape(ctx.query.get("state", ""))
        page = f"""<!doctype html><html><head><title>Create GitHub App</title></head><body>
<h1>Create GitHub App</h1><p>Name: {html.escape(str(manifest.get("name", "")))}</p>
<p>Webhook URL: {html.escape(hook)}</p>
<form method="get" action="{html.escape(redirect)}"><input type="hidden" name="code" value="{code}">
<input type="hidden" name="state" value="{state}">
<button id="create" type="submit">Create GitHub App for you</button></form></body></html>"""
        return _Response(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})

    def _r_revoke(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        tok = self._require_token(ctx)
        with self.lock:
            tok.revoked = True
            self.revoked.append(tok)
        return _Response(204)

    def _r_app(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        self._require_jwt(ctx)
        return _json(
            200,
            {
                "id": self.app_id,
                "client_id": self.client_id,
                "slug": self.app_slug,
                "name": self.app_slug,
                "owner": {"login": "fake-owner", "type": "Organization"},
                "permissions": APP_PERMISSIONS,
                "events": ["pull_request", "issue_comment", "check_run", "check_suite"],
            },
        )

    def _installation_json(self, inst: FakeInstallation) -> dict[str, Any]:
        return {
            "id": inst.id,
            "app_id": self.app_id,
            "app_slug": self.app_slug,
            "account": {"login": inst.account, "type": "Organization"},
            "permissions": inst.permissions,
            "repository_selection": "selected",
            "suspended_at": _now() if inst.suspended else None,
        }

    def _r_installation(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        self._require_jwt(ctx)
        inst = self.installations.get(int(m["id"]))
        if inst is None:
            raise HTTPError(404, "Not Found")
        return _json(200, self._installation_json(inst))

    def _r_repo_installation(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        self._require_jwt(ctx)
        repo = self.repos.get(f"{m['o']}/{m['r']}".lower())
        if repo is None:
            raise HTTPError(404, "Not Found")
        return _json(200, self._installation_json(self.installations[repo.installation_id]))

    # ------------------------------------------------------------------ JSON shapes

    def _repo_json(self, repo: FakeRepo) -> dict[str, Any]:
        return {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": {"login": repo.owner, "type": "Organization"},
            "private": repo.private,
            "default_branch": repo.default_branch,
            "html_url": f"{self.url}{repo.full_name}",
            "url": f"{self.url}repos/{repo.full_name}",
            "clone_url": self.clone_url(repo),
        }

    def _pull_json(self, pr: FakePull) -> dict[str, Any]:
        stats = self._numstat(pr.repo, pr.base_sha, pr.head_sha)
        head_repo = self._repo_json(pr.repo)
        if pr.head_repo_full_name:
            owner, name = pr.head_repo_full_name.split("/", 1)
            head_repo = {
                **head_repo,
                "name": name,
                "full_name": pr.head_repo_full_name,
                "owner": {"login": owner},
                "id": int(hashlib.sha1(pr.head_repo_full_name.encode()).hexdigest()[:6], 16),
            }
        user = {"login": pr.user_login, "type": pr.user_type, "id": 1}
        return {
            "url": f"{self.url}repos/{pr.repo.full_name}/pulls/{pr.number}",
            "id": pr.number + 100000,
            "node_id": f"PR_{pr.number}",
            "html_url": f"{self.url}{pr.repo.full_name}/pull/{pr.number}",
            "number": pr.number,
            "state": pr.state,
            "locked": False,
            "title": pr.title,
            "user": user,
            "body": pr.body,
            "labels": [{"name": n} for n in pr.labels],
            "draft": pr.draft,
            "merged": False,
            "head": {
                "label": f"{head_repo['owner']['login']}:{pr.head_ref}",
                "ref": pr.head_ref,
                "sha": pr.head_sha,
                "user": head_repo["owner"],
                "repo": head_repo,
            },
            "base": {
                "label": f"{pr.repo.owner}:{pr.base_ref}",
                "ref": pr.base_ref,
                "sha": pr.base_sha,
                "user": {"login": pr.repo.owner},
                "repo": self._repo_json(pr.repo),
            },
            "author_association": "CONTRIBUTOR",
            "commits": len(self._pr_commits(pr)),
            "additions": sum(a for _, a, _ in stats),
            "deletions": sum(d for _, _, d in stats),
            "changed_files": len(stats),
        }

    def _review_json(self, r: FakeReview) -> dict[str, Any]:
        return {
            "id": r.id,
            "node_id": f"PRR_{r.id}",
            "user": {"login": r.user_login, "type": r.user_type},
            "body": r.body,
            "state": r.state,
            "commit_id": r.commit_id,
            "html_url": f"{self.url}{r.repo}/pull/{r.pull_number}#pullrequestreview-{r.id}",
            "pull_request_url": f"{self.url}repos/{r.repo}/pulls/{r.pull_number}",
            "submitted_at": _now(),
            "author_association": "NONE",
        }

    def _review_comment_json(self, c: FakeReviewComment) -> dict[str, Any]:
        return {
            "id": c.id,
            "node_id": f"PRRC_{c.id}",
            "pull_request_review_id": c.review_id,
            "body": c.body,
            "path": c.path,
            "commit_id": c.commit_id,
            "original_commit_id": c.commit_id,
            "line": c.line,
            "side": c.side,
            "start_line": c.start_line,
            "start_side": c.start_side,
            "subject_type": c.subject_type,
            "in_reply_to_id": c.in_reply_to_id,
            "user": {"login": c.user_login, "type": "Bot"},
            "html_url": f"{self.url}{c.repo}/pull/{c.pull_number}#discussion_r{c.id}",
        }

    def _issue_comment_json(self, c: FakeIssueComment) -> dict[str, Any]:
        return {
            "id": c.id,
            "node_id": f"IC_{c.id}",
            "body": c.body,
            "user": {"login": c.user_login, "type": c.user_type},
            "html_url": f"{self.url}{c.repo}/pull/{c.issue_number}#issuecomment-{c.id}",
            "issue_url": f"{self.url}repos/{c.repo}/issues/{c.issue_number}",
            "created_at": _now(),
        }

    def _check_json(self, c: FakeCheckRun) -> dict[str, Any]:
        return {
            "id": c.id,
            "name": c.name,
            "head_sha": c.head_sha,
            "status": c.status,
            "conclusion": c.conclusion,
            "external_id": c.external_id,
            "output": {
                "title": c.output.get("title"),
                "summary": c.output.get("summary"),
                "text": c.output.get("text"),
                "annotations_count": len(c.annotations),
            },
            "html_url": f"{self.url}{c.repo}/runs/{c.id}",
            "app": {"id": self.app_id, "slug": self.app_slug},
        }

    # ------------------------------------------------------------------ git plumbing

    def _commit(self, repo: FakeRepo, ref: str) -> str:
        sha = repo.sha(ref) if re.fullmatch(r"[0-9A-Za-z._/\-^~]+", ref) and not ref.startswith("-") else ""
        if not sha:
            raise HTTPError(404, "No commit found for SHA: " + ref)
        return sha

    def _diff_text(self, repo: FakeRepo, base: str, head: str) -> str:
        return repo.git("diff", "--no-color", "--no-ext-diff", "--no-textconv", "-M", f"{base}...{head}")

    def _numstat(self, repo: FakeRepo, base: str, head: str) -> list[tuple[str, int, int]]:
        out = repo.git("diff", "--numstat", "-z", "--no-renames", f"{base}...{head}")
        rows = []
        for rec in out.split("\0"):
            if rec.strip():
                a, d, name = rec.split("\t", 2)
                rows.append((name, int(a) if a != "-" else 0, int(d) if d != "-" else 0))
        return rows

    def _pr_commits(self, pr: FakePull) -> list[str]:
        return pr.repo.git("rev-list", f"{pr.base_sha}..{pr.head_sha}").split()

    def _files_json(self, repo: FakeRepo, base: str, head: str) -> list[dict[str, Any]]:
        files = []
        for pf in PatchSet(self._diff_text(repo, base, head)):
            path = pf.path
            status = (
                "added"
                if pf.is_added_file
                else "removed"
                if pf.is_removed_file
                else "renamed"
                if pf.is_rename
                else "modified"
            )
            entry: dict[str, Any] = {
                "sha": hashlib.sha1(path.encode()).hexdigest(),
                "filename": path,
                "status": status,
                "additions": pf.added,
                "deletions": pf.removed,
                "changes": pf.added + pf.removed,
            }
            if pf.is_rename:
                entry["previous_filename"] = (
                    pf.source_file[2:] if pf.source_file.startswith("a/") else pf.source_file
                )
            if not pf.is_binary_file:
                entry["patch"] = "".join(str(h) for h in pf).rstrip("\n")
            files.append(entry)
        return files

    def _anchors(self, repo: FakeRepo, base: str, commit: str) -> dict[str, list[tuple[set[int], set[int]]]]:
        """path → per hunk: (RIGHT lines: added/context, LEFT lines: removed/context)."""
        out: dict[str, list[tuple[set[int], set[int]]]] = {}
        for pf in PatchSet(self._diff_text(repo, base, commit)):
            hunks = []
            for h in pf:
                right = {ln.target_line_no for ln in h if not ln.is_removed and ln.target_line_no}
                left = {ln.source_line_no for ln in h if not ln.is_added and ln.source_line_no}
                hunks.append((right, left))
            out[pf.path] = hunks
        return out

    def _positions(self, repo: FakeRepo, base: str, commit: str) -> dict[str, int]:
        out = {}
        for pf in PatchSet(self._diff_text(repo, base, commit)):
            out[pf.path] = sum(len(h) for h in pf) + max(len(pf) - 1, 0)
        return out

    # ------------------------------------------------------------------ repo / PR routes

    def _pull(self, repo: FakeRepo, m: re.Match[str]) -> FakePull:
        pr = self.pulls.get((repo.full_name, int(m["n"])))
        if pr is None:
            raise HTTPError(404, "Not Found")
        return pr

    def _r_repo(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        return _json(200, self._repo_json(self._authorize(ctx, m, ("metadata",), "read")))

    def _r_pull(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("pull_requests",), "read")
        pr = self._pull(repo, m)
        accept = ctx.headers.get("accept", "")
        if "diff" in accept:
            if len(self._numstat(repo, pr.base_sha, pr.head_sha)) > MAX_DIFF_FILES:
                raise HTTPError(
                    406,
                    "Sorry, the diff exceeded the maximum number of files (300). Consider using 'List pull "
                    "requests files' API or locally cloning the repository instead.",
                    [{"resource": "PullRequest", "field": "diff", "code": "too_large"}],
                )
            text = self._diff_text(repo, pr.base_sha, pr.head_sha)
            return _Response(200, text.encode(), {"Content-Type": "text/x-diff; charset=utf-8"})
        return _json(200, self._pull_json(pr))

    def _paginate(self, ctx: _Ctx, items: list[Any], default: int = 30) -> _Response:
        try:
            per_page = max(1, min(100, int(ctx.query.get("per_page", default))))
            page = max(1, int(ctx.query.get("page", 1)))
        except ValueError as e:
            raise HTTPError(422, "Invalid pagination") from e
        last = max(1, -(-len(items) // per_page))
        links = []
        base = f"{self.url.rstrip('/')}{ctx.path}"
        if page < last:
            links.append(f'<{base}?per_page={per_page}&page={page + 1}>; rel="next"')
            links.append(f'<{base}?per_page={per_page}&page={last}>; rel="last"')
        if page > 1:
            links.append(f'<{base}?per_page={per_page}&page=1>; rel="first"')
            links.append(f'<{base}?per_page={per_page}&page={page - 1}>; rel="prev"')
        chunk = items[(page - 1) * per_page : page * per_page]
        return _json(200, chunk, {"Link": ", ".join(links)} if links else None)

    def _r_pull_files(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("pull_requests",), "read")
        pr = self._pull(repo, m)
        return self._paginate(ctx, self._files_json(repo, pr.base_sha, pr.head_sha)[:MAX_LIST_FILES])

    def _r_contents(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("contents",), "read")
        ref = ctx.query.get("ref") or repo.default_branch
        commit = self._commit(repo, ref)
        path = m["path"].strip("/")
        kind = repo.git("cat-file", "-t", f"{commit}:{path}", check=False).strip()
        if kind == "tree":
            entries = []
            for line in repo.git("ls-tree", "-z", commit, path + "/").split("\0"):
                if line:
                    meta, name = line.split("\t", 1)
                    entries.append(
                        {
                            "type": "dir" if meta.split()[1] == "tree" else "file",
                            "path": name,
                            "name": name.rsplit("/", 1)[-1],
                        }
                    )
            return _json(200, entries)
        if kind != "blob":
            raise HTTPError(404, "Not Found")
        data = subprocess.run(
            ["git", "--git-dir", str(repo.bare), "cat-file", "blob", f"{commit}:{path}"],
            env=_git_env(),
            check=True,
            capture_output=True,
        ).stdout
        if "raw" in ctx.headers.get("accept", ""):
            return _Response(200, data, {"Content-Type": "application/vnd.github.raw"})
        b64 = base64.b64encode(data).decode()
        return _json(
            200,
            {
                "type": "file",
                "encoding": "base64",
                "size": len(data),
                "name": path.rsplit("/", 1)[-1],
                "path": path,
                "sha": repo.git("rev-parse", f"{commit}:{path}").strip(),
                "content": "\n".join(b64[i : i + 60] for i in range(0, len(b64), 60)) + "\n",
            },
        )

    def _r_compare(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("contents",), "read")
        a, b = self._commit(repo, m["a"]), self._commit(repo, m["b"])
        if "diff" in ctx.headers.get("accept", ""):
            return _Response(200, self._diff_text(repo, a, b).encode(), {"Content-Type": "text/x-diff"})
        ahead = repo.git("rev-list", f"{a}..{b}").split()
        behind = repo.git("rev-list", f"{b}..{a}").split()
        status = (
            "identical"
            if not ahead and not behind
            else "ahead"
            if not behind
            else "behind"
            if not ahead
            else "diverged"
        )
        base = repo.git("merge-base", a, b, check=False).strip()
        return _json(
            200,
            {
                "status": status,
                "ahead_by": len(ahead),
                "behind_by": len(behind),
                "total_commits": len(ahead),
                "merge_base_commit": {"sha": base},
                "commits": [{"sha": s} for s in reversed(ahead)],
                "files": self._files_json(repo, a, b)[:MAX_DIFF_FILES],
            },
        )

    # ------------------------------------------------------------------ reviews

    def _validate_anchor(
        self,
        c: dict[str, Any],
        anchors: dict[str, list[tuple[set[int], set[int]]]],
        positions: dict[str, int],
    ) -> bool:
        path, line, start = c.get("path"), c.get("line"), c.get("start_line")
        if not isinstance(path, str) or path not in anchors or not isinstance(c.get("body"), str):
            return False
        if line is None and c.get("position") is not None:
            pos = c["position"]
            return isinstance(pos, int) and 1 <= pos <= positions[path]
        side = c.get("side", "RIGHT")
        if not isinstance(line, int) or side not in ("RIGHT", "LEFT"):
            return False
        idx = 0 if side == "RIGHT" else 1
        hunk = next((h for h in anchors[path] if line in h[idx]), None)
        if hunk is None:
            return False
        if start is None:
            return True
        s_idx = 0 if c.get("start_side", side) == "RIGHT" else 1
        return isinstance(start, int) and start < line and start in hunk[s_idx]

    def _r_create_review(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("pull_requests",), "write")
        pr = self._pull(repo, m)
        body = ctx.json if isinstance(ctx.json, dict) else {}
        commit = body.get("commit_id") or pr.head_sha
        if commit not in self._pr_commits(pr):
            raise HTTPError(422, "Unprocessable Entity", ["Commit not part of the pull request"])
        event = body.get("event")
        states = {
            "APPROVE": "APPROVED",
            "REQUEST_CHANGES": "CHANGES_REQUESTED",
            "COMMENT": "COMMENTED",
            None: "PENDING",
        }
        if event not in states:
            raise HTTPError(422, "Unprocessable Entity", [f"Invalid event {event!r}"])
        text = body.get("body") or ""
        comments = body.get("comments") or []
        if not text and (event == "REQUEST_CHANGES" or (event == "COMMENT" and not comments)):
            raise HTTPError(422, "Unprocessable Entity", ["Body is required"])
        if comments:
            anchors = self._anchors(repo, pr.base_sha, commit)
            positions = self._positions(repo, pr.base_sha, commit)
            if not all(
                isinstance(c, dict) and self._validate_anchor(c, anchors, positions) for c in comments
            ):
                raise HTTPError(422, "Unprocessable Entity", ["Line could not be resolved"])
        with self.lock:
            review = FakeReview(
                self.next_id(),
                repo.full_name,
                pr.number,
                text,
                event,
                states[event],
                commit,
                comments,
                self._poster(ctx),
            )
            self.reviews.append(review)
            for c in comments:
                self.review_comments.append(
                    FakeReviewComment(
                        self.next_id(),
                        repo.full_name,
                        pr.number,
                        review.id,
                        c["body"],
                        c["path"],
                        commit,
                        c.get("line"),
                        c.get("side", "RIGHT") if c.get("line") else None,
                        c.get("start_line"),
                        c.get("start_side", c.get("side", "RIGHT")) if c.get("start_line") else None,
                        "line",
                        self._poster(ctx),
                    )
                )
        return _json(200, self._review_json(review))

    def _r_list_reviews(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("pull_requests",), "read")
        pr = self._pull(repo, m)
        return self._paginate(ctx, [self._review_json(r) for r in self.reviews_for(pr)])

    def _r_list_review_comments(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("pull_requests",), "read")
        pr = self._pull(repo, m)
        with self.lock:
            items = [
                self._review_comment_json(c)
                for c in self.review_comments
                if c.repo == repo.full_name and c.pull_number == pr.number
            ]
        return self._paginate(ctx, items)

    def _r_create_review_comment(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("pull_requests",), "write")
        pr = self._pull(repo, m)
        c = ctx.json if isinstance(ctx.json, dict) else {}
        if not isinstance(c.get("body"), str) or not c["body"]:
            raise HTTPError(422, "Unprocessable Entity", ["Body is required"])
        reply_to = c.get("in_reply_to")
        commit = c.get("commit_id") or pr.head_sha
        subject = c.get("subject_type", "line")
        if reply_to is None:
            if commit not in self._pr_commits(pr):
                raise HTTPError(422, "Unprocessable Entity", ["Commit not part of the pull request"])
            anchors = self._anchors(repo, pr.base_sha, commit)
            if subject == "file":
                if c.get("path") not in anchors:
                    raise HTTPError(422, "Unprocessable Entity", ["Path could not be resolved"])
            elif subject != "line" or not self._validate_anchor(
                c, anchors, self._positions(repo, pr.base_sha, commit)
            ):
                raise HTTPError(422, "Unprocessable Entity", ["Line could not be resolved"])
        line = c.get("line") if subject == "line" else None
        rc = FakeReviewComment(
            self.next_id(),
            repo.full_name,
            pr.number,
            None,
            c["body"],
            str(c.get("path", "")),
            commit,
            line,
            c.get("side", "RIGHT") if line else None,
            c.get("start_line"),
            c.get("start_side"),
            subject,
            self._poster(ctx),
            reply_to,
        )
        with self.lock:
            self.review_comments.append(rc)
        return _json(201, self._review_comment_json(rc))

    # ------------------------------------------------------------------ issue comments, reactions

    def _issue_comment(self, repo: FakeRepo, m: re.Match[str]) -> FakeIssueComment:
        c = self.issue_comments.get(int(m["id"]))
        if c is None or c.deleted or c.repo != repo.full_name:
            raise HTTPError(404, "Not Found")
        return c

    def _r_get_issue_comment(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("issues", "pull_requests"), "read")
        return _json(200, self._issue_comment_json(self._issue_comment(repo, m)))

    def _r_list_issue_comments(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("issues", "pull_requests"), "read")
        pr = self._pull(repo, m)
        with self.lock:
            items = [
                self._issue_comment_json(c)
                for c in self.issue_comments.values()
                if c.repo == repo.full_name and c.issue_number == pr.number and not c.deleted
            ]
        return self._paginate(ctx, items)

    def _r_create_issue_comment(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("issues", "pull_requests"), "write")
        self._pull(repo, m)
        body = ctx.json.get("body") if isinstance(ctx.json, dict) else None
        if not isinstance(body, str) or not body:
            raise HTTPError(422, "Unprocessable Entity", ["Body is required"])
        c = FakeIssueComment(
            self.next_id(), repo.full_name, int(m["n"]), body, self._poster(ctx), "Bot", posted_by_app=True
        )
        with self.lock:
            self.issue_comments[c.id] = c
        return _json(201, self._issue_comment_json(c))

    def _r_reaction(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("issues", "pull_requests"), "write")
        comment = self._issue_comment(repo, m)
        content = ctx.json.get("content") if isinstance(ctx.json, dict) else None
        if content not in REACTIONS:
            raise HTTPError(422, "Unprocessable Entity", [f"Invalid content {content!r}"])
        poster = self._poster(ctx)
        with self.lock:
            existing = next(
                (
                    r
                    for r in self.reactions
                    if r.comment_id == comment.id and r.content == content and r.user_login == poster
                ),
                None,
            )
            if existing is not None:
                return _json(200, {"id": existing.id, "content": content, "user": {"login": poster}})
            reaction = FakeReaction(self.next_id(), repo.full_name, comment.id, content, poster)
            self.reactions.append(reaction)
        return _json(201, {"id": reaction.id, "content": content, "user": {"login": poster}})

    # ------------------------------------------------------------------ check runs

    def _check_output(self, body: dict[str, Any], run: FakeCheckRun | None) -> dict[str, Any]:
        out = body.get("output")
        if out is None:
            return run.output if run else {}
        if not isinstance(out, dict) or not out.get("title") or not out.get("summary"):
            raise HTTPError(422, "Unprocessable Entity", ["output.title and output.summary are required"])
        if len(out.get("annotations") or []) > MAX_ANNOTATIONS:
            raise HTTPError(422, "Unprocessable Entity", ["Only 50 annotations are allowed per request"])
        if len(out["summary"]) > 65535 or len(out.get("text") or "") > 65535:
            raise HTTPError(
                422, "Unprocessable Entity", ["output.summary/text is too long (maximum is 65535)"]
            )
        return {k: v for k, v in out.items() if k != "annotations"}

    def _check_status(self, body: dict[str, Any], run: FakeCheckRun | None) -> tuple[str, str | None]:
        if len(body.get("actions") or []) > 3:
            raise HTTPError(422, "Unprocessable Entity", ["A maximum of three actions are accepted"])
        conclusions = {
            "action_required",
            "cancelled",
            "failure",
            "neutral",
            "success",
            "skipped",
            "timed_out",
        }
        conclusion = body.get("conclusion", run.conclusion if run else None)
        if conclusion is not None and conclusion not in conclusions:
            raise HTTPError(422, "Unprocessable Entity", [f"Invalid conclusion {conclusion!r}"])
        status = "completed" if conclusion else body.get("status", run.status if run else "queued")
        if status not in ("queued", "in_progress", "completed"):
            raise HTTPError(422, "Unprocessable Entity", [f"Invalid status {status!r}"])
        if status == "completed" and not conclusion:
            raise HTTPError(422, "Unprocessable Entity", ["conclusion is required when status is completed"])
        return status, conclusion

    def _r_create_check(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("checks",), "write")
        body = ctx.json if isinstance(ctx.json, dict) else {}
        if not body.get("name") or not body.get("head_sha"):
            raise HTTPError(422, "Unprocessable Entity", ["name and head_sha are required"])
        if not repo.has_commit(str(body["head_sha"])):
            raise HTTPError(
                422, "Unprocessable Entity", ["No commit found for SHA: " + str(body["head_sha"])]
            )
        status, conclusion = self._check_status(body, None)
        run = FakeCheckRun(
            self.next_id(),
            repo.full_name,
            body["name"],
            body["head_sha"],
            status,
            conclusion,
            body.get("external_id"),
            self._check_output(body, None),
            list((body.get("output") or {}).get("annotations") or []),
            list(body.get("actions") or []),
            body,
        )
        with self.lock:
            self.check_runs[run.id] = run
        return _json(201, self._check_json(run))

    def _r_list_checks_for_ref(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("checks",), "read")
        name = ctx.query.get("check_name")
        with self.lock:
            runs = [
                self._check_json(c)
                for c in sorted(self.check_runs.values(), key=lambda c: -c.id)
                if c.repo == repo.full_name and c.head_sha == m["ref"] and (name is None or c.name == name)
            ]
        return _json(200, {"total_count": len(runs), "check_runs": runs})

    def _check_run(self, repo: FakeRepo, m: re.Match[str]) -> FakeCheckRun:
        run = self.check_runs.get(int(m["id"]))
        if run is None or run.repo != repo.full_name:
            raise HTTPError(404, "Not Found")
        return run

    def _r_update_check(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("checks",), "write")
        run = self._check_run(repo, m)
        body = ctx.json if isinstance(ctx.json, dict) else {}
        status, conclusion = self._check_status(body, run)
        output = self._check_output(body, run)
        with self.lock:
            run.status, run.conclusion, run.output = status, conclusion, output
            run.annotations.extend((body.get("output") or {}).get("annotations") or [])
            if "actions" in body:
                run.actions = list(body["actions"])
            run.update_bodies.append(body)
        return _json(200, self._check_json(run))

    def _r_get_check(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("checks",), "read")
        return _json(200, self._check_json(self._check_run(repo, m)))

    # ------------------------------------------------------------------ permissions

    def _r_permission(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        repo = self._authorize(ctx, m, ("metadata",), "read")
        login = m["login"]
        level = self.permissions.get((repo.full_name, login.lower()), "none")
        if isinstance(level, int):
            raise HTTPError(level, "Not Found" if level == 404 else "Server Error")
        return _json(200, {"permission": level, "role_name": level, "user": {"login": login}})

    # ------------------------------------------------------------------ git smart HTTP

    # ------------------------------------------------------------------ GraphQL (review lifecycle)

    def _r_graphql(self, ctx: _Ctx, m: re.Match[str]) -> _Response:
        """``reviewThreads``, ``resolveReviewThread`` and ``minimizeComment``; anything else is an error."""
        body = ctx.json if isinstance(ctx.json, dict) else {}
        query = str(body.get("query") or "")
        variables = body.get("variables") or {}
        self._require_token(ctx)
        for op, handler in (
            ("resolveReviewThread", self._gql_resolve),
            ("minimizeComment", self._gql_minimize),
            ("reviewThreads", self._gql_threads),
        ):
            if op in query:
                with self.lock:
                    self.graphql_calls.append(op)
                try:
                    return _json(200, {"data": handler(ctx, variables, query)})
                except _GraphQLError as e:
                    error = {"type": e.type, "path": [op], "message": e.message}
                    return _json(200, {"data": {op: None}, "errors": [error]})
        return _json(200, {"errors": [{"message": "Field doesn't exist on type 'Query'"}]})

    def _gql_repo(self, ctx: _Ctx, full_name: str, level: str) -> FakeRepo:
        match = re.fullmatch(r"(?P<o>[^/]+)/(?P<r>[^/]+)", full_name)
        assert match is not None
        try:
            return self._authorize(ctx, match, ("pull_requests",), level)
        except HTTPError as e:
            kind = "NOT_FOUND" if e.status == 404 else "FORBIDDEN"
            raise _GraphQLError(kind, str(e)) from None

    def _thread_root(self, node_id: Any, prefix: str) -> FakeReviewComment:
        wanted = str(node_id)
        with self.lock:
            for c in self.review_comments:
                if c.in_reply_to_id is None and wanted == f"{prefix}_{c.id}":
                    return c
        raise _GraphQLError("NOT_FOUND", f"Could not resolve to a node with the global id of '{wanted}'")

    def _outdated(self, repo: FakeRepo, c: FakeReviewComment, head: str) -> bool:
        """The commented lines changed (or the file is gone) between the comment's commit and ``head``."""
        if not repo.git("ls-tree", "--name-only", head, "--", c.path, check=False).strip():
            return True
        diff = repo.git("diff", "-U0", "--no-color", "--no-ext-diff", c.commit_id, head, "--", c.path)
        if c.subject_type == "file" or c.line is None:
            return False
        first, last = c.start_line or c.line, c.line
        for a, b in re.findall(r"^@@ -(\d+)(?:,(\d+))? \+", diff, re.M):
            start, count = int(a), 1 if b == "" else int(b)
            if count and start <= last and first <= start + count - 1:
                return True
        return False

    def _gql_threads(self, ctx: _Ctx, v: dict[str, Any], query: str) -> dict[str, Any]:
        repo = self._gql_repo(ctx, f"{v.get('owner')}/{v.get('name')}", "read")
        pr = self.pulls.get((repo.full_name, int(v.get("number") or 0)))
        if pr is None:
            raise _GraphQLError("NOT_FOUND", "Could not resolve to a PullRequest")
        with self.lock:
            mine = [
                c for c in self.review_comments if c.repo == repo.full_name and c.pull_number == pr.number
            ]
        roots = [c for c in mine if c.in_reply_to_id is None]
        after = int(v.get("after") or 0)
        page, size = roots[after : after + 100], 100
        nodes = []
        for c in page:
            replies = [r for r in mine if r.in_reply_to_id == c.id]
            outdated = self._outdated(repo, c, pr.head_sha)
            nodes.append(
                {
                    "id": f"PRRT_{c.id}",
                    "isResolved": c.resolved,
                    "isOutdated": outdated,
                    "path": c.path,
                    "line": None if outdated else c.line,
                    "subjectType": "FILE" if c.subject_type == "file" else "LINE",
                    "comments": {
                        "nodes": [
                            {"id": f"PRRC_{x.id}", "databaseId": x.id, "isMinimized": x.minimized is not None}
                            for x in [c, *replies]
                        ][:1]
                    },
                }
            )
        more = after + size < len(roots)
        return {
            "repository": {
                "pullRequest": {
                    "reviewThreads": {
                        "pageInfo": {"hasNextPage": more, "endCursor": str(after + size) if more else None},
                        "nodes": nodes,
                    }
                }
            }
        }

    def _gql_resolve(self, ctx: _Ctx, v: dict[str, Any], query: str) -> dict[str, Any]:
        root = self._thread_root(v.get("id"), "PRRT")
        self._gql_repo(ctx, root.repo, "write")
        tok = ctx.token
        if self.resolve_needs_contents_write and (tok is None or tok.permissions.get("contents") != "write"):
            raise _GraphQLError("FORBIDDEN", "Resource not accessible by integration")
        with self.lock:
            root.resolved = True
        return {"resolveReviewThread": {"thread": {"id": f"PRRT_{root.id}", "isResolved": True}}}

    def _gql_minimize(self, ctx: _Ctx, v: dict[str, Any], query: str) -> dict[str, Any]:
        root = self._thread_root(v.get("id"), "PRRC")
        self._gql_repo(ctx, root.repo, "write")
        found = re.search(r"classifier:\s*([A-Z_]+)", query)
        classifier = found[1] if found else str(v.get("classifier") or "")
        if classifier not in ("ABUSE", "DUPLICATE", "OFF_TOPIC", "OUTDATED", "RESOLVED", "SPAM"):
            raise _GraphQLError("UNPROCESSABLE", "Argument 'classifier' has an invalid value")
        with self.lock:
            root.minimized = classifier
        reason = classifier.lower()
        return {"minimizeComment": {"minimizedComment": {"isMinimized": True, "minimizedReason": reason}}}

    def _git(self, ctx: _Ctx, m: re.Match[str], raw_query: str) -> _Response:
        full = f"{m['o']}/{m['r']}"
        wants = _wants(ctx.body, ctx.headers.get("content-encoding", ""))
        rec = GitRequest(full, m["rest"], ctx.query.get("service"), wants)
        with self.lock:
            self.git_requests.append(rec)
        challenge = {"WWW-Authenticate": 'Basic realm="GitHub"'}
        repo = self.repos.get(full.lower())
        try:
            if ctx.auth != "basic":
                raise HTTPError(401, "Authentication required", headers=challenge)
            self._authorize(ctx, m, ("contents",), "read")
        except HTTPError as e:
            status = 401 if e.status in (401, 404) else e.status
            rec.status = status
            return _Response(status, b"Authentication failed\n", {**challenge, "Content-Type": "text/plain"})
        assert repo is not None
        if rec.service not in (None, "git-upload-pack") or m["rest"].endswith("receive-pack"):
            rec.status = 403
            return _Response(403, b"read-only\n", {"Content-Type": "text/plain"})
        with self.lock:
            remote_error = self.git_remote_errors.pop(0) if self.git_remote_errors else None
        if remote_error is not None:
            rec.status = 200
            line = f"ERR {remote_error}\n".encode()
            return _Response(
                200,
                b"%04x" % (len(line) + 4) + line,
                {"Content-Type": f"application/x-{rec.service or 'git-upload-pack'}-advertisement"},
            )
        config = {
            "uploadpack.allowAnySHA1InWant": "true",
            "uploadpack.allowReachableSHA1InWant": "true",
            "uploadpack.allowFilter": "true",
        }
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.git_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "PATH_INFO": f"/{repo.owner}/{repo.name}.git{m['rest']}",
            "QUERY_STRING": raw_query,
            "REQUEST_METHOD": ctx.method,
            "CONTENT_TYPE": ctx.headers.get("content-type", ""),
            "CONTENT_LENGTH": str(len(ctx.body)),
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_CONFIG_COUNT": str(len(config)),
        }
        for i, (k, v) in enumerate(config.items()):
            env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = k, v
        if ctx.headers.get("content-encoding"):
            env["HTTP_CONTENT_ENCODING"] = ctx.headers["content-encoding"]
        if ctx.headers.get("git-protocol"):
            env["GIT_PROTOCOL"] = ctx.headers["git-protocol"]
        proc = subprocess.run(
            ["git", "http-backend"], input=ctx.body, env=env, capture_output=True, timeout=60
        )
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = proc.stdout.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        rec.status = status
        return _Response(status, payload, headers)


def _parse_auth(header: str) -> tuple[str | None, str | None]:
    scheme, _, value = header.strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme in ("bearer", "token") and value:
        # a JWT has three dot-separated parts and starts with an encoded JSON header
        return ("jwt" if value.startswith("eyJ") and value.count(".") == 2 else "token"), value
    if scheme == "basic" and value:
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return None, None
        return "basic", password or user
    return None, None


def _wants(body: bytes, encoding: str) -> list[str]:
    """Object ids named by ``want`` lines of an upload-pack request (protocol v0/v1/v2 pkt-lines)."""
    if not body:
        return []
    if "gzip" in encoding:
        try:
            body = gzip.decompress(body)
        except OSError:
            return []
    return [w.decode() for w in re.findall(rb"want ([0-9a-f]{40})", body)]


class _RequestHandler(BaseHTTPRequestHandler):
    owner: FakeGitHub
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle keep-alive connection releases its thread eventually

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, resp: _Response) -> None:
        try:
            self.send_response(resp.status)
            for k, v in resp.headers.items():
                self.send_header(k, v)
            if not any(k.lower() == "x-ratelimit-remaining" for k in resp.headers):
                # like GitHub: every REST answer says how much of the hour's budget is left
                with self.owner.lock:
                    used = len(self.owner.requests)
                self.send_header("x-ratelimit-limit", "5000")
                self.send_header("x-ratelimit-remaining", str(max(0, 5000 - used)))
            self.send_header("Content-Length", str(len(resp.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(resp.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout fired)

    def _any(self) -> None:
        self.owner._handle(self)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _any


__all__ = [
    "APP_PERMISSIONS",
    "FakeCheckRun",
    "FakeGitHub",
    "FakeInstallation",
    "FakePull",
    "FakeRepo",
    "FakeReview",
    "FakeReviewComment",
    "GitRequest",
    "MintedToken",
    "RecordedRequest",
]
