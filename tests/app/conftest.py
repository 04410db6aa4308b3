"""A fake GitHub holding the demo repository with one open pull request, and a job runner for it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot import demo
from bot.agent.providers import ModelSpec, Provider, make_provider
from bot.events import Decision, Enqueue, decide
from bot.github import GitHubApp
from bot.jobs import JobDeps, ReviewJobRunner
from bot.ledger import TokenLedger
from bot.models import PullRequestRef, ReviewJob
from bot.queue.base import ClaimedJob
from bot.store import open_store
from tests.conftest import WEBHOOKS
from tests.support.fake_github import FakeGitHub, FakeIssueComment, FakePull, FakeRepo
from tests.support.gitrepo import GitRepo, init_repo
from tests.support.model_server import ModelServer

COMMAND_FIXTURE = WEBHOOKS / "issue_comment" / "created.on-pull-request.go-playground.json"
OPENED_FIXTURE = WEBHOOKS / "pull_request" / "opened.payload.json"


@dataclass
class AppWorld:
    fake: FakeGitHub
    repo: FakeRepo
    pull: FakePull
    work: GitRepo
    ledger: TokenLedger
    tmp: Path

    def job(self, trigger: str = "opened", **fields: object) -> ReviewJob:
        pr = PullRequestRef(
            self.repo.owner, self.repo.name, self.pull.number, self.repo.installation_id, self.repo.id
        )
        values: dict[str, object] = {"head_sha": self.pull.head_sha, "delivery_id": "d-1"}
        values.update(fields)
        return ReviewJob(pr=pr, trigger=trigger, **values)  # type: ignore[arg-type]

    def runner(self, **deps: object) -> ReviewJobRunner:
        app = GitHubApp(
            private_key=self.fake.private_key_pem,
            app_id=self.fake.app_id,
            base_url=self.fake.url,
            write_interval=0.0,
        )
        values: dict[str, object] = {
            "github": app,
            "ledger": self.ledger,
            "provider_factory": lambda: None,
            "scratch_root": self.tmp,
        }
        values.update(deps)
        return ReviewJobRunner(JobDeps(**values))  # type: ignore[arg-type]

    def run(
        self, job: ReviewJob, runner: ReviewJobRunner | None = None, attempt: int = 1, job_id: str = "job-1"
    ) -> str:
        claimed = ClaimedJob(id=job_id, job=job, attempt=attempt, lease_token="t")
        return asyncio.run((runner or self.runner())(claimed))

    def push_pr_commit(self, files: dict[str, str | bytes]) -> str:
        sha = self.work.commit("more", files)
        self.repo.push(self.work, "feature")
        self.fake.update_pull(self.pull)
        return sha

    def decide(self, fixture: Path, pull: FakePull | None = None, **overrides: Any) -> Decision:
        """The receiver's real routing decision for a fixture patched to this world (no HTTP)."""
        headers, raw = self.fake.webhook(fixture, pr=pull or self.pull, **overrides)
        return decide(
            headers["X-GitHub-Event"],
            json.loads(raw),
            delivery_id=headers["X-GitHub-Delivery"],
            app_id=self.fake.app_id,
            allowed_bot_app_ids=frozenset(),
        )

    def command(
        self, body: str = "/backend-review", login: str = "alice", permission: str | int | None = "write"
    ) -> tuple[FakeIssueComment, ReviewJob]:
        """A command comment added to the fake and the job the receiver queues for it (head_sha "")."""
        if permission is not None:
            self.fake.set_permission(self.repo, login, permission)
        comment = self.fake.add_issue_comment(self.pull, body, user_login=login)
        decision = self.decide(
            COMMAND_FIXTURE, comment__id=comment.id, comment__body=body, comment__user__login=login
        )
        assert isinstance(decision, Enqueue), decision
        assert decision.authorize == login and decision.on_deny == "react"
        job = decision.job
        assert job.head_sha == "" and job.comment_id == comment.id
        return comment, job

    def reactions(self, comment: FakeIssueComment) -> list[str]:
        with self.fake.lock:
            return [r.content for r in self.fake.reactions if r.comment_id == comment.id]

    def app_comments(self) -> list[str]:
        with self.fake.lock:
            return [c.body for c in self.fake.issue_comments.values() if c.user_login == self.fake.bot_login]


def model_provider(server: ModelServer) -> Callable[[], Provider]:
    """A real Anthropic provider against the scripted server, with fast retries."""
    spec = ModelSpec.parse("anthropic:claude-sonnet-4-6")
    return lambda: make_provider(
        spec, api_key="sk-ant-canary-0123456789", base_url=server.anthropic_url, backoff_base=0.01
    )


def assert_k02_tokens(
    fake: FakeGitHub, repo: FakeRepo, exempt: set[str] | frozenset[str] = frozenset()
) -> None:
    """K-02: every minted token names exactly this repository and explicit permissions; all revoked
    (except ``exempt`` ones, minted by a process that was killed)."""
    with fake.lock:
        tokens = list(fake.tokens)
    for token in tokens:
        assert token.body.get("repository_ids") == [repo.id], token.body
        perms = token.body.get("permissions")
        assert isinstance(perms, dict) and perms, token.body
        assert set(perms) <= {"metadata", "contents", "pull_requests", "checks"}, perms
        assert token.revoked or token.value in exempt, token.body


@contextlib.contextmanager
def make_world(tmp_path: Path, base_files: dict[str, str] | None = None) -> Iterator[AppWorld]:
    """The demo repository (plus ``base_files`` on the base branch) with one open pull request."""
    with FakeGitHub(tmp_path / "fake") as fake:
        inst = fake.add_installation("octo-org")
        repo = fake.add_repo(inst, "octo-org", "orders-service")
        work = init_repo(tmp_path / "work")
        files: dict[str, str | bytes] = {**demo.BASE, **(base_files or {})}
        work.commit("orders service", files)
        work.branch("feature")
        work.commit(demo.PR_TITLE, dict(demo.PR))
        repo.push(work, "main", "feature")
        pull = fake.add_pull(repo, head_ref="feature", title=demo.PR_TITLE, body=demo.PR_BODY)
        store = open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}", tmp_path)
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        try:
            yield AppWorld(fake, repo, pull, work, store.ledger, scratch)
        finally:
            asyncio.run(store.close())
        assert fake.errors == []
        assert_k02_tokens(fake, repo)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[AppWorld]:
    with make_world(tmp_path) as w:
        yield w


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    with ModelServer.start() as server:
        yield server
