"""End to end: `backend-review serve` as a real subprocess against the fake GitHub and the scripted model.

Signed deliveries built by ``FakeGitHub.webhook`` from tests/fixtures/webhooks go over loopback HTTP;
the assertions poll the fake's recorded state with bounded deadlines (never a speed assertion).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bot import demo
from tests.app.conftest import COMMAND_FIXTURE, OPENED_FIXTURE, assert_k02_tokens
from tests.support.fake_github import FakeGitHub, FakeIssueComment, FakePull, FakeRepo
from tests.support.gitrepo import GitRepo, init_repo
from tests.support.model_server import Call, ModelServer, Stall, Submit
from tests.support.waiting import free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
EXE = ROOT / ".venv" / "bin" / "backend-review"
MODEL_KEY = "sk-ant-e2e-canary-" + secrets.token_hex(12)
USERS_PY = demo.PR["app/users.py"].splitlines()
MODEL_LINE = USERS_PY.index('    name = request.args.get("name", "")') + 1
MODEL_FINDING = {
    "path": "app/users.py",
    "line": MODEL_LINE,
    "severity": "medium",
    "category": "performance",
    "title": "Unbounded user search",
    "body": "The search has no LIMIT and no minimum length: one request can scan the whole table.",
    "evidence": USERS_PY[MODEL_LINE - 1].strip(),
    "confidence": 0.9,
}


def _model_script() -> list[Call]:
    # every agent of the review submits; only the first carries the scripted finding
    return [Submit([MODEL_FINDING]), *[Submit([]) for _ in range(8)]]


@dataclass
class Serve:
    """One `backend-review serve` subprocess; its stderr goes to ``log``."""

    env: dict[str, str]
    port: int
    log: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, workers: int = 2) -> None:
        with self.log.open("ab") as err:
            proc = subprocess.Popen(
                [str(EXE), "serve", "--port", str(self.port), "--workers", str(workers)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                cwd=self.log.parent,
            )
        self.procs.append(proc)

        def ready() -> bool:
            assert proc.poll() is None, self.log.read_text()[-3000:]
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for("GET /healthz", ready, timeout=20)

    def kill(self) -> None:
        proc = self.procs[-1]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)

    def post(self, delivery: tuple[dict[str, str], bytes]) -> httpx.Response:
        headers, body = delivery
        return httpx.post(f"{self.url}/webhook", headers=headers, content=body, timeout=10)


@dataclass
class E2E:
    fake: FakeGitHub
    repo: FakeRepo
    pull: FakePull
    model: ModelServer
    serve: Serve
    killed_tokens: set[str] = field(default_factory=set)  # minted by a SIGKILLed process: never revoked

    def check_runs(self) -> list[str | None]:
        with self.fake.lock:
            return [c.status for c in self.fake.check_runs.values()]

    def reactions(self, comment: FakeIssueComment) -> list[str]:
        with self.fake.lock:
            return [r.content for r in self.fake.reactions if r.comment_id == comment.id]

    def idle(self) -> bool:
        """Every minted token revoked (but a killed process's): no job is between its first and last
        GitHub call."""
        with self.fake.lock:
            return all(t.revoked or t.value in self.killed_tokens for t in self.fake.tokens)

    def canaries(self) -> list[str]:
        with self.fake.lock:
            tokens = [t.value for t in self.fake.tokens]
        pem_lines = [line for line in self.fake.private_key_pem.splitlines() if len(line) > 40]
        return [MODEL_KEY, self.fake.webhook_secret, *pem_lines, *tokens]


@pytest.fixture
def e2e(tmp_path: Path) -> Iterator[E2E]:
    secret = secrets.token_urlsafe(40)
    with FakeGitHub(tmp_path / "fake", webhook_secret=secret) as fake, ModelServer.start() as model:
        inst = fake.add_installation("octo-org")
        repo = fake.add_repo(inst, "octo-org", "orders-service")
        work = init_repo(tmp_path / "work")
        work.commit("orders service", dict(demo.BASE))
        work.branch("feature")
        work.commit(demo.PR_TITLE, dict(demo.PR))
        repo.push(work, "main", "feature")
        pull = fake.add_pull(repo, head_ref="feature", title=demo.PR_TITLE, body=demo.PR_BODY)
        data = tmp_path / "data"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "BACKEND_REVIEW_WEBHOOK_SECRET": secret,
            "BACKEND_REVIEW_APP_ID": str(fake.app_id),
            "BACKEND_REVIEW_PRIVATE_KEY": fake.private_key_pem,
            "BACKEND_REVIEW_GITHUB_API_URL": fake.url,
            "BACKEND_REVIEW_DATA_DIR": str(data),
            "BACKEND_REVIEW_MODEL": "anthropic:claude-sonnet-4-6",
            "BACKEND_REVIEW_MODEL_BASE_URL": model.anthropic_url,
            "ANTHROPIC_API_KEY": MODEL_KEY,
            "BACKEND_REVIEW_DEBOUNCE_SECONDS": "0",
            "BACKEND_REVIEW_LEASE_SECONDS": "3",
        }
        serve = Serve(env, free_port(), tmp_path / "serve.log")
        world = E2E(fake, repo, pull, model, serve)
        try:
            yield world
        finally:
            serve.stop()
        log = serve.log.read_text(errors="replace")
        leaked = [i for i, c in enumerate(world.canaries()) if c in log]
        assert leaked == [], "K-06: a secret reached the server log"
        assert "PRIVATE KEY" not in log
        assert fake.errors == []
        assert_k02_tokens(fake, repo, exempt=world.killed_tokens)


def test_e2e_opened_posts_one_review_with_rule_and_model_findings(e2e: E2E) -> None:
    e2e.model.play(_model_script())
    e2e.serve.start()
    delivery = e2e.fake.webhook(OPENED_FIXTURE, pr=e2e.pull)
    first = e2e.serve.post(delivery)
    assert first.status_code == 202, first.text
    again = e2e.serve.post(delivery)  # W-04: the same delivery redelivered
    assert again.status_code == 200, again.text
    wait_for("the review", lambda: e2e.fake.reviews_for(e2e.pull))
    wait_for("the check run to complete", lambda: e2e.check_runs() == ["completed"])
    wait_for("every token revoked", e2e.idle)
    (review,) = e2e.fake.reviews_for(e2e.pull)
    assert review.event == "COMMENT" and review.commit_id == e2e.pull.head_sha
    titles = " ".join(c["body"] for c in review.comments)
    assert "Unbounded user search" in titles  # the scripted model's finding
    assert len(review.comments) >= 5  # and the offline rules' findings
    lines = {(c["path"], c["line"]) for c in review.comments}
    assert ("app/users.py", MODEL_LINE) in lines
    (check,) = e2e.fake.check_runs.values()
    assert check.conclusion == "neutral" and check.annotations
    assert MODEL_KEY not in str(e2e.model.requests[0].body)  # the key travels only in a header
    time.sleep(0.5)  # a duplicate job would have been claimed by now
    assert len(e2e.fake.reviews_for(e2e.pull)) == 1 and len(e2e.fake.check_runs) == 1


def _command(e2e: E2E, login: str, permission: str) -> FakeIssueComment:
    e2e.fake.set_permission(e2e.repo, login, permission)
    comment = e2e.fake.add_issue_comment(e2e.pull, "/backend-review", user_login=login)
    delivery = e2e.fake.webhook(
        COMMAND_FIXTURE,
        pr=e2e.pull,
        comment__id=comment.id,
        comment__body="/backend-review",
        comment__user__login=login,
    )
    assert e2e.serve.post(delivery).status_code == 202
    return comment


def test_e2e_command_by_reader_does_nothing_by_writer_reviews(e2e: E2E) -> None:
    e2e.model.play(_model_script())
    e2e.serve.start()
    reader = _command(e2e, "mallory", "read")
    permission = f"/repos/{e2e.repo.full_name}/collaborators/mallory/permission"
    wait_for("the reader's permission lookup", lambda: e2e.fake.requests_to("GET", permission))
    wait_for("the reader's job to end", e2e.idle)
    assert e2e.fake.reviews_for(e2e.pull) == [] and e2e.fake.check_runs == {}
    assert e2e.reactions(reader) in ([], ["-1"]) and e2e.model.attempts == 0

    writer = _command(e2e, "alice", "write")
    wait_for("👀 on the command", lambda: "eyes" in e2e.reactions(writer))
    wait_for("the review", lambda: e2e.fake.reviews_for(e2e.pull))
    wait_for("👍 on the command", lambda: "+1" in e2e.reactions(writer))
    assert e2e.reactions(writer) == ["eyes", "+1"]
    assert len(e2e.fake.reviews_for(e2e.pull)) == 1
    with e2e.fake.lock:
        app_comments = [c for c in e2e.fake.issue_comments.values() if c.user_login == e2e.fake.bot_login]
    assert app_comments == []  # C-01: the reader never got a text reply


def test_e2e_sigkill_mid_review_then_restart_posts_exactly_once(e2e: E2E) -> None:
    # the first model request hangs; the process is killed while the review waits on it
    e2e.model.play([Stall(120), *_model_script()])
    script_len = len(e2e.model._script)  # the script shrinks when a request consumes a step
    e2e.serve.start()
    assert e2e.serve.post(e2e.fake.webhook(OPENED_FIXTURE, pr=e2e.pull)).status_code == 202
    wait_for("the model request to start", lambda: len(e2e.model._script) < script_len)
    e2e.serve.kill()
    with e2e.fake.lock:
        e2e.killed_tokens.update(t.value for t in e2e.fake.tokens)
    assert e2e.fake.reviews_for(e2e.pull) == []

    e2e.serve.start()  # same data dir: the job's lease expires and the new worker takes it
    wait_for("the review after the restart", lambda: e2e.fake.reviews_for(e2e.pull), timeout=40)
    wait_for("every token of the new attempt revoked", lambda: e2e.check_runs().count("completed") >= 1)
    time.sleep(1.0)
    (review,) = e2e.fake.reviews_for(e2e.pull)
    assert "Unbounded user search" in " ".join(c["body"] for c in review.comments)
    # the retried job took over the killed attempt's check run: one run, and nothing left spinning
    assert e2e.check_runs() == ["completed"]


def _push(e2e: E2E, files: dict[str, str | bytes]) -> str:
    """A new head on the PR branch (GitHub's view updated); no webhook is delivered for it."""
    work = GitRepo(e2e.serve.log.parent / "work")  # the fixture's clone, on the PR branch
    work.commit("more", files)
    e2e.repo.push(work, "feature")
    e2e.fake.update_pull(e2e.pull)
    return e2e.pull.head_sha


AUDIT_PY: dict[str, str | bytes] = {
    "app/audit.py": (
        "import requests\n\n\n"
        "def ship(event: dict) -> None:\n"
        '    requests.post("https://audit.internal/events", json=event, timeout=5, verify=False)\n'
    )
}


def test_e2e_killed_job_whose_head_moved_completes_its_check_and_the_live_head_is_reviewed(e2e: E2E) -> None:
    """Issue 9.2 + 9.3 with real processes: the job is SIGKILLed mid-review, a push lands (its delivery
    is lost), the restarted worker retries the job: the killed attempt's check run is completed as
    superseded, and the live head gets its own job and the one review, covering the whole PR."""
    e2e.model.play([Stall(120), *_model_script()])
    script_len = len(e2e.model._script)
    e2e.serve.start()
    old_head = e2e.pull.head_sha
    assert e2e.serve.post(e2e.fake.webhook(OPENED_FIXTURE, pr=e2e.pull)).status_code == 202
    wait_for("the model request to start", lambda: len(e2e.model._script) < script_len)
    e2e.serve.kill()
    with e2e.fake.lock:
        e2e.killed_tokens.update(t.value for t in e2e.fake.tokens)
    assert e2e.check_runs() == ["in_progress"]
    new_head = _push(e2e, AUDIT_PY)

    e2e.serve.start()
    wait_for("the review of the live head", lambda: e2e.fake.reviews_for(e2e.pull), timeout=40)
    wait_for("every check run completed", lambda: set(e2e.check_runs()) == {"completed"})
    wait_for("every token revoked", e2e.idle)
    (review,) = e2e.fake.reviews_for(e2e.pull)
    assert review.commit_id == new_head
    assert {"app/users.py", "app/audit.py"} <= {str(c["path"]) for c in review.comments}
    with e2e.fake.lock:
        runs = {c.head_sha: c for c in e2e.fake.check_runs.values()}
    assert set(runs) == {old_head, new_head}
    assert runs[old_head].conclusion == "skipped"
    assert runs[old_head].output["title"] == f"Superseded by {new_head[:7]}"


def test_e2e_sigterm_stops_accepting_drains_the_running_review_and_exits_0(e2e: E2E) -> None:
    """Issue 9.4: uvicorn re-raised SIGTERM after its own shutdown, killing `serve` (-15) before its
    workers drained, so the running review died and its check spun until the lease expired."""
    e2e.model.play([Stall(4), *_model_script()])  # the first model call takes ~4 s, then a retry
    script_len = len(e2e.model._script)
    e2e.serve.env["BACKEND_REVIEW_DRAIN_SECONDS"] = "40"
    e2e.serve.start()
    proc = e2e.serve.procs[-1]
    assert e2e.serve.post(e2e.fake.webhook(OPENED_FIXTURE, pr=e2e.pull)).status_code == 202
    wait_for("the model request to start", lambda: len(e2e.model._script) < script_len)
    proc.send_signal(signal.SIGTERM)

    def refused() -> bool:
        try:
            httpx.get(f"{e2e.serve.url}/healthz", timeout=1)
        except httpx.TransportError:
            return True
        return False

    wait_for("the listener to close", refused, timeout=5)
    assert proc.poll() is None, "exited before its running review drained"
    assert proc.wait(timeout=45) == 0, e2e.serve.log.read_text()[-3000:]
    (review,) = e2e.fake.reviews_for(e2e.pull)
    assert "Unbounded user search" in " ".join(c["body"] for c in review.comments)
    assert e2e.check_runs() == ["completed"]
    assert e2e.idle()
    log = e2e.serve.log.read_text()
    assert '"stopping"' in log and '"worker stopped"' in log


def test_e2e_review_cut_off_by_the_drain_grace_closes_its_check_and_is_retried(e2e: E2E) -> None:
    """Issue 9.3 on shutdown: a review still running when the drain grace ends is cancelled; its check
    run is completed at once (not left spinning until a retry that may never come), and the retry
    after the restart reviews the head with a check run of its own."""
    e2e.model.play([Stall(120), *_model_script()])
    script_len = len(e2e.model._script)
    e2e.serve.env["BACKEND_REVIEW_DRAIN_SECONDS"] = "1"
    e2e.serve.start()
    proc = e2e.serve.procs[-1]
    assert e2e.serve.post(e2e.fake.webhook(OPENED_FIXTURE, pr=e2e.pull)).status_code == 202
    wait_for("the model request to start", lambda: len(e2e.model._script) < script_len)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, e2e.serve.log.read_text()[-3000:]
    with e2e.fake.lock:
        (check,) = e2e.fake.check_runs.values()
    assert (check.status, check.conclusion) == ("completed", "neutral")
    assert "shutdown" in str(check.output["title"])
    assert e2e.fake.reviews_for(e2e.pull) == [] and e2e.idle()

    e2e.serve.start()  # the job's lease expires and the restarted workers retry it
    wait_for("the review after the restart", lambda: e2e.fake.reviews_for(e2e.pull), timeout=40)
    wait_for("both check runs completed", lambda: e2e.check_runs() == ["completed", "completed"])
    (review,) = e2e.fake.reviews_for(e2e.pull)
    assert review.commit_id == e2e.pull.head_sha
