"""W-05 below the app: request-head size and time caps in a real `backend-review serve` (uvloop + httptools).

Raw sockets against a real subprocess: a huge header is refused with 431 and closed, an unfinished one
too (memory stays bounded), and a head that trickles or never comes is closed at the head deadline.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.waiting import free_port
from tests.support.webhooks import SECRET, fixture, headers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

EXE = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "backend-review"
HEAD_TIMEOUT = 3.0


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "BACKEND_REVIEW_WEBHOOK_SECRET": SECRET.decode(),
        "BACKEND_REVIEW_DATA_DIR": str(tmp / "data"),
        "BACKEND_REVIEW_HEADER_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
        "BACKEND_REVIEW_LOG_REQUESTS": "false",
    }
    with (tmp / "serve.log").open("wb") as err:
        proc = subprocess.Popen(
            [str(EXE), "serve", "--port", str(port), "--workers", "0"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
        )
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, (tmp / "serve.log").read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "serve did not start"
        time.sleep(0.05)
    yield port, proc
    proc.terminate()
    proc.wait(timeout=10)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def _send_until_refused(sock: socket.socket, data: bytes, limit: int) -> int:
    """Send up to ``limit`` bytes of ``data`` repeated; the number sent before the server hung up."""
    sent = 0
    try:
        while sent < limit:
            sent += sock.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def test_w05_huge_header_is_refused_431_and_closed(serve: tuple[int, subprocess.Popen[bytes]]) -> None:
    port, _ = serve
    head = b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (32 * 1024 * 1024) + b"\r\n\r\n"
    with _connect(port) as sock:
        sent = _send_until_refused(sock, head, len(head))
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert sent < len(head)  # refused long before 32 MiB were taken


def test_w05_many_headers_in_one_read_are_refused(serve: tuple[int, subprocess.Popen[bytes]]) -> None:
    port, _ = serve
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-%d: %s\r\n" % (i, b"v" * 90) for i in range(400)
    )
    with _connect(port) as sock:
        sock.sendall(head + b"\r\n")
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]


def test_w05_unfinished_huge_headers_keep_memory_bounded(serve: tuple[int, subprocess.Popen[bytes]]) -> None:
    port, proc = serve
    before = _rss_kib(proc.pid)
    socks = [_connect(port) for _ in range(6)]
    try:
        for sock in socks:
            sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Big: ")
        refused_after = [_send_until_refused(sock, b"a" * 65536, 64 * 1024 * 1024) for sock in socks]
        grown = _rss_kib(proc.pid) - before
    finally:
        for sock in socks:
            sock.close()
    assert all(n < 8 * 1024 * 1024 for n in refused_after), refused_after
    assert grown < 32 * 1024, f"RSS grew by {grown} KiB"  # six 64 MiB headers would be 384 MiB


def test_w05_slow_or_missing_head_is_closed_at_the_deadline(
    serve: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = serve
    with _connect(port) as idle, _connect(port) as slow:
        slow.sendall(b"POST /webhook HTTP/1.1\r\n")
        started = time.monotonic()
        for _ in range(int(HEAD_TIMEOUT * 4) + 8):  # a header byte every 250 ms: never finishes
            try:
                slow.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.25)
        slow_answer = _read_until_closed(slow)
        idle_answer = _read_until_closed(idle)
        waited = time.monotonic() - started
    assert slow_answer.startswith(b"HTTP/1.1 408"), slow_answer[:100]
    assert idle_answer.startswith(b"HTTP/1.1 408"), idle_answer[:100]
    assert waited < 30  # closed by the server, not by the test's socket timeout


def test_w05_normal_delivery_and_keep_alive_still_work(serve: tuple[int, subprocess.Popen[bytes]]) -> None:
    port, _ = serve
    body = b'{"zen": "ok", "hook_id": 1}'
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for n in range(3):  # one kept-alive connection, several requests, with pauses under the deadline
            response = client.post("/webhook", content=body, headers=headers(body, "ping", f"ka-{n}"))
            assert response.status_code == 200, response.text
            time.sleep(HEAD_TIMEOUT / 2)
        body = fixture_bytes()
        response = client.post("/webhook", content=body, headers=headers(body, "pull_request", "ka-pr"))
        assert response.status_code == 202, response.text  # a 28 KB body still passes the head cap
        assert client.get("/healthz", headers={"X-Pad": "p" * 8000}).status_code == 200


def fixture_bytes() -> bytes:
    return json.dumps(fixture("pull_request/opened.payload.json")).encode()
