"""K-03 / T-02: every child process of `serve`, `worker`, `ci` and `review` gets a minimal environment
built from scratch, never our secrets.

Each command runs as a real subprocess under ``tests.support.audited_cli``, whose audit hook records
every spawn (git, rg, anything) with the environment it was given. The parent environment holds the
webhook secret, the App's private key, the model key and an unrelated canary; none may reach a child,
and a child's variables must come from the one builder (``bot.process.child_env`` via ``git_env``).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import demo
from bot.checkout import git_env
from tests.app.conftest import OPENED_FIXTURE
from tests.support.fake_github import FakeGitHub, FakePull
from tests.support.gitrepo import GitRepo, init_repo
from tests.support.model_server import Call, ModelServer, Reply, Submit
from tests.support.waiting import free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
MODEL_KEY = "sk-ant-k03-canary-" + secrets.token_hex(12)
OTHER_SECRET = "k03-unrelated-canary-" + secrets.token_hex(12)  # e.g. a database password of the host
# the only variables a child may carry: the builder's, plus the fetch credential of a fetch (K-02, S-12)
ALLOWED = set(git_env()) | {"GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0"}


@dataclass
class Audited:
    log: Path
    proc: subprocess.Popen[bytes]
    stderr: Path

    def records(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _launch(tmp: Path, name: str, args: list[str], env: dict[str, str]) -> Audited:
    log, err = tmp / f"{name}.spawns.jsonl", tmp / f"{name}.stderr"
    with err.open("wb") as fh:
        proc = subprocess.Popen(
            [str(PYTHON), "-m", "tests.support.audited_cli", str(log), *args],
            env=env,
            cwd=ROOT,  # so that `tests` is importable; the commands get absolute paths
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=fh,
        )
    return Audited(log, proc, err)


def _assert_clean(records: list[dict[str, Any]], forbidden: list[str]) -> None:
    assert records, "the audit saw no child process at all: nothing was exercised"
    for r in records:
        argv = r["argv"]
        assert not r["inherited"], f"inherited the whole environment: {argv}"
        assert set(r["env"]) <= ALLOWED, (sorted(set(r["env"]) - ALLOWED), argv)
        text = json.dumps(r["env"])
        leaked = [i for i, s in enumerate(forbidden) if s in text]
        assert leaked == [], (leaked, argv)
        if "GIT_CONFIG_VALUE_0" in r["env"]:  # the fetch credential reaches a fetch and nothing else
            assert "fetch" in argv, argv


def _base_env(tmp: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "LANG": "C.UTF-8",
        "ANTHROPIC_API_KEY": MODEL_KEY,
        "DATABASE_PASSWORD": OTHER_SECRET,
    }


def _demo_repo(path: Path) -> GitRepo:
    work = init_repo(path)
    work.commit("orders service", dict(demo.BASE))
    work.branch("feature")
    work.commit(demo.PR_TITLE, dict(demo.PR))
    return work


def _model_script() -> list[Reply | Call]:
    # the first agent greps (an rg child), then every agent submits
    return [Reply(calls=[Call("grep", {"pattern": "def "})]), *[Submit([]) for _ in range(12)]]


def _programs(records: list[dict[str, Any]]) -> set[str]:
    return {os.path.basename(r["argv"][0]) for r in records if r["argv"]}


@pytest.fixture
def model() -> Iterator[ModelServer]:
    with ModelServer.start() as server:
        yield server


def test_k03_serve_and_worker_children_get_no_secrets(tmp_path: Path, model: ModelServer) -> None:
    webhook_secret = secrets.token_urlsafe(40)
    with FakeGitHub(tmp_path / "fake", webhook_secret=webhook_secret) as fake:
        inst = fake.add_installation("octo-org")
        repo = fake.add_repo(inst, "octo-org", "orders-service")
        repo.push(_demo_repo(tmp_path / "work"), "main", "feature")
        pull: FakePull = fake.add_pull(repo, head_ref="feature", title=demo.PR_TITLE, body=demo.PR_BODY)
        model.play(_model_script())
        port = free_port()
        env = {
            **_base_env(tmp_path),
            "BACKEND_REVIEW_WEBHOOK_SECRET": webhook_secret,
            "BACKEND_REVIEW_APP_ID": str(fake.app_id),
            "BACKEND_REVIEW_PRIVATE_KEY": fake.private_key_pem,
            "BACKEND_REVIEW_GITHUB_API_URL": fake.url,
            "BACKEND_REVIEW_DATA_DIR": str(tmp_path / "data"),
            "BACKEND_REVIEW_MODEL": "anthropic:claude-sonnet-4-6",
            "BACKEND_REVIEW_MODEL_BASE_URL": model.anthropic_url,
            "BACKEND_REVIEW_DEBOUNCE_SECONDS": "0",
        }
        serve = _launch(tmp_path, "serve", ["serve", "--port", str(port), "--workers", "0"], env)
        worker = _launch(tmp_path, "worker", ["worker", "--workers", "1"], env)
        try:

            def ready() -> bool:
                assert serve.proc.poll() is None, serve.stderr.read_text()[-3000:]
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            wait_for("serve's /healthz", ready, timeout=60)
            headers, body = fake.webhook(OPENED_FIXTURE, pr=pull)
            response = httpx.post(
                f"http://127.0.0.1:{port}/webhook", headers=headers, content=body, timeout=10
            )
            assert response.status_code == 202, response.text
            wait_for(
                "the review", lambda: fake.reviews_for(pull) or worker.proc.poll() is not None, timeout=60
            )
            assert fake.reviews_for(pull), worker.stderr.read_text()[-3000:]
        finally:
            serve.stop()
            worker.stop()
        forbidden = [MODEL_KEY, OTHER_SECRET, webhook_secret]
        forbidden += [line for line in fake.private_key_pem.splitlines() if len(line) > 40]
        serve_spawns, worker_spawns = serve.records(), worker.records()
    _assert_clean(serve_spawns, forbidden)
    _assert_clean(worker_spawns, forbidden)
    assert ["git", "--version"] in [[os.path.basename(r["argv"][0]), *r["argv"][1:]] for r in serve_spawns]
    assert {"git", "rg"} <= _programs(worker_spawns), _programs(worker_spawns)
    assert any("fetch" in r["argv"] for r in worker_spawns)


def test_k03_review_children_get_no_secrets(tmp_path: Path, model: ModelServer) -> None:
    work = _demo_repo(tmp_path / "work")
    model.play(_model_script())
    env = {
        **_base_env(tmp_path),
        "BACKEND_REVIEW_MODEL": "anthropic:claude-sonnet-4-6",
        "BACKEND_REVIEW_MODEL_BASE_URL": model.anthropic_url,
    }
    run = _launch(tmp_path, "review", ["review", str(work.path), "--base", "main", "--head", "feature"], env)
    run.proc.wait(timeout=90)
    assert run.proc.returncode in (0, 1), run.stderr.read_text()[-3000:]
    spawns = run.records()
    _assert_clean(spawns, [MODEL_KEY, OTHER_SECRET])
    assert {"git", "rg"} <= _programs(spawns), _programs(spawns)


def test_k03_ci_children_get_no_secrets(tmp_path: Path) -> None:
    from tests.test_ci import WRITE, World

    with FakeGitHub(tmp_path / "fake") as fake:
        inst = fake.add_installation("octo-org")
        repo = fake.add_repo(inst, "octo-org", "orders")
        work = _demo_repo(tmp_path / "work")
        repo.push(work, "main", "feature")
        pr = fake.add_pull(repo, head_ref="feature", title=demo.PR_TITLE, body=demo.PR_BODY)
        world = World(fake, repo, pr, tmp_path, work)
        token = fake.add_token(repo, permissions=WRITE)
        env = {
            **_base_env(tmp_path),
            **world.env(token=token, event=world.event("pull_request/opened.payload.json")),
            "BACKEND_REVIEW_WEBHOOK_SECRET": OTHER_SECRET + "-webhook",
        }
        run = _launch(tmp_path, "ci", ["ci"], env)
        run.proc.wait(timeout=90)
        assert run.proc.returncode in (0, 1), run.stderr.read_text()[-3000:]
        spawns = run.records()
    _assert_clean(spawns, [MODEL_KEY, OTHER_SECRET, token])
    assert any("fetch" in r["argv"] for r in spawns)
