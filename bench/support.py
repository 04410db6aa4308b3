"""Shared bench helpers: a slow scripted model server, process figures and git timing helpers.

The slow model speaks the Anthropic Messages wire format (non-streaming) and holds every reply for a
fixed latency. Unlike ``tests.support.model_server`` (one global script), it answers each conversation
from its own history, so any number of reviews can run at once: a conversation with no assistant turn
yet gets one ``grep`` tool call, every later turn gets ``submit_review`` with one finding. It runs in
its own process (``python -m bench.support model --latency 2``, which prints the port), so its threads
and sockets never count in the measured process.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "Bench Author",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench Author",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}


def git(
    repo: Path | None, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None
) -> str:
    """Plain git for building fixtures (not the product's hardened runner)."""
    cwd = ["-C", str(repo)] if repo is not None else []
    out = subprocess.run(
        ["git", *cwd, *args],
        input=input,
        env={**os.environ, **GIT_ENV, **(env or {})},
        check=True,
        capture_output=True,
    )
    return out.stdout.decode("utf-8", "replace").strip()


def median_ms(values: Sequence[float]) -> str:
    ordered = sorted(values)
    mid = len(ordered) // 2
    med = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return f"{med * 1000:7.0f} ms"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class FdSampler:
    """Samples this process's open file descriptors on a thread (catches the peak mid-run)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.peak = open_fds()
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fd-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, open_fds())

    def __enter__(self) -> FdSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# ----------------------------------------------------------------------------------- slow model


def _tool_call(turn: int, finding: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if turn == 0:
        return "grep", {"pattern": "execute(", "glob": "*.py"}
    return "submit_review", {"findings": [dict(finding)], "summary": "One issue."}


class SlowModelServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # 100+ clients connect at once; a backlog of 5 would drop SYNs (1 s retry)

    def __init__(self, latency: float, finding: Mapping[str, Any]) -> None:
        self.latency = latency
        self.finding = finding
        self.ids = itertools.count(1)
        super().__init__(("127.0.0.1", 0), _SlowHandler)


class _SlowHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SlowModelServer

    def do_POST(self) -> None:
        started = time.monotonic()
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.loads(raw)
        turn = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        name, args = _tool_call(turn, self.server.finding)
        n = next(self.server.ids)
        out = {
            "id": f"msg_{n:06d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "slow"),
            "content": [{"type": "tool_use", "id": f"toolu_{n:06d}", "name": name, "input": args}],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": len(raw) // 4 + 1, "output_tokens": 60},
        }
        data = json.dumps(out).encode()
        time.sleep(max(0.0, self.server.latency - (time.monotonic() - started)))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def slow_model(latency: float, finding: Mapping[str, Any]) -> Iterator[str]:
    """Start the slow model in a child process; yield its base URL; stop it (by its own pid)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.support",
            "model",
            "--latency",
            str(latency),
            "--finding",
            json.dumps(finding),
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.support")
    sub = parser.add_subparsers(dest="command", required=True)
    model = sub.add_parser("model", help="serve the slow Anthropic-format model on 127.0.0.1")
    model.add_argument("--latency", type=float, default=2.0)
    model.add_argument("--finding", default="{}")
    args = parser.parse_args()
    server = SlowModelServer(args.latency, json.loads(args.finding))
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
