from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.testclient import TestClient

from bot import events
from bot.server import create_app, uvicorn_config
from bot.settings import Secret, Settings
from tests.support.webhooks import SECRET, RecordingQueue, command_payload, fixture, headers, sign

APP_ID = 777


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[RecordingQueue]:
    """The real embedded SQLite queue."""
    q = RecordingQueue(tmp_path / "queue.sqlite3")
    yield q
    asyncio.run(q.real.close())


def make_settings(**changes: Any) -> Settings:
    base: dict[str, Any] = {
        "webhook_secrets": (Secret(SECRET.decode()),),
        "app_id": APP_ID,
        "log_requests": False,
    }
    base.update(changes)
    return Settings(**base)


def client_for(queue: RecordingQueue, **kw: Any) -> TestClient:
    settings = kw.pop("settings", None) or make_settings()
    return TestClient(create_app(settings, queue, **kw))


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


class Spy:
    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.real(*args, **kwargs)


# --- W-01 ---------------------------------------------------------------------------------------


def test_w01_forged_requests_rejected_signed_accepted(queue: RecordingQueue) -> None:
    parser = Spy(events.parse_payload)
    enqueued: list[int] = []
    with client_for(queue, parser=parser, on_enqueued=lambda: enqueued.append(1)) as client:
        body = body_of(command_payload())
        base = {
            "X-GitHub-Event": "issue_comment",
            "X-GitHub-Delivery": "d-1",
            "Content-Type": "application/json",
        }
        sha1 = "sha1=" + hmac.new(SECRET, body, hashlib.sha1).hexdigest()
        for extra in (
            {},
            {"X-Hub-Signature-256": "sha256=" + "0" * 64},
            {"X-Hub-Signature": sha1},
            {"X-Hub-Signature-256": sign(body, b"wrong-secret" * 4)},
        ):
            response = client.post("/webhook", content=body, headers={**base, **extra})
            assert response.status_code == 401
        assert queue.jobs == {} and parser.calls == 0 and enqueued == []
        response = client.post("/webhook", content=body, headers=headers(body, "issue_comment"))
        assert response.status_code == 202
        assert response.json()["outcome"] == "accepted"
        (job,) = queue.jobs.values()
        assert job.trigger == "command" and job.plan.authorize == "chhsia0" and enqueued == [1]


@pytest.mark.parametrize("path", ["/webhook", "/api/github/webhooks", "/"])
def test_webhook_paths(queue: RecordingQueue, path: str) -> None:
    body = body_of(fixture("pull_request/opened.payload.json"))
    with client_for(queue) as client:
        assert client.post(path, content=body, headers=headers(body, "pull_request")).status_code == 202


def test_w05_valid_event_acked_fast_with_job(queue: RecordingQueue) -> None:
    body = body_of(fixture("pull_request/synchronize.payload.json"))
    with client_for(queue) as client:
        started = time.perf_counter()
        response = client.post("/webhook", content=body, headers=headers(body, "pull_request"))
        assert time.perf_counter() - started < 1.0
    assert response.status_code == 202 and len(queue.jobs) == 1


def test_rotation_previous_secret_accepted(queue: RecordingQueue) -> None:
    settings = make_settings(webhook_secrets=(Secret("n" * 40), Secret(SECRET.decode())))
    body = body_of(fixture("pull_request/opened.payload.json"))
    with client_for(queue, settings=settings) as client:
        assert client.post("/webhook", content=body, headers=headers(body, "pull_request")).status_code == 202


# --- W-02 / W-03 --------------------------------------------------------------------------------


def test_w02_one_byte_changed_rejected_before_parsing(queue: RecordingQueue) -> None:
    parser = Spy(events.parse_payload)
    body = json.dumps(command_payload(), indent=1).encode()
    signed = headers(body, "issue_comment")
    index = body.index(b"\n ")
    tampered = body[:index] + b"\t" + body[index + 1 :]
    assert len(tampered) == len(body)
    with client_for(queue, parser=parser) as client:
        assert client.post("/webhook", content=tampered, headers=signed).status_code == 401
    assert parser.calls == 0 and queue.jobs == {}


