"""A fake GitHub holding the demo repository with one open pull request, and a job runner for it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot import demo
from bot.github import GitHubApp
from bot.jobs import JobDeps, ReviewJobRunner
from bot.ledger import SQLiteLedger
from bot.models import PullRequestRef, ReviewJob
from bot.queue.base import ClaimedJob
from tests.support.fake_github import FakeGitHub, FakePull, FakeRepo
from tests.support.gitrepo import GitRepo, init_repo


@dataclass
class AppWorld:
    fake: FakeGitHub
    repo: FakeRepo
    pull: FakePull
    work: GitRepo
    ledger: SQLiteLedger
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

    def run(self, job: ReviewJob, runner: ReviewJobRunner | None = None, attempt: int = 1) -> str:
        claimed = ClaimedJob(id="job-1", job=job, attempt=attempt, lease_token="t")
        return asyncio.run((runner or self.runner())(claimed))

    def push_pr_commit(self, files: dict[str, str]) -> str:
        sha = self.work.commit("more", files)
        self.repo.push(self.work, "feature")
        self.fake.update_pull(self.pull)
        return sha


@pytest.fixture
def world(tmp_path: Path) -> Iterator[AppWorld]:
    with FakeGitHub(tmp_path / "fake") as fake:
        inst = fake.add_installation("octo-org")
        repo = fake.add_repo(inst, "octo-org", "orders-service")
        work = init_repo(tmp_path / "work")
        work.commit("orders service", demo.BASE)
        work.branch("feature")
        work.commit(demo.PR_TITLE, demo.PR)
        repo.push(work, "main", "feature")
        pull = fake.add_pull(repo, head_ref="feature", title=demo.PR_TITLE, body=demo.PR_BODY)
        ledger = SQLiteLedger(tmp_path / "ledger.sqlite3")
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        try:
            yield AppWorld(fake, repo, pull, work, ledger, scratch)
        finally:
            asyncio.run(ledger.close())
        assert fake.errors == []
