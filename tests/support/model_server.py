"""A scripted model server on 127.0.0.1 speaking the Anthropic Messages and OpenAI Chat Completions wire
formats (non-streaming), so the official SDKs run unmodified against a hijacked "model".

    with ModelServer.start() as server:
        server.play([Call("grep", {"pattern": "execute("}), Fault(429, retry_after="0.2"), Submit([...])])
        provider = AnthropicProvider("claude-x", api_key="k", base_url=server.anthropic_url)
        ...
        assert not any(canary in r.text for r in server.requests)

Each request consumes the next step of the script. A step is a reply (:class:`Reply`, or the
shorthands :class:`Call`, :class:`Submit`, :class:`Text`) or a fault (:class:`Fault`, :class:`Stall`).
When the script runs out, the server answers 500 and counts :attr:`ModelServer.exhausted`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Call:
    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)  # a str is sent verbatim (malformed)


@dataclass(frozen=True)
class Reply:
    text: str = ""
    calls: Sequence[Call] = ()
    input_tokens: int | None = None  # None: estimated from the request size
    output_tokens: int | None = None


def Submit(findings: Sequence[Mapping[str, Any]] = (), summary: str | None = None) -> Call:
    args: dict[str, Any] = {"findings": list(findings)}
    if summary is not None:
        args["summary"] = summary
    return Call("submit_review", args)


def Text(text: str) -> Reply:
    return Reply(text=text)


@dataclass(frozen=True)
class Fault:
    status: int  # 429, 500, 529, …
    retry_after: str | None = None


@dataclass(frozen=True)
class Stall:
    seconds: float  # hold the request this long before answering 500 (the client should time out first)


Step = Reply | Call | Fault | Stall


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    text: str  # the raw request body
    status: int
    input_tokens: int = 0
    output_tokens: int = 0


class ModelServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: list[Step] = []
        self._stop = threading.Event()
        self._ids = itertools.count(1)
        self.requests: list[Recorded] = []
        self.exhausted = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="model-server", daemon=True)

    @classmethod
    def start(cls) -> ModelServer:
        server = cls()
        server._thread.start()
        return server

    def __enter__(self) -> ModelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()  # releases stalled handlers at once
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def anthropic_url(self) -> str:
        return self.base

    @property
    def openai_url(self) -> str:
        return f"{self.base}/v1"

    def play(self, steps: Sequence[Step]) -> None:
        """Replace the script: each following request consumes one step."""
        with self._lock:
            self._script = list(steps)
            self.requests.clear()
            self.exhausted = 0

    @property
    def total_tokens(self) -> int:
        return sum(r.input_tokens + r.output_tokens for r in self.requests)

    @property
    def attempts(self) -> int:
        return len(self.requests)

    def _next(self) -> Step | None:
        with self._lock:
            if not self._script:
                self.exhausted += 1
                return None
            return self._script.pop(0)

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)

    # --- wire formats ---

    def answer(self, path: str, headers: Mapping[str, str], raw: str) -> tuple[int, dict[str, str], bytes]:
        body: Mapping[str, Any] = json.loads(raw) if raw else {}
        flavour = "anthropic" if path.endswith("/messages") else "openai"
        step = self._next()
        if isinstance(step, Stall):
            self._stop.wait(step.seconds)
            step = Fault(500)
        if step is None or isinstance(step, Fault):
            fault = step or Fault(500)
            self._record(Recorded(path, headers, body, raw, fault.status))
            extra = {"retry-after": fault.retry_after} if fault.retry_after else {}
            return fault.status, extra, json.dumps(_error(flavour, fault.status)).encode()
        reply = step if isinstance(step, Reply) else Reply(calls=[step])
        out = self._anthropic(body, reply) if flavour == "anthropic" else self._openai(body, reply)
        data = json.dumps(out).encode()
        tokens_in = reply.input_tokens if reply.input_tokens is not None else len(raw) // 4 + 1
        tokens_out = reply.output_tokens if reply.output_tokens is not None else len(data) // 4 + 1
        usage = out["usage"]
        if flavour == "anthropic":
            usage["input_tokens"], usage["output_tokens"] = tokens_in, tokens_out
        else:
            usage.update(
                prompt_tokens=tokens_in, completion_tokens=tokens_out, total_tokens=tokens_in + tokens_out
            )
        self._record(Recorded(path, headers, body, raw, 200, tokens_in, tokens_out))
        return 200, {}, json.dumps(out).encode()

    def _anthropic(self, body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for call in reply.calls:
            args = call.arguments if isinstance(call.arguments, str) else dict(call.arguments)
            content.append(
                {"type": "tool_use", "id": f"toolu_{next(self._ids):04d}", "name": call.name, "input": args}
            )
        return {
            "id": f"msg_{next(self._ids):04d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "scripted"),
            "content": content,
            "stop_reason": "tool_use" if reply.calls else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }

    def _openai(self, body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{next(self._ids):04d}",
                    "type": "function",
                    "function": {
                        "name": c.name,
                        "arguments": c.arguments if isinstance(c.arguments, str) else json.dumps(c.arguments),
                    },
                }
                for c in reply.calls
            ]
        return {
            "id": f"chatcmpl-{next(self._ids):04d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if reply.calls else "stop"}
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }


def _error(flavour: str, status: int) -> dict[str, Any]:
    kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
    if flavour == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": f"scripted fault {status}"}}
    return {"error": {"message": f"scripted fault {status}", "type": kind, "code": None}}


def _handler_for(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length).decode("utf-8")
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, data = server.answer(self.path, headers, raw)
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True  # the client gave up (timeout): nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: tests assert on .requests instead

    return Handler


def tool_results(flavour: str, rec: Recorded) -> list[str]:
    """The tool outputs a request carries back to the model, read from its wire format."""
    out: list[str] = []
    for message in rec.body["messages"]:
        if flavour == "openai":
            if message["role"] == "tool":
                out.append(message["content"])
            continue
        content = message["content"]
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "tool_result":
                inner = block["content"]
                out.append(inner if isinstance(inner, str) else "".join(b["text"] for b in inner))
    return out


__all__ = [
    "Call",
    "Fault",
    "ModelServer",
    "Recorded",
    "Reply",
    "Stall",
    "Step",
    "Submit",
    "Text",
    "tool_results",
]
