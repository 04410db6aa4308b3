"""W-02/W-05: signed but malformed deliveries — impossible identities, lone surrogates, hostile shapes.

Every delivery here is correctly signed, so it passes W-01 and reaches the parser and the router. The
receiver must answer 2xx or 4xx (never 5xx: a 5xx makes GitHub redeliver, and a 503 blames the queue),
and a job may only ever carry identities GitHub could have sent. The property test at the end mutates
real fixtures (tests/fixtures/webhooks) with hypothesis.
"""

from __future__ import annotations

import asyncio
import copy
import io
import itertools
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bot.log import JsonFormatter
from bot.models import ReviewJob
from bot.queue.base import JobState
from bot.server import create_app
from bot.settings import Secret, Settings
from tests.support.webhooks import SECRET, RecordingQueue, command_payload, fixture, headers

APP_ID = 777
OPENED = "pull_request/opened.payload.json"
RERUN = "check_run/rerequested.payload.json"


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[RecordingQueue]:
    q = RecordingQueue(tmp_path / "queue.sqlite3")
    yield q
    asyncio.run(q.real.close())


def _client(queue: RecordingQueue, **settings: Any) -> TestClient:
    base: dict[str, Any] = {"webhook_secrets": (Secret(SECRET.decode()),), "app_id": APP_ID}
    base.update(settings)
    return TestClient(create_app(Settings(**base), queue), raise_server_exceptions=False)


def _dump(payload: Any) -> bytes:
    # ensure_ascii: a lone surrogate travels as the JSON escape "\ud800", as a fuzzer would send it
    return json.dumps(payload).encode()


