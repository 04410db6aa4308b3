"""`backend-review ci` end to end: an Actions-like environment, a real git checkout and the fake GitHub.

The workspace is what actions/checkout leaves behind: a shallow clone holding only the base commit,
so the command must fetch the PR's commits itself (through the fake's git smart HTTP, with the token
in the fetch's environment only). Events are the shared webhook fixtures patched with the fake's ids.
"""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot import demo
from bot.ci import MODEL_SKIPPED, run_ci
from bot.cli import build_parser, main
from tests.conftest import SARIF_SCHEMA, WEBHOOKS
from tests.support.fake_github import FakeGitHub, FakePull, FakeRepo
from tests.support.gitrepo import GIT_ENV, GitRepo, init_repo

WRITE = {"contents": "read", "pull_requests": "write", "checks": "write", "metadata": "read"}
READ_ONLY = {"contents": "read", "pull_requests": "read", "checks": "read", "metadata": "read"}
INJECTED_TITLE = "x\n::error title=pwn::owned"
MARKER_NAME = "pwned-by-pr"


@dataclass
class World:
    fake: FakeGitHub
    repo: FakeRepo
    pr: FakePull
    tmp: Path
    work: GitRepo

    def checkout(self, sha: str) -> Path:
        """What actions/checkout does by default: a depth-1 fetch of one commit, no credentials kept."""
        ws = self.tmp / f"ws-{sha[:7]}"
        env = {**GIT_ENV, "PATH": "/usr/bin:/bin"}
        for args in (
            ["init", "-q", str(ws)],
            ["-C", str(ws), "fetch", "-q", "--depth=1", f"file://{self.repo.bare}", sha],
            ["-C", str(ws), "checkout", "-q", "--detach", "FETCH_HEAD"],
        ):
            subprocess.run(["git", *args], env=env, check=True, capture_output=True)
        return ws

    def event(self, fixture: str, **overrides: Any) -> Path:
        _, raw = self.fake.webhook(WEBHOOKS / fixture, pr=self.pr, **overrides)
        path = self.tmp / "event.json"
        path.write_bytes(raw)
        return path

    def env(
        self, *, token: str, event: Path, event_name: str = "pull_request", **extra: str
    ) -> dict[str, str]:
        for name in ("summary.md", "github_env", "github_output"):
            (self.tmp / name).touch()
        return {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_WORKSPACE": str(self.checkout(self.pr.base_sha)),
            "GITHUB_REPOSITORY": self.repo.full_name,
            "GITHUB_API_URL": self.fake.api_url.rstrip("/"),
            "GITHUB_TOKEN": token,
            "GITHUB_STEP_SUMMARY": str(self.tmp / "summary.md"),
            "GITHUB_ENV": str(self.tmp / "github_env"),
            "GITHUB_OUTPUT": str(self.tmp / "github_output"),
            "BACKEND_REVIEW_MODEL": "none",
            **extra,
        }


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with FakeGitHub(tmp_path) as fake:
        inst = fake.add_installation("octo-org")
        repo = fake.add_repo(inst, "octo-org", "orders")
        work = init_repo(tmp_path / "work")
        work.commit("orders service", dict(demo.BASE))
        work.branch("feature")
        # a file that would leave a marker if anything from the PR were ever executed
        hook = f"import pathlib\npathlib.Path({str(tmp_path / MARKER_NAME)!r}).touch()\n"
        work.commit(demo.PR_TITLE, {**demo.PR, "setup.py": hook, "conftest.py": hook})
        repo.push(work, "main", "feature")
        pr = fake.add_pull(repo, head_ref="feature", title=demo.PR_TITLE, body=demo.PR_BODY)
        yield World(fake, repo, pr, tmp_path, work)
        assert fake.errors == []


