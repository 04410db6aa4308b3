"""The webhook receiver: verify, parse, decide, durably enqueue, answer — nothing else (W-01..W-06).

Per request, in this order:

1. ``Content-Length`` above ``max_body_bytes`` → 413 before a byte of the body is read; otherwise the
   body is streamed and counted, and 413 as soon as it passes the limit (W-05). The whole body read
   runs under ``body_timeout_seconds`` → 408. The HMAC is never computed for an oversize body.
2. Signature (``X-Hub-Signature-256`` only) → 401 on any failure, before any parsing (W-01, W-02).
3. A delivery id or event name GitHub could not have sent → 400; strict JSON parse (duplicate keys
   rejected) → 400 (W-02).
4. ``ping`` → 200; :func:`bot.events.decide` → ``Reject`` (an impossible identity: id out of range,
   a SHA that is not 40 hex, a name outside GitHub's characters) → 400 with one warning line, never
   queued; ``Ignore`` → 200 with the reason; ``Enqueue`` → ``await queue.enqueue(job)`` → 202 for a
   new job, 200 for a duplicate delivery or semantic key (W-04; the queue records the delivery id in
   the same transaction as the job). Only a queue failure answers 503, so that the delivery can be
   redelivered. Every answer is ASCII-escaped JSON, so input echoed back cannot break its encoding.

Webhook POSTs take a bare ASGI path (no middleware, routing or request objects: it is the hot path);
``/healthz``, ``/readyz``, ``/metrics`` and ``/`` go through Starlette. Deliveries and enqueue latency
are counted in :mod:`bot.metrics`.

No GitHub or model call happens on the request path: permission checks (C-01) and the base-branch
config (P-04) are the worker's, asked for by the job's plan (``ReviewJob.plan``, see :mod:`bot.events`).

Below the app (see :func:`uvicorn_config`): the request head (line + headers) is capped in size
(``max_header_bytes`` → 431) and time (``header_timeout_seconds`` → 408, counted from the connection
or a kept-alive request's first byte) by a guarded httptools protocol, since uvicorn bounds neither
under httptools; ``timeout_keep_alive`` closes idle keep-alive connections and ``limit_concurrency``
answers 503 past a connection count.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot import events, metrics
from bot.log import get_logger
from bot.queue.base import ReviewQueue
from bot.settings import WEBHOOK_PATH, Settings

log = get_logger("bot.server")

_MAX_DELIVERY_ID = 100
# GitHub sends GUIDs and snake_case event names; anything else is a malformed (if signed) delivery
_DELIVERY_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}\Z")
_EVENT = re.compile(r"[a-z_]{1,50}\Z")


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
_WANTED = frozenset({b"content-length", b"x-github-delivery", b"x-github-event", b"x-hub-signature-256"})


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class _Answer:
    """A JSON answer, escaped to ASCII: a lone surrogate echoed from a payload cannot break it (W-02)."""

    __slots__ = ("body", "close", "status")

    def __init__(self, status: int, body: Mapping[str, Any], close: bool = False) -> None:
        self.status = status
        self.body = json.dumps(body, separators=(",", ":")).encode("ascii")
        self.close = close

    async def send(self, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(self.body))]
        if self.close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


class _Webhook:
    """``POST /webhook`` as a bare ASGI app: it is the hot path, so it skips Starlette's middleware,
    routing, request and response objects (a class instance, so Starlette mounts it as ASGI as is)."""

    def __init__(self, handle: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self._handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._handle(scope, receive, send)


class _Receiver:
    """The ASGI entry point: webhook POSTs go straight to :class:`_Webhook`, the rest to Starlette."""

    def __init__(self, webhook: _Webhook, app: Starlette, paths: frozenset[str]) -> None:
        self._webhook = webhook
        self._app = app
        self._paths = paths

    @property
    def routes(self) -> list[BaseRoute]:
        return self._app.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self._paths:
            await self._webhook(scope, receive, send)
        else:
            await self._app(scope, receive, send)


def create_app(
    settings: Settings,
    queue: ReviewQueue,
    *,
    on_enqueued: Callable[[], None] | None = None,
    parser: Callable[[bytes], dict[str, Any]] = events.parse_payload,
    known_installation: Callable[[int], bool] | None = None,
) -> _Receiver:
    """The ASGI app. ``parser`` is injectable so tests can spy on it; ``known_installation`` is an
    in-memory predicate (no I/O on the request path) — without it every installation id is accepted.
    """
    settings.require_serve()
    secrets = settings.webhook_secret_bytes
    limit = settings.max_body_bytes

    async def webhook(scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _WANTED}
        delivery = headers.get("x-github-delivery", "")
        gh_event = headers.get("x-github-event", "")
        info: dict[str, str] = {}
        answer = await _handle(headers, receive, delivery, gh_event, info)
        await answer.send(send)
        metrics.delivery(gh_event, info.get("outcome", "rejected"), answer.status)
        invalid = "reason" in info  # a signed but impossible delivery is always logged (W-02)
        if settings.log_requests or invalid:
            (log.warning if invalid else log.info)(
                "webhook",
                delivery=delivery[:_MAX_DELIVERY_ID] or None,
                gh_event=gh_event[:50] or None,
                action=info.get("action"),
                outcome=info.get("outcome", "rejected"),
                reason=info.get("reason"),
                status=answer.status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )

    async def _handle(
        headers: dict[str, str], receive: Receive, delivery: str, gh_event: str, info: dict[str, str]
    ) -> _Answer:
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return _Answer(400, {"error": "invalid Content-Length"}, close=True)
            if int(declared) > limit:
                return _Answer(413, {"error": "payload too large"}, close=True)
        try:
            async with asyncio.timeout(settings.body_timeout_seconds):
                body = await _read_body(receive, limit)
        except _TooLarge:
            return _Answer(413, {"error": "payload too large"}, close=True)
        except TimeoutError:
            return _Answer(408, {"error": "request body timeout"}, close=True)
        except _Disconnected:
            return _Answer(400, {"error": "client disconnected"}, close=True)
        if not events.verify_signature(secrets, body, headers.get("x-hub-signature-256")):
            return _Answer(401, {"error": "invalid signature"})
        if not _DELIVERY_ID.match(delivery) or not _EVENT.match(gh_event):
            return _Answer(400, {"error": "missing X-GitHub-Delivery or X-GitHub-Event"})
        try:
            payload = parser(body)
        except events.PayloadError:
            return _Answer(400, {"error": "invalid JSON payload"})
        action = payload.get("action")
        if isinstance(action, str):
            info["action"] = action[:50]
        if gh_event == "ping":
            info["outcome"] = "ping"
            return _Answer(200, {"ok": "pong"})
        installation = payload.get("installation")
        inst_id = installation.get("id") if isinstance(installation, dict) else None
        known = known_installation is None or (isinstance(inst_id, int) and known_installation(inst_id))
        decision = events.decide(
            gh_event,
            payload,
            delivery_id=delivery,
            app_id=settings.app_id,
            allowed_bot_app_ids=settings.allowed_bot_app_ids,
            known_installation=known,
        )
        if isinstance(decision, events.Reject):
            info["outcome"] = "invalid"
            info["reason"] = decision.reason
            return _Answer(400, {"error": decision.reason})
        if not isinstance(decision, events.Enqueue):
            info["outcome"] = "ignored"
            reason = decision.reason if isinstance(decision, events.Ignore) else type(decision).__name__
            return _Answer(200, {"ignored": reason})
        try:
            job = decision.job
            # D-03: pushes wait a little so a burst coalesces into the newest head before any work
            delay = settings.debounce_seconds if job.trigger == "synchronize" else 0.0
            enqueue_started = time.perf_counter()
            result = await queue.enqueue(job, delay_seconds=delay)
            metrics.enqueued(time.perf_counter() - enqueue_started)
        except Exception as exc:  # any queue failure: 5xx so the delivery can be redelivered (W-04)
            log.error("enqueue failed", delivery=delivery, error=type(exc).__name__)
            info["outcome"] = "queue_error"
            return _Answer(503, {"error": "queue unavailable"})
        info["outcome"] = result.outcome.value
        if result.created and on_enqueued is not None:
            on_enqueued()
        return _Answer(
            202 if result.created else 200, {"job": result.job_id, "outcome": result.outcome.value}
        )

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        try:
            await queue.state("readyz-probe")
        except Exception as exc:  # not ready, whatever the reason
            log.warning("queue not ready", error=type(exc).__name__)
            return PlainTextResponse("queue unavailable\n", status_code=503)
        return PlainTextResponse("ready\n")

    async def metrics_endpoint(request: Request) -> Response:
        if not metrics.enabled():
            return PlainTextResponse("metrics are off\n", status_code=404)
        return Response(await metrics.render(queue), media_type=metrics.CONTENT_TYPE)

    async def index(request: Request) -> Response:
        return PlainTextResponse("backend-review webhook receiver\n")

    hook = _Webhook(webhook)
    routes = [
        Route("/webhook", hook, methods=["POST"]),
        Route(WEBHOOK_PATH, hook, methods=["POST"]),
        Route("/", hook, methods=["POST"]),  # smee-client's default target
        Route("/", index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    return _Receiver(hook, Starlette(routes=routes), frozenset({"/webhook", WEBHOOK_PATH, "/"}))


def _guarded_httptools(max_head_bytes: int, head_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with a cap on the request head's size and time (W-05).

    uvicorn bounds neither under httptools (``h11_max_incomplete_event_size`` is h11's only), and a
    fresh connection that sends nothing is held until the client gives up. Here the head — request
    line plus headers — must arrive within ``head_timeout`` of the connection (or of its first byte
    on a kept-alive connection) and within ``max_head_bytes``: else 408/431 and the connection closes,
    so an unfinished 64 MiB header costs at most one read buffer.
    """
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class _HeadTooLarge(Exception):
        pass

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _in_head = True
        _head_bytes = 0
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._head_timer = self.loop.call_later(head_timeout, self._head_expired)

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                if self._head_timer is None:  # first byte of a request on a kept-alive connection
                    self._head_timer = self.loop.call_later(head_timeout, self._head_expired)
                self._head_bytes += len(data)
            self._unset_keepalive_if_required()
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError as exc:
                if isinstance(exc.__context__, _HeadTooLarge):
                    self._refuse(b"431 Request Header Fields Too Large")
                    return
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
                return
            except httptools.HttpParserUpgrade:
                self._unsupported_upgrade_warning()
                return
            # bytes that are still the head after this read: an unfinished head past the cap
            if self._in_head and self._head_bytes > max_head_bytes:
                self._refuse(b"431 Request Header Fields Too Large")

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._end_head()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head, self._head_bytes, self._head_size = True, 0, 0  # the next request's head

        def connection_lost(self, exc: Exception | None) -> None:
            self._end_head()
            super().connection_lost(exc)

        _head_size = 0

        def _count(self, n: int) -> None:
            # exact size of the parsed head, so a whole oversize head in one read is refused too
            self._head_size += n
            if self._head_size > max_head_bytes:
                raise _HeadTooLarge

        def _end_head(self) -> None:
            self._in_head = False
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_expired(self) -> None:
            self._head_timer = None
            if self._in_head and not self.transport.is_closing():
                self._refuse(b"408 Request Timeout")

        def _refuse(self, status: bytes) -> None:
            self._end_head()
            if not self.transport.is_closing():
                self.transport.write(
                    b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                )
                self.transport.close()

    return GuardedHttpToolsProtocol


def uvicorn_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The hardened uvicorn configuration `serve` uses (uvloop + httptools with head caps)."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": _guarded_httptools(settings.max_header_bytes, settings.header_timeout_seconds),
        "lifespan": "off",
        "ws": "none",
        "server_header": False,
        "proxy_headers": False,
        "access_log": False,
        "timeout_keep_alive": 5,  # idle keep-alive connections are closed after 5 s
        "h11_max_incomplete_event_size": settings.max_header_bytes,  # when h11 is chosen instead
        "limit_concurrency": 1000,
        "log_config": None,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


__all__ = ["create_app", "uvicorn_config"]
