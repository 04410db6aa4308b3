"""Signed webhook acks per second and latency percentiles for one `backend-review serve` process.

    .venv/bin/python -m bench.bench_webhooks [--duration 10] [--conns 16,64] [--no-wrk]

The server runs as a real subprocess (pinned to CPU 0 when ``taskset`` exists, the load generator to
CPU 1), with durable SQLite enqueue and per-request logging off, fed the 28 KB fixture
``tests/fixtures/webhooks/pull_request/opened.payload.json`` with a fresh ``X-GitHub-Delivery`` per
request. Scenarios:

1. ``receiver``: ``--workers 0`` (webhook receiver only).
2. ``slow-github``: workers on and a GitHub App configured against the fake GitHub answering every
   call after 3 s (``FakeGitHub.delay = 3``): the ack path must not slow down, because no GitHub call
   is made on the request path.

Two load generators:

- ``newjob`` (always): an asyncio HTTP/1.1 keep-alive client in a subprocess. Every request carries a
  distinct pull request number and head SHA, signed per request, so every ack is a new durably queued
  job (an INSERT committed by the SQLite group-commit writer before the 202).
- ``wrk`` (when installed): the peers bench's method (/work/shared/bench/webhook-peers/post.lua): one
  fixed signed body, fresh delivery ids. After the first request these are duplicates of a queued job on
  the semantic key (W-04: answered 200 after a read, no write) — comparable with the peers' numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "webhooks" / "pull_request" / "opened.payload.json"
EXE = ROOT / ".venv" / "bin" / "backend-review"
SECRET = "bench-webhook-secret-" + "0123456789abcdef" * 2
NUMBER_BASE = 100_000_000  # 9-digit PR numbers: every body has the same length
SHA_MARK = "f" * 40

WRK_LUA = r"""
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
local body = f:read("*a")
f:close()
local signature = os.getenv("SIGNATURE")
local threads = {}
local counter = 0
local tid_next = 0
non2xx = 0
function setup(thread)
  tid_next = tid_next + 1
  thread:set("tid", tid_next)
  table.insert(threads, thread)
end
function request()
  counter = counter + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "pull_request",
    ["X-GitHub-Delivery"] = string.format("%s-%d-%d", os.getenv("RUN_ID"), tid or 0, counter),
    ["X-Hub-Signature-256"] = signature,
  }, body)
