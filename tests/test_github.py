"""bot.github against the fake GitHub over real HTTP (K-02, K-05, C-01, C-05, O-06, O-08)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.errors import GitHubUnavailable, TokenScopeError
from bot.github import (
    READ_PERMISSIONS,
    WRITE_PERMISSIONS,
    GitHubApp,
    GitHubAuthError,
    GitHubClient,
    GitHubForbidden,
    GitHubNotFound,
    clone_url,
    git_auth_header,
)
from bot.models import InlineComment, PullRequestRef, ReviewDraft, ReviewJob
from bot.publish.review import post_review
from bot.redact import SECRETS
from tests.support.fake_github import FakeGitHub, FakePull, FakeRepo, FakeReviewComment
from tests.support.gitrepo import GIT_ENV, GitRepo, init_repo

T = TypeVar("T")

BASE = "".join(f"line {i}\n" for i in range(1, 41))
HEAD = BASE.replace("line 5\n", "line 5 changed\n").replace("line 30\n", "line 30\nline 30b\n")
MARK = "<!-- backend-review fp=sum sha={sha} -->"


@dataclass
class World:
    gh: FakeGitHub
    repo: FakeRepo
    pr: FakePull
    job: ReviewJob
    app: GitHubApp
    work: GitRepo
    tmp: Path

    def run(self, fn: Callable[[GitHubClient], Awaitable[T]], *, write: bool = False) -> T:
        async def main() -> T:
            async with self.app.installation_session(self.job, write=write) as client:
                return await fn(client)

        return asyncio.run(main())

    def draft(self, comments: tuple[InlineComment, ...] = ()) -> ReviewDraft:
        body = f"**backend-review** summary\n{MARK.format(sha=self.pr.head_sha[:7])}"
        return ReviewDraft(
            head_sha=self.pr.head_sha, body=body, comments=comments, file_comments=(), findings=()
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with FakeGitHub(tmp_path) as gh:
        inst = gh.add_installation("octo-org")
        repo = gh.add_repo(inst, "octo-org", "svc")
        gh.add_repo(inst, "octo-org", "other")
        work = init_repo(tmp_path / "work")
        work.commit("base", {"app.py": BASE, ".github/backend-review.yml": "severity: high\n"})
        work.branch("feature")
        work.commit("change", {"app.py": HEAD})
        repo.push(work, "main", "feature")
        pr = gh.add_pull(repo, head_ref="feature", title="Change", body="Body", labels=["api"])
        ref = PullRequestRef("octo-org", "svc", pr.number, installation_id=inst.id, repo_id=repo.id)
        job = ReviewJob(
            pr=ref, head_sha=pr.head_sha, trigger="opened", delivery_id="d-1", base_sha=pr.base_sha
        )
        app = GitHubApp(
            app_id=gh.app_id, private_key=gh.private_key_pem, base_url=gh.api_url, write_interval=0
        )
        yield World(gh, repo, pr, job, app, work, tmp_path)
        assert gh.errors == []


def comment(line: int, body: str = "finding", start: int | None = None) -> InlineComment:
    return InlineComment(
        path="app.py",
        line=line,
        body=f"{body}\n<!-- backend-review fp={line} -->",
        fingerprint=str(line),
        start_line=start,
    )


# ----------------------------------------------------------------------------------- tokens (K-02/K-05)


def test_k02_every_token_one_repo_explicit_permissions_and_revoked(world: World) -> None:
    assert world.run(lambda c: _async(SECRETS.find(c.token)))  # registered while live
    world.gh.tokens.clear()
    world.gh.revoked.clear()
    info = world.run(lambda c: c.get_pull(world.job.pr))
    review_id = world.run(lambda c: post_review(c, world.job.pr, world.draft()), write=True)
    assert info.head_sha == world.pr.head_sha and info.labels == ("api",) and info.changed_files == 1
    assert review_id == world.gh.reviews[0].id
    bodies = [t.body for t in world.gh.tokens]
    assert bodies == [
        {"repository_ids": [world.repo.id], "permissions": dict(READ_PERMISSIONS)},
        {"repository_ids": [world.repo.id], "permissions": dict(WRITE_PERMISSIONS)},
    ]
    assert "contents" not in WRITE_PERMISSIONS and all(v == "read" for v in READ_PERMISSIONS.values())
    assert world.gh.revoked == world.gh.tokens  # both revoked, in order
    assert not any(SECRETS.find(t.value) for t in world.gh.tokens)  # revoked, so forgotten
    # the JWT minted, the installation token did the rest
    assert {r.auth for r in world.gh.requests_to("POST", "/app/installations/*/access_tokens")} == {"jwt"}


async def _async(value: T) -> T:
    return value


def test_k02_token_revoked_when_the_job_fails(world: World) -> None:
    async def boom(c: GitHubClient) -> None:
        await c.get_pull(world.job.pr)
        raise RuntimeError("pipeline crashed")

    with pytest.raises(RuntimeError, match="pipeline crashed"):
        world.run(boom)
    assert len(world.gh.tokens) == 1 and world.gh.tokens[0].revoked


def test_k05_token_for_another_installation_or_repo_refused(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="bot")
    pr = world.job.pr
    targets = [
        replace(pr, installation_id=(pr.installation_id or 0) + 1),
        replace(pr, repo="other", repo_id=(pr.repo_id or 0) + 1),
        replace(pr, repo_id=(pr.repo_id or 0) + 1),
    ]
    unbound = replace(world.job, pr=replace(pr, repo_id=None))

    async def main() -> None:
        for target in targets:
            with pytest.raises(TokenScopeError):
                async with world.app.installation_session(world.job, target=target):
                    pytest.fail("session opened")
        with pytest.raises(TokenScopeError):
            async with world.app.installation_session(unbound):
                pytest.fail("session opened")

    asyncio.run(main())
    assert world.gh.tokens == []
    alerts = [r for r in caplog.records if r.getMessage() == "token scope refused"]
    assert len(alerts) == 4 and all(getattr(r, "fields", {}).get("alert") for r in alerts)


def test_k05_client_refuses_other_repository(world: World) -> None:
    other = PullRequestRef("octo-org", "other", 1, installation_id=world.job.pr.installation_id, repo_id=1)
    with pytest.raises(TokenScopeError):
        world.run(lambda c: c.get_pull(other))
    assert world.gh.requests_to("GET", "/repos/octo-org/other*") == []
    assert world.gh.tokens[0].revoked


# ----------------------------------------------------------------------------------- reviews (O-06/O-08)


def test_o08_review_is_comment_with_right_side_ranges(world: World) -> None:
    draft = world.draft((comment(5), comment(31, start=29)))
    world.run(lambda c: post_review(c, world.job.pr, draft), write=True)
    (review,) = world.gh.reviews
    assert review.event == "COMMENT" and review.commit_id == world.pr.head_sha
    assert review.comments[0] == {
        "path": "app.py",
        "line": 5,
        "side": "RIGHT",
        "body": draft.comments[0].body,
    }
    assert review.comments[1]["start_line"] == 29 and review.comments[1]["start_side"] == "RIGHT"
    assert "start_line" not in review.comments[0]


def test_o06_review_422_retried_once_without_inline_comments(world: World) -> None:
    draft = world.draft((comment(5, "good one"), comment(18, "outside any hunk")))
    review_id = world.run(lambda c: post_review(c, world.job.pr, draft), write=True)
    posts = world.gh.requests_to("POST", "/repos/octo-org/svc/pulls/1/reviews")
    assert [p.status for p in posts] == [422, 200]
    assert posts[1].json["comments"] == [] and posts[1].json["event"] == "COMMENT"
    (review,) = world.gh.reviews
    assert review.id == review_id and world.gh.review_comments == []
    assert "good one" in review.body and "outside any hunk" in review.body and "`app.py:18`" in review.body
    assert review.body.startswith(draft.body)


def test_review_half_success_detected_not_posted_twice(world: World) -> None:
    world.gh.fail_next("POST", "/repos/octo-org/svc/pulls/1/reviews", status=502, process=True)
    draft = world.draft((comment(5),))
    review_id = world.run(lambda c: post_review(c, world.job.pr, draft), write=True)
    assert len(world.gh.reviews) == 1 and world.gh.reviews[0].id == review_id
    assert len(world.gh.requests_to("POST", "/repos/octo-org/svc/pulls/1/reviews")) == 1


def test_review_transient_failure_without_review_raises(world: World) -> None:
    world.gh.fail_next("POST", "/repos/octo-org/svc/pulls/1/reviews", status=502)
    with pytest.raises(GitHubUnavailable):
        world.run(lambda c: post_review(c, world.job.pr, world.draft((comment(5),))), write=True)
    assert world.gh.reviews == []


def test_review_timeout_after_creation_detected(world: World) -> None:
    world.app = GitHubApp(
        app_id=world.gh.app_id,
        private_key=world.gh.private_key_pem,
        base_url=world.gh.api_url,
        timeout=0.5,
        write_interval=0,
    )
    world.gh.fail_next("POST", "/repos/octo-org/svc/pulls/1/reviews", status=None, process=True, delay=1.0)
    review_id = world.run(lambda c: post_review(c, world.job.pr, world.draft()), write=True)
    assert [r.id for r in world.gh.reviews] == [review_id]


def test_list_fingerprints_paginated(world: World) -> None:
    draft = world.draft(tuple(comment(5, f"c{i}") for i in range(105)))
    world.run(lambda c: post_review(c, world.job.pr, draft), write=True)

    async def both(c: GitHubClient) -> tuple[list[str], list[str]]:
        return await c.list_review_comment_bodies(world.job.pr), await c.list_review_bodies(world.job.pr)

    comments, reviews = world.run(both)
    assert len(comments) == 105 and comments[104].startswith("c104")
    assert reviews == [draft.body]
    pages = world.gh.requests_to("GET", "/repos/octo-org/svc/pulls/1/comments")
    assert [p.query.get("page", "1") for p in pages] == ["1", "2"]


# ----------------------------------------------------------------------------------- errors / rate limits


@pytest.mark.parametrize(
    ("kind", "retry_after", "expected"),
    [("secondary", 7, 7.0), ("secondary", None, 60.0), ("429", 3, 3.0), ("primary", None, 120.0)],
)
def test_rate_limits_become_github_unavailable(
    world: World, kind: str, retry_after: int | None, expected: float
) -> None:
    world.gh.rate_limit_next("GET", "/repos/octo-org/svc/pulls/1", kind=kind, retry_after=retry_after)
    with pytest.raises(GitHubUnavailable) as err:
        world.run(lambda c: c.get_pull(world.job.pr))
    assert err.value.retry_after is not None and abs(err.value.retry_after - expected) < 3
    assert len(world.gh.requests_to("GET", "/repos/octo-org/svc/pulls/1")) == 1  # githubkit did not retry
    assert world.gh.tokens[0].revoked


def test_5xx_and_timeouts_become_github_unavailable(world: World) -> None:
    world.gh.fail_next("GET", "/repos/octo-org/svc/pulls/1", status=503, times=3)
    with pytest.raises(GitHubUnavailable):
        world.run(lambda c: c.get_pull(world.job.pr))
    assert len(world.gh.requests_to("GET", "/repos/octo-org/svc/pulls/1")) == 1
    world.app = GitHubApp(
        app_id=world.gh.app_id, private_key=world.gh.private_key_pem, base_url=world.gh.api_url, timeout=0.3
    )
    world.gh.faults.clear()
    world.gh.fail_next("GET", "/repos/octo-org/svc/pulls/1", status=None, process=True, delay=0.8)
    with pytest.raises(GitHubUnavailable, match="timed out"):
        world.run(lambda c: c.get_pull(world.job.pr))


def test_k02_read_token_cannot_write_and_errors_are_permanent(world: World) -> None:
    missing = replace(world.job.pr, number=99)
    with pytest.raises(GitHubNotFound):
        world.run(lambda c: c.get_pull(missing))
    with pytest.raises(GitHubForbidden):
        world.run(lambda c: c.post_issue_comment(world.job.pr, "not with a read token"))
    assert world.gh.issue_comments == {}

    async def after_revoke(c: GitHubClient) -> None:
        world.gh.tokens[-1].revoked = True
        await c.get_pull(world.job.pr)

    with pytest.raises(GitHubAuthError):
        world.run(after_revoke)


# ------------------------------------------------------------------ checks, comments, permissions


def test_check_run_annotations_batched_by_50(world: World) -> None:
    ann = [
        {"path": "app.py", "start_line": 5, "end_line": 5, "annotation_level": "warning", "message": f"m{i}"}
        for i in range(120)
    ]

    async def main(c: GitHubClient) -> int:
        check_id = await c.create_check_run(world.job.pr, world.pr.head_sha, external_id="job-1")
        await c.complete_check_run(
            world.job.pr,
            check_id,
            conclusion="neutral",
            title="3 findings",
            summary="s",
            text="t",
            annotations=ann,
        )
        return check_id

    check_id = world.run(main, write=True)
    run = world.gh.check_runs[check_id]
    assert [len(b["output"]["annotations"]) for b in run.update_bodies] == [50, 50, 20]
    assert run.update_bodies[0]["conclusion"] == "neutral" and "conclusion" not in run.update_bodies[1]
    assert [a["message"] for a in run.annotations] == [a["message"] for a in ann]
    assert (run.status, run.conclusion, run.external_id, run.name) == (
        "completed",
        "neutral",
        "job-1",
        "backend-review",
    )


def test_c01_permission_lookup_failures_deny(world: World) -> None:
    for login, level in (("alice", "write"), ("bob", "read"), ("gone", 404), ("flaky", 500)):
        world.gh.set_permission(world.repo, login, level)

    async def main(c: GitHubClient) -> list[str | None]:
        return [await c.get_permission(world.job.pr, u) for u in ("alice", "bob", "gone", "flaky")]

    assert world.run(main) == ["write", "read", None, None]


def test_c01_permission_timeout_denies(world: World) -> None:
    world.app = GitHubApp(
        app_id=world.gh.app_id, private_key=world.gh.private_key_pem, base_url=world.gh.api_url, timeout=0.3
    )
    world.gh.set_permission(world.repo, "alice", "write")
    world.gh.fail_next("GET", "*/collaborators/alice/permission", status=None, process=True, delay=0.8)
    assert world.run(lambda c: c.get_permission(world.job.pr, "alice")) is None


def test_comments_reactions_and_file_comment(world: World) -> None:
    cmd = world.gh.add_issue_comment(world.pr, "/backend-review", user_login="alice")

    async def main(c: GitHubClient) -> list[Any]:
        pr = world.job.pr
        return [
            await c.comment_exists(pr, cmd.id),
            await c.add_reaction(pr, cmd.id, "eyes"),
            await c.add_reaction(pr, cmd.id, "eyes"),
            await c.post_file_comment(pr, world.pr.head_sha, "app.py", "file note"),
            await c.post_issue_comment(pr, "hello"),
            await c.comment_exists(pr, 424242),
        ]

    exists, created, again, file_id, issue_id, missing = world.run(main, write=True)
    assert (exists, created, again, missing) == (True, True, False, False)
    (fc,) = world.gh.review_comments
    assert (fc.id, fc.subject_type, fc.line, fc.path) == (file_id, "file", None, "app.py")
    assert world.gh.issue_comments[issue_id].body == "hello"


def test_get_file_text_from_base_branch(world: World) -> None:
    async def main(c: GitHubClient) -> tuple[str | None, str | None]:
        pr = world.job.pr
        return (
            await c.get_file_text(pr, ".github/backend-review.yml", "main"),
            await c.get_file_text(pr, ".github/missing.yml", "main"),
        )

    assert world.run(main) == ("severity: high\n", None)


def test_app_can_sign_with_client_id(world: World) -> None:
    world.app = GitHubApp(
        client_id=world.gh.client_id, private_key=world.gh.private_key_pem, base_url=world.gh.api_url
    )
    assert world.run(lambda c: c.get_pull(world.job.pr)).number == 1
    assert world.gh.token_mint_errors == []


def test_write_pacing_per_installation(world: World) -> None:
    world.app = GitHubApp(
        app_id=world.gh.app_id,
        private_key=world.gh.private_key_pem,
        base_url=world.gh.api_url,
        write_interval=0.15,
    )

    async def main(c: GitHubClient) -> float:
        t0 = time.monotonic()
        await c.post_issue_comment(world.job.pr, "one")
        await c.post_issue_comment(world.job.pr, "two")
        await c.post_issue_comment(world.job.pr, "three")
        return time.monotonic() - t0

    assert world.run(main, write=True) >= 0.3
    assert world.run(main, write=True) >= 0.3  # a second event loop reuses the pacer safely


# ----------------------------------------------------------------------------------- git (C-05)


def test_clone_url_for_github_ghes_and_fake() -> None:
    assert clone_url("https://api.github.com/", "o", "r") == "https://github.com/o/r.git"
    assert clone_url("https://ghe.example.com/api/v3/", "o", "r") == "https://ghe.example.com/o/r.git"
    assert clone_url("http://127.0.0.1:9000/", "o", "r") == "http://127.0.0.1:9000/o/r.git"


def _fetch(dest: Path, url: str, sha: str, header: str | None) -> subprocess.CompletedProcess[str]:
    init_repo(dest)
    env = {**os.environ, **GIT_ENV}
    if header is not None:
        origin = url.split("/", 3)
        env |= {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"http.{origin[0]}//{origin[2]}/.extraheader",
            "GIT_CONFIG_VALUE_0": header,
        }
    return subprocess.run(
        ["git", "-C", str(dest), "fetch", "-q", "--depth=1", url, sha],
        env=env,
        capture_output=True,
        text=True,
    )


def test_c05_git_fetch_by_sha_with_read_token(world: World) -> None:
    url = world.app.clone_url("octo-org", "svc")

    async def main(
        c: GitHubClient,
    ) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
        ok = await asyncio.to_thread(
            _fetch, world.tmp / "a", url, world.pr.head_sha, git_auth_header(c.token)
        )
        denied = await asyncio.to_thread(_fetch, world.tmp / "b", url, world.pr.head_sha, None)
        return ok, denied

    ok, denied = world.run(main)
    assert ok.returncode == 0, ok.stderr
    assert denied.returncode != 0 and world.gh.tokens[0].value not in denied.stderr
    assert [w for r in world.gh.git_requests for w in r.wants] == [world.pr.head_sha]
    assert 401 in [r.status for r in world.gh.git_requests]
    fetched = GitRepo(world.tmp / "a").git("rev-parse", "FETCH_HEAD")
    assert fetched == world.pr.head_sha
    # after the session the token is revoked: git is refused too
    late = _fetch(world.tmp / "c", url, world.pr.head_sha, git_auth_header(world.gh.tokens[0].value))
    assert late.returncode != 0


# ------------------------------------------------------------------ review lifecycle (GraphQL)

FP_MARK = "<!-- backend-review fp=0123456789abcdef sha=0000000 -->"


def _post_thread(world: World) -> int:
    draft = replace(world.draft((comment(5),)), comments=(replace(comment(5), body=f"finding\n{FP_MARK}"),))
    world.run(lambda c: post_review(c, world.job.pr, draft), write=True)
    (root,) = world.gh.review_comments
    return root.id


def test_k02_graphql_threads_resolve_and_minimize_with_the_write_token_only(world: World) -> None:
    comment_id = _post_thread(world)
    (thread,) = world.run(lambda c: c.posted_threads(world.job.pr))
    assert (thread.comment_id, thread.path, thread.fingerprints) == (
        comment_id,
        "app.py",
        {"0123456789abcdef"},
    )
    assert not thread.outdated and not thread.resolved and not thread.file_level
    with pytest.raises(GitHubForbidden):  # K-02: the read token may list threads, never change them
        world.run(lambda c: c.resolve_review_thread(world.job.pr, thread.thread_id))
    with pytest.raises(GitHubForbidden):
        world.run(lambda c: c.minimize_comment(world.job.pr, thread.comment_node_id))
    (root,) = world.gh.review_comments
    assert not root.resolved and root.minimized is None
    assert world.run(lambda c: c.resolve_review_thread(world.job.pr, thread.thread_id), write=True)
    assert world.run(lambda c: c.minimize_comment(world.job.pr, thread.comment_node_id), write=True)
    assert root.resolved and root.minimized == "OUTDATED"
    other = PullRequestRef("octo-org", "other", 1, world.job.pr.installation_id, world.job.pr.repo_id)
    with pytest.raises(TokenScopeError):  # K-05: bound to the job's repository
        world.run(lambda c: c.resolve_review_thread(other, thread.thread_id), write=True)


def test_graphql_only_this_identitys_threads(world: World) -> None:
    _post_thread(world)
    (root,) = world.gh.review_comments
    root.user_login = "mallory"  # the same body and marker, written by someone else
    assert world.run(lambda c: c.posted_threads(world.job.pr)) == []
    assert world.gh.graphql_calls == []  # nothing of ours: no query at all


def test_graphql_outdated_after_the_line_changes(world: World) -> None:
    _post_thread(world)
    world.work.commit("fix", {"app.py": HEAD.replace("line 5 changed\n", "line 5 fixed\n")})
    world.repo.push(world.work, "feature")
    world.gh.update_pull(world.pr)
    (thread,) = world.run(lambda c: c.posted_threads(world.job.pr))
    assert thread.outdated


def test_graphql_failures_map_like_rest(world: World) -> None:
    _post_thread(world)
    world.gh.fail_next("POST", "/graphql", status=502)
    with pytest.raises(GitHubUnavailable):
        world.run(lambda c: c.posted_threads(world.job.pr))
    limited = {"data": None, "errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded"}]}
    world.gh.fail_next("POST", "/graphql", status=200, json=limited)
    with pytest.raises(GitHubUnavailable) as err:
        world.run(lambda c: c.posted_threads(world.job.pr))
    assert err.value.retry_after == 60.0
    world.gh.fail_next("POST", "/graphql", status=401, json={"message": "Bad credentials"})
    with pytest.raises(GitHubAuthError):
        world.run(lambda c: c.posted_threads(world.job.pr))


def test_graphql_threads_paginated(world: World) -> None:
    bot = world.gh.bot_login
    with world.gh.lock:
        for _ in range(130):
            world.gh.review_comments.append(
                FakeReviewComment(
                    world.gh.next_id(), "octo-org/svc", world.pr.number, None, f"x\n{FP_MARK}", "app.py",
                    world.pr.head_sha, 5, "RIGHT", None, None, "line", bot,
                )
            )  # fmt: skip
    threads = world.run(lambda c: c.posted_threads(world.job.pr))
    assert len(threads) == 130 and world.gh.graphql_calls == ["reviewThreads", "reviewThreads"]