def test_w02_duplicate_action_keys_rejected(queue: RecordingQueue) -> None:
    inner = body_of(command_payload())
    body = b'{"action": "deleted", ' + inner[1:]
    with client_for(queue) as client:
        response = client.post("/webhook", content=body, headers=headers(body, "issue_comment"))
    assert response.status_code == 400 and queue.jobs == {}


def test_w03_compare_digest_called_once_per_request(
    queue: RecordingQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(hmac.compare_digest)
    monkeypatch.setattr(hmac, "compare_digest", spy)
    body = body_of(fixture("pull_request/opened.payload.json"))
    good = headers(body, "pull_request")
    digit = good["X-Hub-Signature-256"][-1]
    bad = {**good, "X-Hub-Signature-256": good["X-Hub-Signature-256"][:-1] + ("1" if digit == "0" else "0")}
    with client_for(queue) as client:
        assert client.post("/webhook", content=body, headers=bad).status_code == 401
        assert spy.calls == 1
        assert client.post("/webhook", content=body, headers=good).status_code == 202
        assert spy.calls == 2
        assert client.post("/webhook", content=body, headers={"X-GitHub-Event": "x"}).status_code == 401
        assert spy.calls == 3


# --- W-04 ---------------------------------------------------------------------------------------


def test_w04_same_delivery_twice_no_new_job(queue: RecordingQueue) -> None:
    body = body_of(command_payload())
    with client_for(queue) as client:
        first = client.post("/webhook", content=body, headers=headers(body, "issue_comment", "g-1"))
        second = client.post("/webhook", content=body, headers=headers(body, "issue_comment", "g-1"))
        third = client.post("/webhook", content=body, headers=headers(body, "issue_comment", "g-2"))
    assert first.status_code == 202
    assert second.status_code == 200 and second.json()["outcome"] == "duplicate_delivery"
    assert third.status_code == 200 and third.json()["outcome"] == "duplicate_key"  # same comment id
    assert len(queue.jobs) == 1


def test_w04_queue_failure_is_5xx_so_delivery_can_be_redelivered(queue: RecordingQueue) -> None:
    body = body_of(command_payload())
    queue.fail_with = RuntimeError("database is locked")
    with client_for(queue) as client:
        assert (
            client.post("/webhook", content=body, headers=headers(body, "issue_comment")).status_code == 503
        )
        assert client.get("/readyz").status_code == 503
        queue.fail_with = None
        assert (
            client.post("/webhook", content=body, headers=headers(body, "issue_comment")).status_code == 202
        )
        assert client.get("/readyz").status_code == 200


# --- W-05 ---------------------------------------------------------------------------------------


@pytest.fixture
def hmac_spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Spy]]:
    spies = [Spy(hmac.digest), Spy(hmac.new), Spy(hmac.compare_digest)]
    monkeypatch.setattr(hmac, "digest", spies[0])
    monkeypatch.setattr(hmac, "new", spies[1])
    monkeypatch.setattr(hmac, "compare_digest", spies[2])
    yield spies


def test_w05_30mb_rejected_before_hmac(queue: RecordingQueue, hmac_spy: list[Spy]) -> None:
    body = b"{" + b" " * (30 * 1000 * 1000) + b"}"
    with client_for(queue) as client:
        response = client.post("/webhook", content=body, headers={"X-GitHub-Event": "pull_request"})
    assert response.status_code == 413
    assert [s.calls for s in hmac_spy] == [0, 0, 0] and queue.jobs == {}


def test_w05_streamed_body_counted_without_content_length(queue: RecordingQueue, hmac_spy: list[Spy]) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    with client_for(queue, settings=make_settings(max_body_bytes=5000)) as client:
        response = client.post("/webhook", content=chunks(), headers={"X-GitHub-Event": "pull_request"})
    assert response.status_code == 413
    assert [s.calls for s in hmac_spy] == [0, 0, 0]


