"""Prometheus metrics for `serve` and `worker` (``/metrics``), and the worker's small HTTP endpoint.

Every recording function is one call at its site and a no-op until :func:`enable` ran, so `review`,
`ci` and the tests that do not ask for metrics never import ``prometheus_client`` (start-up stays fast).

Labels stay bounded: events and outcomes come from fixed sets; installations get their own label only
when listed in ``BACKEND_REVIEW_METRICS_INSTALLATIONS`` (opt-in), all others share ``other``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from bot.log import get_logger

if TYPE_CHECKING:
    from bot.models import RankedFinding, Usage
    from bot.queue.base import ReviewQueue

log = get_logger("bot.metrics")

PHASES = ("fetch", "checkout", "rules", "model", "publish")
EVENTS = frozenset({"pull_request", "issue_comment", "check_run", "ping"})
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_m: _Metrics | None = None
_installations: frozenset[int] = frozenset()


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        fast = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
        slow = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
        p = "backend_review_"
        self.deliveries = Counter(
            p + "deliveries",
            "Webhook deliveries by event, outcome and status.",
            ["event", "outcome", "status"],
        )
        self.enqueue = Histogram(p + "enqueue_seconds", "Time to durably enqueue one job.", buckets=fast)
        self.queue = Gauge(p + "queue_jobs", "Pending and running jobs by state and lane.", ["state", "lane"])
        self.phase = Histogram(p + "job_phase_seconds", "Job time by phase.", ["phase"], buckets=slow)
        self.jobs = Counter(p + "jobs_finished", "Jobs finished by result.", ["result"])
        self.reviews = Counter(p + "reviews_posted", "Reviews posted to GitHub.")
        self.findings = Counter(
            p + "findings_posted", "Findings in posted reviews by severity.", ["severity"]
        )
        self.tokens = Counter(
            p + "model_tokens", "Model tokens by installation and kind.", ["installation", "kind"]
        )
        self.cost = Counter(
            p + "model_cost_usd", "Estimated model cost (USD) by installation.", ["installation"]
        )
        self.rate = Gauge(
            p + "github_rate_limit_remaining", "GitHub API requests left (last response).", ["installation"]
        )
        self.retries = Counter(p + "job_retries", "Jobs put back for another attempt.")
        self.dead = Counter(p + "jobs_dead_lettered", "Jobs failed for good (dead letters).")
        for phase in PHASES:  # every phase is visible from the first scrape, at zero
            self.phase.labels(phase)
        for state in ("pending", "running"):
            for lane in ("automatic", "command"):
                self.queue.labels(state, lane).set(0)


def enable(installations: Iterable[int] = ()) -> None:
    """Start recording (idempotent). ``installations`` get their own label; all others are ``other``."""
    global _m, _installations
    _installations = frozenset(installations)
    if _m is None:
        _m = _Metrics()


def enabled() -> bool:
    return _m is not None


def installation_label(installation: int | None) -> str:
    return str(installation) if installation in _installations else "other"


def delivery(event: str, outcome: str, status: int) -> None:
    if _m is not None:
        _m.deliveries.labels(event if event in EVENTS else "other", outcome, str(status)).inc()


def enqueued(seconds: float) -> None:
    if _m is not None:
        _m.enqueue.observe(seconds)


def clock() -> float:
    return time.perf_counter()


def phase_since(phase: str, started: float) -> None:
    """Record ``phase`` as lasting from ``started`` (a :func:`clock` value) until now."""
    if _m is not None:
        _m.phase.labels(phase).observe(time.perf_counter() - started)


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        phase_since(name, started)


def job_finished(result: str) -> None:
    """``result``: done, superseded, retry, dead, abandoned."""
    if _m is not None:
        _m.jobs.labels(result).inc()
        if result == "retry":
            _m.retries.inc()
        elif result == "dead":
            _m.dead.inc()


def review_posted(findings: Iterable[RankedFinding]) -> None:
    if _m is not None:
        _m.reviews.inc()
        for ranked in findings:
            _m.findings.labels(ranked.finding.severity.value).inc()


def model_usage(installation: int | None, usage: Usage) -> None:
    if _m is not None:
        label = installation_label(installation)
        _m.tokens.labels(label, "input").inc(usage.input_tokens)
        _m.tokens.labels(label, "output").inc(usage.output_tokens)
        if usage.cost_usd is not None:
            _m.cost.labels(label).inc(usage.cost_usd)


def github_response(installation: int | None, headers: Mapping[str, str]) -> None:
    if _m is not None:
        remaining = headers.get("x-ratelimit-remaining")
        if remaining is not None and remaining.isdigit():
            _m.rate.labels(installation_label(installation)).set(int(remaining))


async def render(queue: ReviewQueue | None) -> bytes:
    """The exposition text; the queue gauge is refreshed first (skipped when the queue is down)."""
    from prometheus_client import generate_latest

    if _m is not None and queue is not None:
        try:
            depth = await queue.depth()
        except Exception as exc:  # a scrape must still answer when the queue is unavailable
            log.warning("queue depth unavailable", error=type(exc).__name__)
        else:
            for state in ("pending", "running"):
                for lane in ("automatic", "command"):
                    _m.queue.labels(state, lane).set(depth.get((state, lane), 0))
    return bytes(generate_latest())


async def serve_http(
    host: str, port: int, queue: ReviewQueue | None, healthy: Callable[[], bool]
) -> asyncio.Server:
    """The worker's endpoint: ``GET /metrics`` and ``GET /healthz`` (200 while the worker runs and its
    loop answers, 503 while it drains). A deliberately tiny HTTP/1.0 server: one request per connection,
    the head capped at 8 KiB and 5 s."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")
            method, _, rest = head.partition(b" ")
            path = rest.partition(b" ")[0].partition(b"?")[0]
            status, ctype, body = _route(method, path, healthy)
            if path == b"/metrics" and status == 200:
                body = await render(queue)
            writer.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
                % (status, _REASONS[status], ctype.encode(), len(body))
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port, limit=8192)


_REASONS = {200: b"OK", 404: b"Not Found", 405: b"Method Not Allowed", 503: b"Service Unavailable"}


def _route(method: bytes, path: bytes, healthy: Callable[[], bool]) -> tuple[int, str, bytes]:
    if method != b"GET":
        return 405, "text/plain", b"method not allowed\n"
    if path == b"/metrics":
        return 200, CONTENT_TYPE, b""
    if path == b"/healthz":
        return (200, "text/plain", b"ok\n") if healthy() else (503, "text/plain", b"draining\n")
    return 404, "text/plain", b"not found\n"


__all__ = [
    "CONTENT_TYPE",
    "PHASES",
    "clock",
    "delivery",
    "enable",
    "enabled",
    "enqueued",
    "github_response",
    "installation_label",
    "job_finished",
    "model_usage",
    "phase",
    "phase_since",
    "render",
    "review_posted",
    "serve_http",
]
