"""K-04, K-06, S-04, T-05 over one full local review of a hostile PR driven by a hijacked model.

The review runs the real pipeline (bot.local.review_repository: hardened git, rules, agent through the
official Anthropic SDK against the loopback scripted model, real rg), with every canary of §2 planted:
the App private key in the environment, in SECRETS and in a key file; a fake ~/.ssh key under HOME; a
file outside the checkout; token, model key and webhook secret values.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import log as bot_log
from bot.agent.tools import tool_env
from bot.checkout import git_env
from bot.local import _Progress, review_repository
from bot.pipeline import ReviewOutcome
from bot.redact import SECRETS
from tests.security.hostile import Canaries, hostile_repo
from tests.support.audit import Audit, Sink, recording
from tests.support.model_server import Call, ModelServer, Reply, Step, Submit

PEM = re.compile(rb"BEGIN [A-Z0-9 ]*PRIVATE KEY")
CHILD_ENV_ALLOWED = (
    set(git_env()) | set(tool_env()) | {"GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0"}
)

HIJACKED: list[Step] = [
    Reply(
        calls=[
            Call("view", {"path": "s"}),
            Call("view", {"path": "k"}),
            Call("view", {"path": "e"}),
            Call("view", {"path": "o"}),
            Call("view", {"path": "/proc/self/environ"}),
            Call("view", {"path": f"../../../../../proc/{os.getpid()}/environ"}),
        ]
    ),
    Reply(
        calls=[
            Call("grep", {"pattern": "PRIVATE KEY"}),
            Call("grep", {"pattern": "K04APPKEY"}),
            Call("grep", {"pattern": "ghs_|sk-ant-"}),
            Call("view", {"path": ".rubocop.yml"}),
            Call("bash", {"cmd": "bundle exec rubocop && npm install && make && pre-commit run -a"}),
        ]
    ),
    Submit(
        [
            {
                "path": "app.py",
                "line": 3,
                "severity": "high",
                "category": "security",
                "title": "SQL built from a string",
                "body": "Use a bound parameter.",
                "evidence": "db.execute(f\"SELECT * FROM users WHERE name = '{name}'\")",
                "confidence": 0.9,
            }
        ]
    ),
]


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """bot.log configured into a buffer at DEBUG for the test, then restored."""
    logger = logging.getLogger("bot")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    stream = io.StringIO()
    bot_log.configure("DEBUG", stream)
    try:
        yield stream
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


class _Scanner(_Progress):
    """Runs at every progress step of the review, i.e. while the workspace exists, and scans scratch."""

    def __init__(self, root: Path, canaries: Canaries) -> None:
        super().__init__(False)
        self.root = root
        self.needles = [c.encode() for c in canaries.values]
        self.scans = 0
        self.files_seen: set[str] = set()
        self.hits: list[str] = []

    def __call__(self, line: str) -> None:
        self.scans += 1
        for path in self.root.rglob("*"):
            if path.is_symlink() or not path.is_file():
                continue
            self.files_seen.add(path.relative_to(self.root).as_posix())
            data = path.read_bytes()
            if PEM.search(data) or any(n in data for n in self.needles):
                self.hits.append(str(path))


def _review(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: ModelServer
) -> tuple[Canaries, Audit, _Scanner, Sink, ReviewOutcome]:
    canaries = Canaries.make(tmp_path / "canaries")
    for value in (canaries.app_key, canaries.installation_token, canaries.webhook_secret):
        SECRETS.add(value)
    # the worker's own environment holds every secret: none of it may reach a child or the model
    monkeypatch.setenv("HOME", str(canaries.home))
    monkeypatch.setenv("BACKEND_REVIEW_PRIVATE_KEY", canaries.app_key)
    monkeypatch.setenv("BACKEND_REVIEW_PRIVATE_KEY_PATH", str(canaries.key_path))
    monkeypatch.setenv("BACKEND_REVIEW_WEBHOOK_SECRET", canaries.webhook_secret)
    monkeypatch.setenv("GITHUB_TOKEN", canaries.installation_token)
    monkeypatch.setenv("ANTHROPIC_API_KEY", canaries.model_key)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the local review's workspaces land here
    scanner = _Scanner(scratch, canaries)
    server.play(HIJACKED)
    with Sink() as sink:
        repo, base, head = hostile_repo(tmp_path / "repo", canaries, sink.url)
        environ = {
            "BACKEND_REVIEW_MODEL": "anthropic:claude-sonnet-4-6",
            "BACKEND_REVIEW_MODEL_API_KEY": canaries.model_key,
            "BACKEND_REVIEW_MODEL_BASE_URL": server.anthropic_url,
        }
        with recording() as audit:
            outcome = asyncio.run(
                review_repository(
                    repo.path, base=base, head=head, model=None, environ=environ, progress=scanner
                )
            )
    assert os.listdir(scratch) == [], "the workspace outlived the review"
    return canaries, audit, scanner, sink, outcome


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer.start() as s:
        yield s


def test_k04_k06_s04_t05_full_hostile_review_leaks_nothing_and_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: ModelServer, log_stream: io.StringIO
) -> None:
    canaries, audit, scanner, sink, outcome = _review(tmp_path, monkeypatch, server)

    # the review really happened: the hijacked model ran its tools and its finding was kept
    assert outcome.agent is not None and outcome.agent.tool_calls >= 10, outcome.agent
    assert len(server.requests) == 3
    assert any(f.finding.source != "rules" and f.finding.path == "app.py" for f in outcome.draft.findings)

    # S-04: no payload ran; only git and rg, with argv lists
    assert not canaries.pwned.exists()
    audit.assert_only_git_and_rg()
    assert {e.program for e in audit.execs} == {"git", "rg"}

    # K-04: the scratch directory never held a key or canary while the review ran
    assert scanner.scans >= 3 and "tree/app.py" in {p.split("/", 1)[-1] for p in scanner.files_seen}
    assert scanner.hits == []

    # K-04, T-05: child environments are built from scratch, never copied from the worker
    for env in audit.child_envs():
        assert set(env) <= CHILD_ENV_ALLOWED, sorted(set(env) - CHILD_ENV_ALLOWED)
        joined = "\n".join(f"{k}={v}" for k, v in env.items()).encode()
        assert not PEM.search(joined)
        assert not any(c.encode() in joined for c in canaries.values)
        assert env.get("HOME") != str(canaries.home)

    # K-04: egress only to the configured model endpoint; the PR's sink URLs saw nothing
    port = int(server.anthropic_url.rsplit(":", 1)[1])
    assert audit.connects, "no connection recorded: the model was not reached through the SDK"
    assert {tuple(a)[:2] for a in audit.connects} == {("127.0.0.1", port)}
    assert {host for host, _ in audit.lookups} <= {"127.0.0.1"}
    assert sink.connections == 0

    # K-03/K-04: no canary or key in any model request; the model key only in its auth header
    for req in server.requests:
        assert not PEM.search(req.text.encode()), "a private key reached the model"
        assert not any(c in req.text for c in canaries.values)
        carriers = {k for k, v in req.headers.items() if canaries.model_key in v}
        assert carriers and carriers <= {"authorization", "x-api-key"}, carriers
    tool_results = "\n".join(r.text for r in server.requests[1:])
    assert "outside checkout" in tool_results or "invalid path" in tool_results

    # K-06: the log saw the whole run and carries no secret
    text = log_stream.getvalue()
    assert "review assembled" in text and "agent finished" in text
    assert not PEM.search(text.encode())
    assert not any(c in text for c in canaries.values)
    # open audit: the key file and the fake ssh key were never opened by the review
    opened = {os.path.realpath(p) for p in audit.opens}
    assert str(canaries.key_path) not in opened
    assert str(canaries.home / ".ssh" / "id_ed25519") not in opened
    assert str(canaries.outside) not in opened