def test_w05_trickled_body_closed_at_timeout(queue: RecordingQueue) -> None:
    settings = make_settings(body_timeout_seconds=1.0)
    config = uvicorn_config(create_app(settings, queue), settings, log_level="critical")
    server = uvicorn.Server(config)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.started
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(
                b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"X-GitHub-Event: pull_request\r\nX-GitHub-Delivery: t-1\r\nContent-Length: 100\r\n\r\n"
            )
            started = time.monotonic()
            conn.setblocking(False)
            received = b""
            closed = False
            while time.monotonic() - started < 4 and not closed:
                try:
                    conn.send(b" ")
                except OSError:
                    closed = True
                    break
                end = time.monotonic() + 0.5
                while time.monotonic() < end:
                    try:
                        chunk = conn.recv(4096)
                    except BlockingIOError:
                        time.sleep(0.02)
                        continue
                    except OSError:
                        closed = True
                        break
                    if not chunk:
                        closed = True
                        break
                    received += chunk
            elapsed = time.monotonic() - started
        assert closed, received
        assert received.startswith(b"HTTP/1.1 408")
        assert 0.9 <= elapsed < 2.5
        assert queue.jobs == {}
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        listener.close()


# --- W-06 and routing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("issue_comment", fixture("issue_comment/created.with-installation.payload.json")),
        ("issue_comment", fixture("issue_comment/created.with-installation.payload.json", action="edited")),
        ("issue_comment", fixture("issue_comment/created.with-installation.payload.json", action="deleted")),
        ("pull_request", fixture("pull_request/edited.repo-automation-bots.no-changes.json")),
        ("pull_request", fixture("pull_request/converted_to_draft.payload.json")),
        ("pull_request_review_comment", fixture("pull_request_review_comment/created.payload.json")),
        ("issue_comment", command_payload("> /backend-review")),
    ],
)
def test_w06_ignored_events_get_2xx_and_no_job(
    queue: RecordingQueue, event: str, payload: dict[str, Any]
) -> None:
    body = body_of(payload)
    with client_for(queue) as client:
        response = client.post("/webhook", content=body, headers=headers(body, event))
    assert response.status_code == 200 and "ignored" in response.json()
    assert queue.jobs == {}


def test_w06_unknown_installation(queue: RecordingQueue) -> None:
    body = body_of(fixture("pull_request/opened.payload.json"))
    with client_for(queue, known_installation=lambda i: i == 999) as client:
        response = client.post("/webhook", content=body, headers=headers(body, "pull_request"))
    assert response.status_code == 200 and queue.jobs == {}


def test_ping_and_probes(queue: RecordingQueue) -> None:
    body = body_of(fixture("ping/with-app_id.payload.json"))
    with client_for(queue) as client:
        assert client.post("/webhook", content=body, headers=headers(body, "ping")).status_code == 200
        assert client.get("/").status_code == 200
        assert client.get("/healthz").text == "ok\n"
        assert client.get("/readyz").status_code == 200
        unsigned_headers = headers(body, "ping")
        del unsigned_headers["X-GitHub-Delivery"]
        assert client.post("/webhook", content=body, headers=unsigned_headers).status_code == 400


def test_serve_requires_a_webhook_secret(queue: RecordingQueue) -> None:
    from bot.errors import ConfigError

    with pytest.raises(ConfigError):
        create_app(Settings(), queue)


def test_delivery_log_line(queue: RecordingQueue, caplog: pytest.LogCaptureFixture) -> None:
    body = body_of(fixture("pull_request/opened.payload.json"))
    with (
        caplog.at_level(logging.INFO, logger="bot.server"),
        client_for(queue, settings=make_settings(log_requests=True)) as client,
    ):
        client.post("/webhook", content=body, headers=headers(body, "pull_request", "log-1"))
    (record,) = [r for r in caplog.records if r.getMessage() == "webhook"]
    fields = record.__dict__["fields"]
    assert fields["delivery"] == "log-1" and fields["gh_event"] == "pull_request"
    assert fields["action"] == "opened" and fields["outcome"] == "accepted" and fields["ms"] >= 0
    assert SECRET.decode() not in caplog.text
