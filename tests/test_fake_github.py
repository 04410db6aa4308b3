"""The fake GitHub behaves like GitHub where the app depends on it (validation, scoping, git HTTP)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from tests.conftest import WEBHOOKS
from tests.support.fake_github import FakeGitHub, FakeInstallation, FakePull, FakeRepo
from tests.support.gitrepo import GIT_ENV, GitRepo, init_repo

BASE = "".join(f"line {i}\n" for i in range(1, 41))
HEAD = BASE.replace("line 5\n", "line 5 changed\n").replace("line 30\n", "line 30\nline 30b\n")


@dataclass
class World:
    gh: FakeGitHub
    inst: FakeInstallation
    repo: FakeRepo
    other: FakeRepo
    pr: FakePull
    work: GitRepo
    tmp: Path


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with FakeGitHub(tmp_path) as gh:
        inst = gh.add_installation("octo-org")
        repo = gh.add_repo(inst, "octo-org", "svc")
        other = gh.add_repo(inst, "octo-org", "other")
        work = init_repo(tmp_path / "work")
        work.commit("base", {"app.py": BASE, "README.md": "hello\n"})
        work.branch("feature")
        work.commit("change", {"app.py": HEAD, "new.py": "print(1)\n"})
        repo.push(work, "main", "feature")
        other.push(work, "main")
        pr = gh.add_pull(repo, head_ref="feature", title="Change app", user_login="carol")
        yield World(gh, inst, repo, other, pr, work, tmp_path)
        assert gh.errors == []


def app_jwt(gh: FakeGitHub, *, iss: str | None = None, ttl: int = 540) -> str:
    now = int(time.time())
    claims = {"iat": now - 60, "exp": now - 60 + ttl + 60, "iss": iss or str(gh.app_id)}
    return jwt.encode(claims, gh.private_key_pem, algorithm="RS256")


def mint(gh: FakeGitHub, inst: FakeInstallation, body: dict[str, object] | None = None) -> str:
    with httpx.Client(base_url=gh.url) as c:
        r = c.post(
            f"/app/installations/{inst.id}/access_tokens",
            json=body or {},
            headers={"Authorization": f"Bearer {app_jwt(gh)}"},
        )
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def client(gh: FakeGitHub, token: str) -> httpx.Client:
    return httpx.Client(base_url=gh.url, headers={"Authorization": f"token {token}"})


def test_starts_fast_and_stops_cleanly(tmp_path: Path) -> None:
    t0 = time.monotonic()
    gh = FakeGitHub(tmp_path).start()
    started = time.monotonic() - t0
    port = gh.port
    gh.stop()
    assert started < 1.0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/app", timeout=1)


def test_k02_jwt_checked_and_mint_body_recorded(world: World) -> None:
    gh = world.gh
    body = {"repository_ids": [world.repo.id], "permissions": {"contents": "read"}}
    mint(gh, world.inst, body)
    assert gh.tokens[-1].body == body
    assert gh.tokens[-1].repository_ids == {world.repo.id}
    with httpx.Client(base_url=gh.url) as c:
        url = f"/app/installations/{world.inst.id}/access_tokens"
        assert (
            c.post(url, json={}, headers={"Authorization": f"Bearer {app_jwt(gh, iss='999')}"}).status_code
            == 401
        )
        assert (
            c.post(url, json={}, headers={"Authorization": f"Bearer {app_jwt(gh, ttl=3600)}"}).status_code
            == 401
        )
        forged = jwt.encode(
            {"iat": int(time.time()), "exp": int(time.time()) + 60, "iss": str(gh.app_id)},
            "x" * 32,
            algorithm="HS256",
        )
        assert c.post(url, json={}, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
        # permissions can only narrow what the installation has
        r = c.post(
            url,
            json={"permissions": {"contents": "write"}},
            headers={"Authorization": f"Bearer {app_jwt(gh)}"},
        )
        assert r.status_code == 422
        assert (
            c.get("/app", headers={"Authorization": f"Bearer {app_jwt(gh, iss=gh.client_id)}"}).json()["id"]
            == gh.app_id
        )
        r = c.get("/repos/octo-org/svc/installation", headers={"Authorization": f"Bearer {app_jwt(gh)}"})
        assert r.json()["id"] == world.inst.id
        assert (
            c.get("/repos/octo-org/svc/installation", headers={"Authorization": "token x"}).status_code == 401
        )
    assert len(gh.tokens) == 1


def test_k02_token_scope_enforced_repo_and_permission(world: World) -> None:
    gh = world.gh
    token = mint(
        gh, world.inst, {"repository_ids": [world.repo.id], "permissions": {"pull_requests": "read"}}
    )
    with client(gh, token) as c:
        assert c.get("/repos/octo-org/svc/pulls/1").status_code == 200
        assert c.get("/repos/octo-org/other").status_code == 404  # another repo of the same installation
        r = c.post("/repos/octo-org/svc/issues/1/comments", json={"body": "hi"})
        assert r.status_code == 403 and r.json()["message"] == "Resource not accessible by integration"
        assert c.get("/repos/octo-org/svc/contents/app.py").status_code == 403  # no contents permission
        assert c.delete("/installation/token").status_code == 204
        assert c.get("/repos/octo-org/svc/pulls/1").status_code == 401
    assert gh.revoked == [gh.tokens[0]]


def test_pull_json_diff_files_contents_compare(world: World) -> None:
    gh, pr = world.gh, world.pr
    token = mint(gh, world.inst)
    with client(gh, token) as c:
        d = c.get("/repos/octo-org/svc/pulls/1").json()
        assert (d["head"]["sha"], d["base"]["sha"], d["user"]["login"]) == (pr.head_sha, pr.base_sha, "carol")
        assert (d["changed_files"], d["additions"], d["deletions"]) == (2, 3, 1)
        diff = c.get("/repos/octo-org/svc/pulls/1", headers={"Accept": "application/vnd.github.diff"}).text
        assert diff.startswith("diff --git a/app.py b/app.py") and "+line 30b" in diff
        files = c.get("/repos/octo-org/svc/pulls/1/files").json()
        assert {f["filename"]: f["status"] for f in files} == {"app.py": "modified", "new.py": "added"}
        content = c.get("/repos/octo-org/svc/contents/README.md", params={"ref": "main"}).json()
        assert base64.b64decode(content["content"]) == b"hello\n"
        assert c.get("/repos/octo-org/svc/contents/nope.txt", params={"ref": "main"}).status_code == 404
        cmp = c.get(f"/repos/octo-org/svc/compare/{pr.base_sha}...{pr.head_sha}").json()
        assert (cmp["status"], cmp["ahead_by"]) == ("ahead", 1)


def test_files_paginated_and_diff_too_large(world: World) -> None:
    gh, work, repo = world.gh, world.work, world.repo
    work.checkout("main")
    work.branch("big")
    work.commit("many", {f"f/{i:03}.txt": f"{i}\n" for i in range(301)})
    repo.push(work, "big")
    big = gh.add_pull(repo, head_ref="big")
    token = mint(gh, world.inst)
    with client(gh, token) as c:
        r = c.get(
            f"/repos/octo-org/svc/pulls/{big.number}", headers={"Accept": "application/vnd.github.diff"}
        )
        assert r.status_code == 406 and r.json()["errors"][0]["code"] == "too_large"
        names: list[str] = []
        url: str | None = f"/repos/octo-org/svc/pulls/{big.number}/files?per_page=100"
        pages = 0
        while url:
            r = c.get(url)
            names += [f["filename"] for f in r.json()]
            url = r.links.get("next", {}).get("url")
            pages += 1
        assert pages == 4 and len(names) == 301 == len(set(names))


def review_body(pr: FakePull, comments: list[dict[str, object]], **extra: object) -> dict[str, object]:
    return {"commit_id": pr.head_sha, "event": "COMMENT", "body": "summary", "comments": comments, **extra}


@pytest.mark.parametrize(
    ("comment", "ok"),
    [
        ({"path": "app.py", "line": 5, "side": "RIGHT"}, True),  # added line
        ({"path": "app.py", "line": 7, "side": "RIGHT"}, True),  # context line in the hunk
        ({"path": "app.py", "line": 5, "side": "LEFT"}, True),  # removed line
        ({"path": "app.py", "line": 31, "start_line": 29, "side": "RIGHT", "start_side": "RIGHT"}, True),
        ({"path": "app.py", "line": 18, "side": "RIGHT"}, False),  # between hunks
        ({"path": "app.py", "line": 31, "start_line": 5, "side": "RIGHT"}, False),  # range across hunks
        ({"path": "app.py", "line": 5, "start_line": 5, "side": "RIGHT"}, False),  # start must precede
        ({"path": "README.md", "line": 1, "side": "RIGHT"}, False),  # file not in the diff
        ({"path": "new.py", "line": 1, "side": "RIGHT"}, True),
    ],
)
def test_review_anchor_validation_all_or_nothing(world: World, comment: dict[str, object], ok: bool) -> None:
    gh, pr = world.gh, world.pr
    token = mint(gh, world.inst)
    good = {"path": "new.py", "line": 1, "side": "RIGHT", "body": "fine"}
    with client(gh, token) as c:
        r = c.post(
            "/repos/octo-org/svc/pulls/1/reviews", json=review_body(pr, [good, {**comment, "body": "x"}])
        )
    if ok:
        assert r.status_code == 200, r.text
        assert len(gh.reviews) == 1 and len(gh.review_comments) == 2
    else:
        assert r.status_code == 422
        assert r.json()["errors"] == ["Line could not be resolved"]
        assert gh.reviews == [] and gh.review_comments == []


def test_review_event_and_commit_validated_and_listed(world: World) -> None:
    gh, pr = world.gh, world.pr
    token = mint(gh, world.inst)
    with client(gh, token) as c:
        url = "/repos/octo-org/svc/pulls/1/reviews"
        assert c.post(url, json=review_body(pr, [], event="MERGE")).status_code == 422
        assert c.post(url, json=review_body(pr, [], commit_id=pr.base_sha)).status_code == 422
        assert c.post(url, json=review_body(pr, [], body="<!-- backend-review fp=1 -->")).status_code == 200
        listed = c.get(url).json()
        file_comment = {"body": "f", "commit_id": pr.head_sha, "path": "new.py", "subject_type": "file"}
        assert c.post("/repos/octo-org/svc/pulls/1/comments", json=file_comment).status_code == 201
        comments = c.get("/repos/octo-org/svc/pulls/1/comments").json()
    assert [r["body"] for r in listed] == ["<!-- backend-review fp=1 -->"]
    assert listed[0]["user"]["type"] == "Bot" and gh.reviews[0].event == "COMMENT"
    assert comments[0]["subject_type"] == "file" and comments[0]["line"] is None


def test_reactions_issue_comments_checks_permissions(world: World) -> None:
    gh, pr = world.gh, world.pr
    cmd = gh.add_issue_comment(pr, "/backend-review", user_login="alice")
    gh.set_permission(world.repo, "alice", "write")
    gh.set_permission(world.repo, "mallory", 500)
    token = mint(gh, world.inst)
    with client(gh, token) as c:
        url = f"/repos/octo-org/svc/issues/comments/{cmd.id}"
        assert c.post(url + "/reactions", json={"content": "eyes"}).status_code == 201
        assert c.post(url + "/reactions", json={"content": "eyes"}).status_code == 200
        assert c.get(url).json()["body"] == "/backend-review"
        gh.delete_issue_comment(cmd.id)
        assert c.get(url).status_code == 404
        perm = "/repos/octo-org/svc/collaborators/{}/permission"
        assert c.get(perm.format("alice")).json()["permission"] == "write"
        assert c.get(perm.format("mallory")).status_code == 500
        run = c.post(
            "/repos/octo-org/svc/check-runs", json={"name": "backend-review", "head_sha": pr.head_sha}
        )
        run_url = f"/repos/octo-org/svc/check-runs/{run.json()['id']}"
        ann = {
            "path": "app.py",
            "start_line": 5,
            "end_line": 5,
            "annotation_level": "warning",
            "message": "m",
        }
        too_many = {"output": {"title": "t", "summary": "s", "annotations": [ann] * 51}}
        assert c.patch(run_url, json=too_many).status_code == 422
        done = {"conclusion": "neutral", "output": {"title": "t", "summary": "s", "annotations": [ann] * 50}}
        assert c.patch(run_url, json=done).status_code == 200
        more = {"output": {"title": "t", "summary": "s", "annotations": [ann] * 3}}
        assert c.patch(run_url, json=more).json()["output"]["annotations_count"] == 53
    assert len(gh.reactions) == 1
    assert gh.check_runs[run.json()["id"]].conclusion == "neutral"


def test_faults_rate_limits_and_processed_failures(world: World) -> None:
    gh, pr = world.gh, world.pr
    token = mint(gh, world.inst)
    gh.fail_next("GET", "/repos/octo-org/svc/pulls/*", status=502, times=2)
    gh.rate_limit_next("GET", "/repos/octo-org/svc", kind="secondary", retry_after=7)
    gh.fail_next("POST", "/repos/octo-org/svc/pulls/1/reviews", status=504, process=True)
    with client(gh, token) as c:
        assert [c.get("/repos/octo-org/svc/pulls/1").status_code for _ in range(3)] == [502, 502, 200]
        r = c.get("/repos/octo-org/svc")
        assert r.status_code == 403 and r.headers["retry-after"] == "7"
        assert c.post("/repos/octo-org/svc/pulls/1/reviews", json=review_body(pr, [])).status_code == 504
    assert len(gh.reviews) == 1  # GitHub created it even though the answer was an error
    gh.delay = 0.3
    with client(gh, token) as c:
        t0 = time.monotonic()
        assert c.get("/repos/octo-org/svc").status_code == 200
        assert time.monotonic() - t0 >= 0.3


def test_webhook_fixture_patched_and_signed(world: World) -> None:
    gh, pr = world.gh, world.pr
    headers, raw = gh.webhook(
        WEBHOOKS / "issue_comment" / "created.on-pull-request.go-playground.json",
        pr=pr,
        sender="alice",
        comment__body="/backend-review",
    )
    payload = json.loads(raw)
    assert headers["X-GitHub-Event"] == "issue_comment"
    assert payload["installation"]["id"] == world.inst.id
    assert payload["repository"]["id"] == world.repo.id and payload["issue"]["number"] == pr.number
    assert payload["comment"]["body"] == "/backend-review" and payload["sender"]["login"] == "alice"
    import hashlib
    import hmac

    expected = hmac.new(gh.webhook_secret.encode(), raw, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature-256"] == f"sha256={expected}"
    _, raw_pr = gh.webhook(WEBHOOKS / "pull_request" / "opened.payload.json", pr=pr)
    got = json.loads(raw_pr)["pull_request"]
    assert (got["head"]["sha"], got["base"]["sha"], got["number"]) == (pr.head_sha, pr.base_sha, 1)


def git_fetch(
    gh: FakeGitHub, dest: Path, url: str, sha: str, token: str | None
) -> subprocess.CompletedProcess[str]:
    init_repo(dest)
    env = {**os.environ, **GIT_ENV}
    if token is not None:
        cred = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env |= {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"http.{gh.url}.extraheader",
            "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {cred}",
        }
    return subprocess.run(
        ["git", "-C", str(dest), "fetch", "-q", "--depth=1", url, sha],
        env=env,
        capture_output=True,
        text=True,
    )


def test_c05_git_smart_http_requires_scoped_token(world: World) -> None:
    gh, pr, tmp = world.gh, world.pr, world.tmp
    token = mint(gh, world.inst, {"repository_ids": [world.repo.id], "permissions": {"contents": "read"}})
    ok = git_fetch(gh, tmp / "c1", gh.clone_url(world.repo), pr.head_sha, token)
    assert ok.returncode == 0, ok.stderr
    wants = [w for r in gh.git_requests for w in r.wants]
    assert wants == [pr.head_sha]
    assert git_fetch(gh, tmp / "c2", gh.clone_url(world.repo), pr.head_sha, None).returncode != 0
    # the token is scoped to svc: the other repository of the same installation is refused
    assert git_fetch(gh, tmp / "c3", gh.clone_url(world.other), pr.base_sha, token).returncode != 0
    no_contents = mint(gh, world.inst, {"permissions": {"pull_requests": "read"}})
    assert git_fetch(gh, tmp / "c4", gh.clone_url(world.repo), pr.head_sha, no_contents).returncode != 0
    assert [r.status for r in gh.git_requests if r.repo == "octo-org/other"] == [401]