end
function response(status, headers, resp_body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + (t:get("non2xx") or 0) end
  local e = summary.errors
  io.write(string.format("RESULT %.1f %.3f %.3f %.3f %d %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    bad, e.connect + e.read + e.write + e.timeout, summary.requests))
end
"""


def _payload(installation_id: int) -> dict[str, object]:
    data: dict[str, object] = json.loads(FIXTURE.read_text())
    data["installation"] = {"id": installation_id}
    return data


def _template(installation_id: int) -> bytes:
    """The fixture with placeholders for a per-request PR number and head SHA."""
    data = _payload(installation_id)
    pr = data["pull_request"]
    assert isinstance(pr, dict)
    data["number"] = NUMBER_BASE
    pr["number"] = NUMBER_BASE
    pr["head"]["sha"] = SHA_MARK
    return json.dumps(data).encode()


# --- the asyncio load generator (runs in its own process) -----------------------------------------


async def _connection(
    port: int, template: bytes, start: int, step: int, stop_at: float, latencies: list[float]
) -> tuple[int, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    secret = SECRET.encode()
    number_mark = str(NUMBER_BASE).encode()
    n, bad, i = 0, 0, start
    try:
        while time.perf_counter() < stop_at:
            number = str(NUMBER_BASE + i).encode()
            body = template.replace(number_mark, number).replace(SHA_MARK.encode(), f"{i:040x}".encode())
            sig = hmac.new(secret, body, hashlib.sha256).hexdigest()
            head = (
                "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"X-GitHub-Event: pull_request\r\nX-GitHub-Delivery: {uuid.uuid4()}\r\n"
                f"X-Hub-Signature-256: sha256={sig}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            t0 = time.perf_counter()
            writer.write(head + body)
            status_line = await reader.readuntil(b"\r\n")
            headers = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in headers.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            status = int(status_line.split()[1])
            bad += not 200 <= status < 300
            n += 1
            i += step
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return n, bad


async def _load(port: int, conns: int, seconds: float, installation_id: int, offset: int) -> dict[str, float]:
    template = _template(installation_id)
    latencies: list[float] = []
    started = time.perf_counter()
    results = await asyncio.gather(
        *(_connection(port, template, offset + c, conns, started + seconds, latencies) for c in range(conns))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0.0

    total = sum(n for n, _ in results)
    return {
        "rps": total / elapsed,
        "p50": pct(0.50),
        "p90": pct(0.90),
        "p99": pct(0.99),
        "non2xx": sum(b for _, b in results),
        "requests": total,
    }


# --- orchestration --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


@contextlib.contextmanager
def _server(work: Path, workers: int, extra_env: dict[str, str]) -> Iterator[int]:
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "BACKEND_REVIEW_WEBHOOK_SECRET": SECRET,
        "BACKEND_REVIEW_DATA_DIR": str(work / "data"),
        "BACKEND_REVIEW_LOG_REQUESTS": "false",
        "BACKEND_REVIEW_LOG_LEVEL": "WARNING",
        "BACKEND_REVIEW_DEBOUNCE_SECONDS": "0",
        **extra_env,
    }
    log = (work / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen(
        [*_pin(0), str(EXE), "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited: {(work / f'serve-{port}.log').read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not become ready")
            time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _run_newjob(port: int, conns: int, seconds: float, installation_id: int, offset: int) -> dict[str, float]:
    argv = [
        *_pin(1),
        sys.executable,
        "-m",
        "bench.bench_webhooks",
        "--load-generator",
        json.dumps([port, conns, seconds, installation_id, offset]),
    ]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True, timeout=seconds + 60)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _run_wrk(port: int, conns: int, seconds: float, installation_id: int, work: Path) -> dict[str, float]:
    body = json.dumps(_payload(installation_id)).encode()
    body_file = work / "body.json"
    body_file.write_bytes(body)
    lua = work / "post.lua"
    lua.write_text(WRK_LUA)
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    env = {**os.environ, "BODY_FILE": str(body_file), "SIGNATURE": sig, "RUN_ID": uuid.uuid4().hex}
    argv = [
        *_pin(1),
        "wrk",
        "-t2",
        f"-c{conns}",
        f"-d{int(seconds)}s",
        "-s",
        str(lua),
        f"http://127.0.0.1:{port}/webhook",
    ]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=seconds + 60)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    rps, p50, p90, p99, bad, sock, total = line.split()[1:]
    return {
        "rps": float(rps),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "non2xx": int(bad),
        "requests": int(total),
        "socket_errors": int(sock),
    }


def _row(scenario: str, gen: str, conns: int, r: dict[str, float]) -> str:
    return (
        f"| {scenario} | {gen} | {conns} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p90']:.2f} | "
        f"{r['p99']:.2f} | {int(r['non2xx'])} | {int(r['requests'])} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    parser.add_argument("--conns", default="16,64", help="connection counts (default 16,64)")
    parser.add_argument("--no-wrk", action="store_true", help="skip wrk even when it is installed")
    parser.add_argument("--scenarios", default="receiver,slow-github")
    parser.add_argument("--load-generator", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load_generator:
        port, conns, seconds, inst, offset = json.loads(args.load_generator)
        print(json.dumps(asyncio.run(_load(port, conns, seconds, inst, offset))))
        return 0

    sys.path.insert(0, str(ROOT))
    from tests.support.fake_github import FakeGitHub

    conn_counts = [int(c) for c in args.conns.split(",")]
    use_wrk = not args.no_wrk and shutil.which("wrk") is not None
    rows: list[str] = []
    offset = 0
    print(
        f"# bench_webhooks: {FIXTURE.name} ({FIXTURE.stat().st_size:,} bytes), {args.duration:.0f} s per run"
    )
    print(f"# server pinned: {bool(_pin(0))}; wrk: {'yes' if use_wrk else 'not installed'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        work = Path(tmp)
        for scenario in args.scenarios.split(","):
            with contextlib.ExitStack() as stack:
                if scenario == "receiver":
                    workers, env, inst = 0, {}, 1
                else:
                    fake = stack.enter_context(FakeGitHub(work / "fake"))
                    inst = fake.add_installation("Codertocat").id
                    fake.delay = 3.0  # every GitHub call answers after 3 s
                    env = {
                        "BACKEND_REVIEW_APP_ID": str(fake.app_id),
                        "BACKEND_REVIEW_PRIVATE_KEY": fake.private_key_pem,
                        "BACKEND_REVIEW_GITHUB_API_URL": fake.url,
                    }
                    workers = 2
                port = stack.enter_context(_server(work, workers, env))
                for conns in conn_counts:
                    r = _run_newjob(port, conns, args.duration, inst, offset)
                    offset += int(r["requests"]) + conns
                    rows.append(_row(scenario, "newjob", conns, r))
                    print(rows[-1], flush=True)
                    if use_wrk:
                        r = _run_wrk(port, conns, args.duration, inst, work)
                        rows.append(_row(scenario, "wrk", conns, r))
                        print(rows[-1], flush=True)
                if scenario != "receiver":
                    print(
                        f"# fake GitHub calls during the run (each answered after 3 s): {len(fake.requests)}"
                    )
    print()
    print("| scenario | load | conns | acks/s | p50 ms | p90 ms | p99 ms | non-2xx | requests |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