def _set(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy with ``value`` at the dotted ``path`` (creating objects on the way, list indexes as digits)."""
    data = copy.deepcopy(payload)
    *parents, last = path.split(".")
    node: Any = data
    for key in parents:
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
            continue
        if not isinstance(node, dict):
            return data  # an earlier mutation replaced this branch: nothing left to set
        if not isinstance(node.get(key), dict | list):
            node[key] = {}
        node = node[key]
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    return data


def _rerun_payload() -> dict[str, Any]:
    data = fixture(RERUN, installation={"id": 42})
    data["check_run"]["app"]["id"] = APP_ID
    data["check_run"]["pull_requests"] = [{"number": 7, "base": {"repo": {"id": data["repository"]["id"]}}}]
    return data


# --- what GitHub can send (an independent statement of the rules, not a call into bot.events) -----

_SHA40 = re.compile(r"[0-9a-f]{40}")
_NAME = re.compile(r"[A-Za-z0-9._\-\[\]]+")


def _possible(job: ReviewJob) -> bool:
    ids = [job.pr.number, job.pr.installation_id]
    ids += [v for v in (job.pr.repo_id, job.comment_id, job.check_run_id) if v is not None]
    shas = [s for s in (job.head_sha, job.base_sha, job.before_sha) if s]
    names = [job.pr.owner, job.pr.repo, *(v for v in (job.sender,) if v)]
    return (
        all(isinstance(i, int) and 0 < i < 2**63 for i in ids)
        and all(_SHA40.fullmatch(s) for s in shas)
        and (job.trigger == "command" or _SHA40.fullmatch(job.head_sha) is not None)
        and all(_NAME.fullmatch(n) and len(n) <= 110 for n in names)
        and all("\0" not in v and _utf8(v) for v in _plan_texts(job))
    )


def _plan_texts(job: ReviewJob) -> list[str]:
    facts = job.plan.facts
    return [facts.author, facts.title, *facts.labels, *(v for v in (job.plan.authorize,) if v)]


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- targeted cases from the report --------------------------------------------------------------

IMPOSSIBLE: list[tuple[str, Any]] = [
    ("pull_request.number", 0),
    ("pull_request.number", -1),
    ("pull_request.number", 2**63),
    ("pull_request.number", 10**30),
    ("pull_request.number", "1"),
    ("pull_request.number", True),
    ("installation.id", 0),
    ("installation.id", -5),
    ("installation.id", 2**64),
    ("installation.id", 1.5),
    ("installation.id", "\ud800"),
    ("pull_request.head.sha", "x"),
    ("pull_request.head.sha", "deadbeef"),
    ("pull_request.head.sha", "g" * 40),
    ("pull_request.head.sha", "\0" * 40),
    ("pull_request.head.sha", "\ud800" * 40),
    ("pull_request.head.sha", None),
    ("pull_request.base.sha", "not a sha"),
    ("repository.owner.login", "octo\0org"),
    ("repository.owner.login", "octo😀"),
    ("repository.owner.login", "\ud800"),
    ("repository.owner.login", "octo/../x"),
    ("repository.owner.login", ""),
    ("repository.name", "re\0po"),
    ("repository.name", "repo😀"),
    ("repository.name", "\udfff"),
    ("repository.name", ".."),
    ("repository.name", "a/b"),
    ("repository.name", "x" * 101),
    ("repository.id", 0),
    ("pull_request.user.login", "mallory\ud800"),
    ("pull_request.user.login", "a b"),
    ("sender.login", "\0"),
]


@pytest.mark.parametrize(("path", "value"), IMPOSSIBLE, ids=[f"{p}={v!r}"[:60] for p, v in IMPOSSIBLE])
def test_w02_impossible_identity_is_a_400_and_never_queued(
    queue: RecordingQueue, path: str, value: Any
) -> None:
    body = _dump(_set(fixture(OPENED), path, value))
    with _client(queue, log_requests=False) as client:
        response = client.post("/webhook", content=body, headers=headers(body, "pull_request"))
    assert response.status_code == 400, response.text
    assert queue.jobs == {}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("issue.number", 0),
        ("comment.id", -1),
        ("comment.user.login", "\ud800"),
        ("repository.owner.login", "a\0"),
        ("issue.user.login", "x😀"),
    ],
)
def test_w02_impossible_command_identity_is_a_400(queue: RecordingQueue, path: str, value: Any) -> None:
    body = _dump(_set(command_payload(), path, value))
    with _client(queue, log_requests=False) as client:
        response = client.post("/webhook", content=body, headers=headers(body, "issue_comment"))
    assert response.status_code == 400, response.text
    assert queue.jobs == {}


@pytest.mark.parametrize(
    ("path", "value"),
    [("check_run.head_sha", "x"), ("check_run.pull_requests.0.number", 2**63), ("sender.login", "é")],
)
def test_w02_impossible_rerun_identity_is_a_400(queue: RecordingQueue, path: str, value: Any) -> None:
    payload = _rerun_payload()
    with _client(queue, log_requests=False) as client:
        body = _dump(payload)
        assert (
            client.post("/webhook", content=body, headers=headers(body, "check_run", "ok")).status_code == 202
        )
        body = _dump(_set(payload, path, value))
        response = client.post("/webhook", content=body, headers=headers(body, "check_run", "bad"))
    assert response.status_code == 400, response.text
    assert len(queue.jobs) == 1


def test_w02_invalid_delivery_never_supersedes_a_valid_pending_job(queue: RecordingQueue) -> None:
    valid = fixture(OPENED)
    with _client(queue, log_requests=False) as client:
        body = _dump(valid)
        first = client.post("/webhook", content=body, headers=headers(body, "pull_request", "good"))
        assert first.status_code == 202
        for n, sha in enumerate(["x", "\0", "A" * 40, "\ud800"]):
            bad = _set(valid, "pull_request.head.sha", sha)
            body = _dump(bad)
            assert (
                client.post(
                    "/webhook", content=body, headers=headers(body, "pull_request", f"b{n}")
                ).status_code
                == 400
            )
    (record,) = asyncio.run(queue.real.jobs())
    assert record.id == first.json()["job"] and record.state is JobState.PENDING
    assert record.job.head_sha == valid["pull_request"]["head"]["sha"]


def test_w02_lone_surrogate_in_action_is_ignored_with_a_log_line(queue: RecordingQueue) -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.handleError = lambda record: (_ for _ in ()).throw(AssertionError("log line lost"))  # type: ignore[method-assign]
    logger = logging.getLogger("bot.server")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        body = _dump(fixture(OPENED, action="\ud800"))
        with _client(queue, log_requests=True) as client:
            response = client.post("/webhook", content=body, headers=headers(body, "pull_request", "sur-1"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert response.status_code == 200, response.text
    assert "ignored" in response.json()
    lines = [json.loads(line) for line in raw.getvalue().decode("utf-8").splitlines()]
    assert [(line["delivery"], line["action"]) for line in lines] == [("sur-1", "\ud800")]
    assert queue.jobs == {}


def test_w02_invalid_delivery_logs_one_line_even_with_request_logging_off(queue: RecordingQueue) -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("bot.server")
    logger.addHandler(handler)
    try:
        body = _dump(_set(fixture(OPENED), "repository.name", "re\ud800po"))
        with _client(queue, log_requests=False) as client:
            response = client.post("/webhook", content=body, headers=headers(body, "pull_request", "bad-1"))
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 400
    (line,) = [json.loads(x) for x in raw.getvalue().decode("utf-8").splitlines()]
    assert (
        line["status"] == 400 and line["outcome"] == "invalid" and line["reason"] == "invalid repository name"
    )


def test_w02_free_text_with_surrogates_or_nul_is_queued_scrubbed(queue: RecordingQueue) -> None:
    payload = _set(fixture(OPENED), "pull_request.title", "fix \ud800 and \0 bytes")
    payload["pull_request"]["labels"] = [{"name": "bug\udfff"}]
    body = _dump(payload)
    with _client(queue, log_requests=False) as client:
        response = client.post("/webhook", content=body, headers=headers(body, "pull_request"))
    assert response.status_code == 202, response.text
    (job,) = queue.jobs.values()
    assert job.plan.facts.title == "fix ? and  bytes" and job.plan.facts.labels == ("bug?",)


@pytest.mark.parametrize("delivery", ["a b", "x" * 101, "d\x7f", "é"])
def test_w02_malformed_delivery_id_is_a_400(queue: RecordingQueue, delivery: str) -> None:
    body = _dump(fixture(OPENED))
    hdrs = headers(body, "pull_request")
    hdrs["X-GitHub-Delivery"] = delivery
    with _client(queue, log_requests=False) as client:
        response = client.post(
            "/webhook", content=body, headers={k: v.encode("latin-1") for k, v in hdrs.items()}
        )  # type: ignore[misc]
    assert response.status_code == 400 and queue.jobs == {}


# --- property: any signed body ---------------------------------------------------------------------

_INTS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**63 - 1, 2**63, 2**64, -(2**63)]),
)
_HOSTILE_TEXT = st.one_of(
    st.text(max_size=50),  # hypothesis' text includes lone surrogates
    st.text(alphabet=st.characters(codec=None), max_size=50),
    st.sampled_from(["", "\0", "\ud800", "x", "😀", "a" * 40, "0" * 40, "-oProxyCommand=x", "..", "a/b"]),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _INTS, st.floats(allow_nan=False), _HOSTILE_TEXT)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_HOSTILE_TEXT, inner, max_size=3)),
    max_leaves=8,
)
_PATHS = [
    "action",
    "installation",
    "installation.id",
    "pull_request",
    "pull_request.number",
    "pull_request.state",
    "pull_request.head",
    "pull_request.head.sha",
    "pull_request.head.repo.full_name",
    "pull_request.base.sha",
    "pull_request.base.repo.full_name",
    "pull_request.user",
    "pull_request.user.login",
    "pull_request.title",
    "pull_request.labels",
    "pull_request.draft",
    "repository",
    "repository.id",
    "repository.name",
    "repository.owner.login",
    "sender.login",
    "before",
]
_COMMAND_PATHS = [
    "issue.number",
    "issue.pull_request",
    "issue.state",
    "issue.title",
    "issue.user.login",
    "comment.id",
    "comment.body",
    "comment.user.login",
    "comment.user.type",
    "installation.id",
    "repository.name",
    "repository.owner.login",
]
_BASES = {
    "pull_request": (lambda: fixture(OPENED), _PATHS),
    "synchronize": (lambda: fixture(OPENED, action="synchronize", before="1" * 40), [*_PATHS, "before"]),
    "issue_comment": (command_payload, _COMMAND_PATHS),
}


_DELIVERIES = itertools.count()


@st.composite
def signed_deliveries(draw: st.DrawFn) -> tuple[str, bytes]:
    shape = draw(st.sampled_from(["mutated", "mutated", "mutated", "random"]))
    if shape == "random":
        event = draw(st.sampled_from(["pull_request", "issue_comment", "check_run", "ping", "push"]))
        return event, _dump(draw(_JSON))
    name = draw(st.sampled_from(sorted(_BASES)))
    make, paths = _BASES[name]
    payload = make()
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3, unique=True)):
        payload = _set(payload, path, draw(_JSON))
    return ("issue_comment" if name == "issue_comment" else "pull_request"), _dump(payload)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(deliveries=st.lists(signed_deliveries(), min_size=1, max_size=4))
def test_w02_property_no_5xx_and_no_job_from_an_impossible_identity(
    queue: RecordingQueue, deliveries: list[tuple[str, bytes]]
) -> None:
    with _client(queue, log_requests=False) as client:
        for event, body in deliveries:
            response = client.post(
                "/webhook", content=body, headers=headers(body, event, f"fz-{next(_DELIVERIES)}")
            )
            assert response.status_code < 500, (response.status_code, response.text, body[:300])
            assert response.status_code in (200, 202, 400), response.status_code
            response.json()  # every answer is well-formed JSON
    bad = [job for job in queue.jobs.values() if not _possible(job)]
    assert bad == []


# --- the same on Postgres, where NUL in text is an error of its own -------------------------------


@pytest.mark.postgres
def test_w02_hostile_text_and_identities_on_postgres_never_503() -> None:
    import uuid

    import httpx
    import psycopg

    from bot.store.postgres_queue import PostgresQueue

    dsn = "postgresql://postgres@127.0.0.1:5432/test"
    try:
        admin = psycopg.connect(dsn, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"Postgres unreachable: {exc}")
    schema = f"br_test_{uuid.uuid4().hex}"
    admin.execute(f"CREATE SCHEMA {schema}")
    cases: list[tuple[dict[str, Any], int]] = [
        (_set(fixture(OPENED), "pull_request.title", "a\0b\ud800c"), 202),
        (
            _set(
                _set(fixture(OPENED, action="synchronize", before="1" * 40), "pull_request.number", 3),
                "pull_request.labels",
                [{"name": "\0\udfff"}],
            ),
            202,
        ),
        (_set(fixture(OPENED), "repository.name", "re\0po"), 400),
        (_set(fixture(OPENED), "repository.owner.login", "\ud800"), 400),
        (_set(fixture(OPENED), "installation.id", 2**64), 400),
        (_set(fixture(OPENED), "pull_request.head.sha", "\0" * 40), 400),
        (_set(command_payload(), "comment.user.login", "a\0"), 400),
    ]

    async def main() -> list[int]:
        queue = PostgresQueue(dsn, schema=schema, min_size=1, max_size=2)
        app = create_app(
            Settings(webhook_secrets=(Secret(SECRET.decode()),), app_id=APP_ID, log_requests=False), queue
        )
        statuses = []
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as client:
                for n, (payload, _) in enumerate(cases):
                    body = _dump(payload)
                    event = "issue_comment" if "comment" in payload else "pull_request"
                    response = await client.post(
                        "/webhook", content=body, headers=headers(body, event, f"pg-{n}")
                    )
                    statuses.append(response.status_code)
            assert len(await queue.jobs()) == 2
        finally:
            await queue.close()
        return statuses

    try:
        assert asyncio.run(main()) == [want for _, want in cases]
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