def ci(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    code = run_ci(build_parser().parse_args(["ci", *argv]), environ=env, out=out)
    return code, out.getvalue()


def outside_fences(log: str) -> list[str]:
    """Log lines the runner would parse as commands: everything not inside a stop-commands block."""
    lines: list[str] = []
    token: str | None = None
    for line in log.splitlines():
        if token is None:
            m = re.fullmatch(r"::stop-commands::(\S+)", line.strip())
            if m:
                token = m.group(1)
            else:
                lines.append(line)
        elif line.strip() == f"::{token}::":
            token = None
    assert token is None, "a stop-commands block was never closed"
    return lines


def fenced_text(log: str) -> str:
    return "\n".join(line for line in log.splitlines() if line not in outside_fences(log))


# ------------------------------------------------------------------------------------------ publish


def test_ci_posts_one_comment_review_and_a_check_run_with_a_write_token(world: World) -> None:
    env = world.env(token=world.fake.add_token(world.repo, permissions=WRITE), event=world.event(
        "pull_request/opened.payload.json"))  # fmt: skip
    code, log = ci([], env)
    assert code == 0
    reviews = world.fake.reviews_for(world.pr)
    assert len(reviews) == 1
    review = reviews[0]
    assert review.event == "COMMENT" and review.commit_id == world.pr.head_sha
    assert review.comments, "the planted defects give inline comments"
    (check,) = world.fake.check_runs.values()
    assert check.name == "backend-review" and check.head_sha == world.pr.head_sha
    assert check.status == "completed" and check.conclusion == "neutral"
    assert check.annotations
    assert f"posted review {review.id}" in log
    assert not any(line.startswith("::error") or line.startswith("::warning") for line in log.splitlines())
    # the fetch authenticated with the token and asked only for the PR's commits
    assert {w for r in world.fake.git_requests for w in r.wants} <= {world.pr.head_sha, world.pr.base_sha}
    assert all(r.status == 200 for r in world.fake.git_requests)
    assert Path(env["GITHUB_ENV"]).read_text() == "" and Path(env["GITHUB_OUTPUT"]).read_text() == ""

    # a re-run (another push-less re-trigger) never repeats an inline comment: fingerprints dedupe
    comments_before = len(world.fake.review_comments)
    code, _ = ci([], env)
    assert code == 0
    assert len(world.fake.review_comments) == comments_before
    assert len(world.fake.check_runs) == 2


def test_ci_resolves_the_thread_of_a_fixed_finding(world: World) -> None:
    """Issue 11 item 5 on the CI path: a push that removes a flagged line resolves its thread (the
    workflow token posts as github-actions[bot]; only its own threads are touched)."""
    token = world.fake.add_token(world.repo, permissions=WRITE)
    world.fake.tokens[-1].body["workflow"] = True
    code, _ = ci([], world.env(token=token, event=world.event("pull_request/opened.payload.json")))
    assert code == 0
    roots = [c for c in world.fake.review_comments if c.in_reply_to_id is None]
    target = roots[0]
    assert target.user_login == "github-actions[bot]" and target.line is not None
    text = world.fake.repos[world.repo.full_name.lower()].git("show", f"{world.pr.head_sha}:{target.path}")
    lines = text.split("\n")
    del lines[target.line - 1]  # the fix: the flagged line is gone
    world.work.commit("fix", {target.path: "\n".join(lines)})
    world.repo.push(world.work, "feature")
    world.fake.update_pull(world.pr)
    env = world.env(token=token, event=world.event("pull_request/synchronize.payload.json"))
    code, _ = ci([], env)
    assert code == 0
    assert target.resolved
    untouched = [c for c in roots if c.path != target.path]
    assert untouched and not any(c.resolved for c in untouched)


def test_ci_no_review_flag_posts_only_the_check(world: World) -> None:
    env = world.env(
        token=world.fake.add_token(world.repo, permissions=WRITE),
        event=world.event("pull_request/opened.payload.json"),
    )
    code, _ = ci(["--no-review"], env)
    assert code == 0
    assert world.fake.reviews_for(world.pr) == []
    assert len(world.fake.check_runs) == 1


def test_a02_read_only_token_falls_back_to_annotations_and_the_step_summary(world: World) -> None:
    env = world.env(
        token=world.fake.add_token(world.repo, permissions=READ_ONLY),
        event=world.event("pull_request/opened.payload.json"),
    )
    code, log = ci([], env)
    assert code == 0
    assert world.fake.reviews_for(world.pr) == [] and world.fake.check_runs == {}
    refused = [r for r in world.fake.requests if r.status == 403]
    assert {(r.method, r.path.rsplit("/", 1)[-1]) for r in refused} == {
        ("POST", "reviews"),
        ("POST", "check-runs"),
    }
    commands = [line for line in outside_fences(log) if line.startswith("::")]
    assert commands and all(re.match(r"::(error|warning|notice) file=[^,:]+,line=\d+,endLine=\d+,title=", c)
                            for c in commands)  # fmt: skip
    assert any(c.startswith("::error file=app/") for c in commands)
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "backend-review" in summary and "app/" in summary
    assert "the token may not write (403)" in log
    assert Path(env["GITHUB_ENV"]).read_text() == "" and Path(env["GITHUB_OUTPUT"]).read_text() == ""


def test_ci_sarif_output_is_valid_sarif_2_1_0(world: World) -> None:
    sarif = world.tmp / "results.sarif"
    env = world.env(
        token=world.fake.add_token(world.repo, permissions=READ_ONLY),
        event=world.event("pull_request/opened.payload.json"),
    )
    code, _ = ci(["--sarif", str(sarif)], env)
    assert code == 0
    log = json.loads(sarif.read_text())
    jsonschema.validate(log, json.loads(SARIF_SCHEMA.read_text()))
    results = log["runs"][0]["results"]
    assert results and all(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results)


def test_ci_fail_on_trips_the_exit_code(world: World) -> None:
    env = world.env(
        token=world.fake.add_token(world.repo, permissions=READ_ONLY),
        event=world.event("pull_request/opened.payload.json"),
    )
    code, log = ci(["--fail-on", "low"], env)
    assert code == 1
    assert log.rstrip().endswith("exit 1")


# ------------------------------------------------------------------------------------------ O-07


def test_o07_pr_title_cannot_issue_workflow_commands(world: World) -> None:
    world.fake.update_pull(
        world.pr, title=INJECTED_TITLE + "\x1b]8;;https://evil.example\x07link\x1b]8;;\x07"
    )
    env = world.env(
        token=world.fake.add_token(world.repo, permissions=READ_ONLY),
        event=world.event("pull_request/opened.payload.json"),
    )
    code, log = ci([], env)
    assert code == 0
    outside = outside_fences(log)
    assert not any("pwn" in line or "owned" in line for line in outside)
    assert all(
        re.match(r"::(error|warning|notice) file=", line)
        for line in outside
        if line.lstrip().startswith("::")
    )
    inside = fenced_text(log)
    assert "x%0A::error title=pwn::owned" in inside  # escaped: one line, no command
    assert not any(line.lstrip().startswith("::error") for line in inside.splitlines())
    assert "\x1b" not in log and "evil.example" not in log


# ------------------------------------------------------------------------------------------


def test_a02_no_model_key_skips_the_model_and_connects_only_to_the_loopback_api(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    connections: list[Any] = []
    real_connect = socket.socket.connect

    def recording_connect(self: socket.socket, address: Any) -> None:
        connections.append(address)
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    env = world.env(
        token=world.fake.add_token(world.repo, permissions=READ_ONLY),
        event=world.event("pull_request/opened.payload.json"),
        BACKEND_REVIEW_MODEL="anthropic:claude-sonnet-4-5",
        BACKEND_REVIEW_MODEL_API_KEY="",
        ANTHROPIC_API_KEY="",
    )
    code, log = ci([], env)
    assert code == 0
    assert MODEL_SKIPPED in log
    assert connections and {(host, port) for host, port, *_ in connections} == {
        ("127.0.0.1", world.fake.port)
    }
    assert {r.repo for r in world.fake.git_requests} == {world.repo.full_name}
    assert not (world.tmp / MARKER_NAME).exists(), "nothing from the PR may run"


# ------------------------------------------------------------------------------------------ events


def test_ci_comment_command_from_a_writer_reviews_the_live_pull_request(world: World) -> None:
    world.fake.set_permission(world.repo, "alice", "write")
    event = world.event(
        "issue_comment/created.on-pull-request.go-playground.json",
        comment__body="/backend-review",
        comment__user__login="alice",
        comment__user__type="User",
    )
    env = world.env(
        token=world.fake.add_token(world.repo, permissions=WRITE), event=event, event_name="issue_comment"
    )
    code, log = ci([], env)
    assert code == 0, log
    (review,) = world.fake.reviews_for(world.pr)
    assert review.commit_id == world.pr.head_sha


def test_ci_comment_command_from_a_reader_does_nothing(world: World) -> None:
    world.fake.set_permission(world.repo, "mallory", "read")
    event = world.event(
        "issue_comment/created.on-pull-request.go-playground.json",
        comment__body="/backend-review",
        comment__user__login="mallory",
    )
    env = world.env(
        token=world.fake.add_token(world.repo, permissions=WRITE), event=event, event_name="issue_comment"
    )
    code, log = ci([], env)
    assert code == 0
    assert "nothing to do" in log
    assert world.fake.reviews_for(world.pr) == [] and world.fake.check_runs == {}


def test_ci_other_events_exit_0(world: World) -> None:
    env = world.env(token="", event=world.event("pull_request/opened.payload.json"), event_name="push")
    code, log = ci([], env)
    assert code == 0 and "event push is not handled" in log


def test_ci_outside_actions_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GITHUB_EVENT_PATH", raising=False)
    assert main(["ci"]) == 2
    assert "GITHUB_EVENT_PATH is not set" in capsys.readouterr().err
