"""`backend-review serve` readiness: process start → first 200 on ``GET /healthz``, and RSS once ready.

DESIGN.md target: server ready in ≤ 1 s (PR-Agent: 3.3 s, 209 MiB). Receiver-only settings: a webhook
secret, a SQLite queue in a fresh data dir, ``--workers 0`` (no GitHub App key, no model). Each run is a
fresh process with a fresh data dir (the queue's schema is created on every run, as on a first start).
Readiness is polled with a raw socket every 2 ms, so the figure includes the first request's own cost.

For reference it also times the floor under the same conditions: a bare ``python -c pass`` and the
imports ``serve`` needs (``bot.app`` plus ``bot.server`` and uvicorn). Prints figures; asserts nothing.

Run: ``.venv/bin/python -m bench serve_start`` (``BR_BENCH_SERVE_RUNS`` runs, default 5).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = int(os.environ.get("BR_BENCH_SERVE_RUNS", "5"))
SECRET = "bench-webhook-secret-0123456789abcdef"  # 36 bytes: the W-01 minimum is 32
DEADLINE = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthz(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` plus its children (uvicorn may fork none, but count them if it does)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(c) for c in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}  # to time a scratch copy
    return env | {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(data_dir),
        "BACKEND_REVIEW_WEBHOOK_SECRET": SECRET,
        "BACKEND_REVIEW_DATA_DIR": str(data_dir),
        "BACKEND_REVIEW_PORT": str(port),
        "BACKEND_REVIEW_LOG_LEVEL": "WARNING",
    }


def _one(exe: str) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="br-bench-serve-") as tmp:
        data = Path(tmp) / "data"
        port = _free_port()
        log = Path(tmp) / "serve.log"
        with log.open("wb") as out:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [exe, "serve", "--port", str(port), "--workers", "0"],
                env=_env(data, port),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd=tmp,
            )
        try:
            while not _healthz(port):
                if proc.poll() is not None:
                    raise RuntimeError(f"serve exited {proc.returncode}: {log.read_text()[-2000:]}")
                if time.perf_counter() - started > DEADLINE:
                    raise RuntimeError(f"serve not ready after {DEADLINE:.0f} s")
                time.sleep(0.002)
            ready = time.perf_counter() - started
            rss = _rss_kib(proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return ready, rss


def _floor(code: str) -> float:
    runs = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, cwd=tempfile.gettempdir()
        )
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    exe = shutil.which("backend-review", path=str(Path(sys.executable).parent)) or "backend-review"
    _one(exe)  # warm the page cache and .pyc files; not counted
    results = [_one(exe) for _ in range(RUNS)]
    ready = [r for r, _ in results]
    rss = [k for _, k in results]
    print(
        f"command: {exe} serve --port <free> --workers 0   (WEBHOOK_SECRET set, SQLite queue, fresh data dir)"
    )
    print(
        f"serve ready (start → first 200 on /healthz): median {statistics.median(ready) * 1000:.0f} ms, "
        f"min {min(ready) * 1000:.0f} ms, max {max(ready) * 1000:.0f} ms over {RUNS} runs (target <= 1000 ms)"
    )
    print(
        f"RSS when ready: median {statistics.median(rss) / 1024:.1f} MiB, max {max(rss) / 1024:.1f} MiB "
        f"(PR-Agent: 3.3 s, 209 MiB)"
    )
    bare = _floor("pass")
    imports = _floor("import bot.app, bot.server, uvicorn, uvloop")
    print(
        f"floor: python -c pass {bare * 1000:.0f} ms; importing bot.app + bot.server + uvicorn + uvloop "
        f"{imports * 1000:.0f} ms (medians of {RUNS})"
    )


if __name__ == "__main__":
    main()
