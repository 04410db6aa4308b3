"""The webhook receiver: verify, parse, decide, durably enqueue, answer — nothing else (W-01..W-06).

Per request, in this order:

1. ``Content-Length`` above ``max_body_bytes`` → 413 before a byte of the body is read; otherwise the
   body is streamed and counted, and 413 as soon as it passes the limit (W-05). The whole body read
   runs under ``body_timeout_seconds`` → 408. The HMAC is never computed for an oversize body.
2. Signature (``X-Hub-Signature-256`` only) → 401 on any failure, before any parsing (W-01, W-02).
3. Strict JSON parse (duplicate keys rejected) → 400 (W-02).
4. ``ping`` → 200; :func:`bot.events.decide` → ``Ignore`` → 200 with the reason; ``Enqueue`` →
   ``await queue.enqueue(job)`` → 202 for a new job, 200 for a duplicate delivery or semantic key
   (W-04; the queue records the delivery id in the same transaction as the job). A queue failure
   answers 503 so that the delivery can be redelivered.

No GitHub or model call happens on the request path: permission checks (C-01) and the base-branch
config (P-04) are the worker's, carried in ``ReviewJob.extra`` (see :class:`bot.events.Enqueue`).

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
from collections.abc import Callable, Mapping
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot import events, metrics
from bot.log import get_logger
from bot.queue.base import ReviewQueue
from bot.settings import WEBHOOK_PATH, Settings

log = get_logger("bot.server")

_CLOSE = {"Connection": "close"}
_MAX_DELIVERY_ID = 100
# GitHub sends GUIDs and snake_case event names; anything else is a malformed (if signed) delivery
_DELIVERY_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}\Z")
_EVENT = re.compile(r"[a-z_]{1,50}\Z")


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class _AsciiJSON(JSONResponse):
    """JSON escaped to ASCII: a lone surrogate echoed from a payload cannot break the encoding (W-02)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def _json(status: int, body: Mapping[str, Any], close: bool = False) -> JSONResponse:
    return _AsciiJSON(dict(body), status_code=status, headers=_CLOSE if close else None)


def create_app(
    settings: Settings,
    queue: ReviewQueue,
    *,
    on_enqueued: Callable[[], None] | None = None,
    parser: Callable[[bytes], dict[str, Any]] = events.parse_payload,
    known_installation: Callable[[int], bool] | None = None,
) -> Starlette:
    """The ASGI app. ``parser`` is injectable so tests can spy on it; ``known_installation`` is an
    in-memory predicate (no I/O on the request path) — without it every installation id is accepted.
    """
    settings.require_serve()
    secrets = settings.webhook_secret_bytes
    limit = settings.max_body_bytes

    async def webhook(request: Request) -> Response:
        started = time.perf_counter()
        delivery = request.headers.get("x-github-delivery", "")
        gh_event = request.headers.get("x-github-event", "")
        info: dict[str, str] = {}
        response = await _handle(request, delivery, gh_event, info)
        metrics.delivery(gh_event, info.get("outcome", "rejected"), response.status_code)
        invalid = "reason" in info  # a signed but impossible delivery is always logged (W-02)
        if settings.log_requests or invalid:
            (log.warning if invalid else log.info)(
                "webhook",
                delivery=delivery[:_MAX_DELIVERY_ID] or None,
                gh_event=gh_event[:50] or None,
                action=info.get("action"),
                outcome=info.get("outcome", "rejected"),
                reason=info.get("reason"),
                status=response.status_code,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
        return response

    async def _handle(request: Request, delivery: str, gh_event: str, info: dict[str, str]) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return _json(400, {"error": "invalid Content-Length"}, close=True)
            if int(declared) > limit:
                return _json(413, {"error": "payload too large"}, close=True)
        try:
            async with asyncio.timeout(settings.body_timeout_seconds):
                body = await _read_body(request, limit)
        except _TooLarge:
            return _json(413, {"error": "payload too large"}, close=True)
        except TimeoutError:
            return _json(408, {"error": "request body timeout"}, close=True)
        except ClientDisconnect:
            return Response(status_code=400, headers=_CLOSE)
        if not events.verify_signature(secrets, body, request.headers.get("x-hub-signature-256")):
            return _json(401, {"error": "invalid signature"})
        if not _DELIVERY_ID.match(delivery) or not _EVENT.match(gh_event):
            return _json(400, {"error": "missing X-GitHub-Delivery or X-GitHub-Event"})
        try:
            payload = parser(body)
        except events.PayloadError:
            return _json(400, {"error": "invalid JSON payload"})
        action = payload.get("action")
        if isinstance(action, str):
            info["action"] = action[:50]
        if gh_event == "ping":
            info["outcome"] = "ping"
            return _json(200, {"ok": "pong"})
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
            return _json(400, {"error": decision.reason})
        if not isinstance(decision, events.Enqueue):
            info["outcome"] = "ignored"
            reason = decision.reason if isinstance(decision, events.Ignore) else type(decision).__name__
            return _json(200, {"ignored": reason})
        try:
            job = decision.to_job()
            # D-03: pushes wait a little so a burst coalesces into the newest head before any work
            delay = settings.debounce_seconds if job.trigger == "synchronize" else 0.0
            enqueue_started = time.perf_counter()
            result = await queue.enqueue(job, delay_seconds=delay)
            metrics.enqueued(time.perf_counter() - enqueue_started)
        except Exception as exc:  # any queue failure: 5xx so the delivery can be redelivered (W-04)
            log.error("enqueue failed", delivery=delivery, error=type(exc).__name__)
            info["outcome"] = "queue_error"
            return _json(503, {"error": "queue unavailable"})
        info["outcome"] = result.outcome.value
        if result.created and on_enqueued is not None:
            on_enqueued()
        return _json(202 if result.created else 200, {"job": result.job_id, "outcome": result.outcome.value})

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

    routes = [
        Route("/webhook", webhook, methods=["POST"]),
        Route(WEBHOOK_PATH, webhook, methods=["POST"]),
        Route("/", webhook, methods=["POST"]),  # smee-client's default target
        Route("/", index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    return Starlette(routes=routes)


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


def uvicorn_config(app: Starlette, settings: Settings, **overrides: Any) -> uvicorn.Config:
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
