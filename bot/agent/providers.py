"""Model providers behind one small async interface, through the official SDKs.

The runner speaks a neutral message format (:class:`Turn`, :class:`ToolCall`, :class:`ToolOutput`);
each provider turns a :class:`ModelRequest` into the exact keyword arguments of its SDK call
(:meth:`Provider.encode`), so the runner can inspect the very text that will leave the process
(secret check, token estimate) before :meth:`Provider.send` sends it.

Retries are ours, not the SDKs' (their ``max_retries`` is 0): 429, 5xx, 529 and timeouts/connection
errors are retried with exponential backoff and jitter, honouring ``Retry-After`` up to a cap, at most
``max_attempts`` times; then :class:`~bot.errors.ModelUnavailable` carries a one-line reason. Every
attempt runs under a hard wall-clock timeout, so a stalled or trickling response always ends.

The API key is taken only from arguments (the caller reads the environment) and travels only in the
SDK's authentication header.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import ssl
import sys
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from bot.backoff import backoff_delay, parse_retry_after
from bot.errors import ConfigError, ModelUnavailable
from bot.models import Usage

T = TypeVar("T")

ProviderName = Literal["anthropic", "openai", "scripted"]

ANTHROPIC_DEFAULT_URL = "https://api.anthropic.com"
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"

# USD per million (input, output) tokens, matched by the longest model-name prefix. List prices as
# published by Anthropic and OpenAI in 2025; an estimate for the review footer, not a bill. Models not
# listed here (local vLLM/Ollama/llama.cpp models, new releases) get ``cost_usd=None``.
PRICES_PER_MTOK: Mapping[str, tuple[float, float]] = {
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4": (15.0, 75.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
    "gpt-4.1-nano": (0.1, 0.4),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4o": (2.5, 10.0),
    "gpt-5-nano": (0.05, 0.4),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5": (1.25, 10.0),
    "o4-mini": (1.1, 4.4),
    "o3": (2.0, 8.0),
}


def estimate_cost(model: str, input_tokens: int, output_tokens: int) -> float | None:
    """Estimated USD cost from :data:`PRICES_PER_MTOK`, or None when the model is not listed."""
    matches = [p for p in PRICES_PER_MTOK if model.startswith(p)]
    if not matches:
        return None
    price_in, price_out = PRICES_PER_MTOK[max(matches, key=len)]
    return (input_tokens * price_in + output_tokens * price_out) / 1_000_000


def make_usage(model: str, input_tokens: int, output_tokens: int) -> Usage:
    return Usage(model, input_tokens, output_tokens, estimate_cost(model, input_tokens, output_tokens))


# --- neutral message format -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolDef:
    name: str
    description: str
    input_schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: Mapping[str, Any] | None  # None when the model's arguments were not a JSON object
    raw: str  # the arguments as the model sent them, echoed back verbatim in later requests


@dataclass(frozen=True, slots=True)
class ToolOutput:
    call_id: str
    text: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Turn:
    """One conversation message: a user turn (text and/or tool outputs) or an assistant turn."""

    role: Literal["user", "assistant"]
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_outputs: tuple[ToolOutput, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelRequest:
    system: str
    turns: tuple[Turn, ...]
    tools: tuple[ToolDef, ...]
    max_output_tokens: int
    force_tool: str | None = None  # ask the provider to make the model call exactly this tool


@dataclass(frozen=True, slots=True)
class ModelReply:
    text: str
    tool_calls: tuple[ToolCall, ...]
    stop_reason: str
    usage: Usage


class Provider(Protocol):
    @property
    def model(self) -> str: ...

    def encode(self, request: ModelRequest) -> dict[str, Any]:
        """The exact, JSON-serialisable keyword arguments :meth:`send` passes to the SDK."""
        ...

    async def send(self, payload: dict[str, Any]) -> ModelReply:
        """Send one request; raises :class:`ModelUnavailable` when retries are exhausted."""
        ...

    async def aclose(self) -> None: ...


# --- model spec -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelSpec:
    provider: ProviderName
    model: str
    base_url: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """``anthropic:claude-sonnet-4-6``, ``openai:gpt-4.1``, ``openai:llama3@http://host:11434/v1``,
        ``scripted:/path/to/turns.json``."""
        provider, sep, rest = text.strip().partition(":")
        if not sep or not rest:
            raise ConfigError(f"model must look like 'anthropic:<model>' or 'openai:<model>', got {text!r}")
        if provider not in ("anthropic", "openai", "scripted"):
            raise ConfigError(f"unknown model provider {provider!r} (anthropic, openai or scripted)")
        base_url: str | None = None
        if provider != "scripted":
            # split on '@http' so model names that contain '@' (e.g. Vertex versions) survive
            for scheme in ("@https://", "@http://"):
                idx = rest.rfind(scheme)
                if idx > 0:
                    rest, base_url = rest[:idx], rest[idx + 1 :]
                    break
            if base_url is not None:
                _check_url(base_url)
        if not rest or any(c.isspace() for c in rest):
            raise ConfigError(f"invalid model name {rest!r}")
        return cls(provider, rest, base_url)  # type: ignore[arg-type]  # checked against the Literal above

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}" + (f"@{self.base_url}" if self.base_url else "")


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"model base URL must be http(s)://host[:port][/path], got {url!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError("model base URL must not carry credentials, a query or a fragment")


# --- retries (pure math) ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff_base: float = 1.0
    max_wait: float = 30.0  # cap on any single wait, including a server's Retry-After
    rand: Callable[[], float] = field(default=random.random, compare=False)


_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


class _Failure(Exception):
    """A classified transient failure inside one attempt."""

    def __init__(self, reason: str, retry_after: float | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process. Each SDK client would otherwise load the CA bundle
    again (~66 ms of blocked event loop and ~0.8 MiB per review: 100 reviews in flight pay 6.6 s)."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


@dataclass(frozen=True, slots=True)
class SdkErrors:
    """An SDK's exception classes. Each provider imports its SDK only when it is built: the two SDKs
    take seconds to import, which `serve` and `--help` should not pay for when no model is set."""

    base: type[Exception]
    status: type[Exception]  # carries .status_code and .response
    timeout: type[Exception]
    connection: type[Exception]


def _classify(exc: Exception, timeout: float, errors: SdkErrors) -> _Failure | ModelUnavailable:
    """A retryable :class:`_Failure`, or a final :class:`ModelUnavailable` for permanent errors."""
    if isinstance(exc, errors.status):
        status = int(getattr(exc, "status_code", 0))
        response = getattr(exc, "response", None)
        retry_after = parse_retry_after(response.headers.get("retry-after") if response is not None else None)
        if status in _RETRY_STATUS or status >= 500:
            return _Failure(f"HTTP {status}", retry_after)
        return ModelUnavailable(f"model request rejected (HTTP {status})")
    if isinstance(exc, errors.timeout | TimeoutError):
        return _Failure(f"no response within {timeout:g}s", None)
    if isinstance(exc, errors.connection):
        return _Failure("connection error", None)
    return ModelUnavailable(f"model response not understood ({type(exc).__name__})")


async def with_retries(
    op: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    attempt_timeout: float,
    label: str,
    errors: SdkErrors,
) -> T:
    """Run ``op`` under a hard per-attempt timeout with our retry policy."""
    last: _Failure | None = None
    for attempt in range(1, policy.max_attempts + 1):
        if last is not None:
            await asyncio.sleep(
                backoff_delay(
                    attempt - 1,
                    base=policy.backoff_base,
                    cap=policy.max_wait,
                    retry_after=last.retry_after,
                    jitter=0.5,
                    rand=policy.rand,
                )
            )
        try:
            async with asyncio.timeout(attempt_timeout):
                return await op()
        except (errors.base, TimeoutError) as exc:
            verdict = _classify(exc, attempt_timeout, errors)
            if isinstance(verdict, ModelUnavailable):
                raise verdict from None
            last = verdict
    assert last is not None
    raise ModelUnavailable(
        f"{label} unavailable after {policy.max_attempts} attempts ({last.reason})", last.retry_after
    )


# --- Anthropic --------------------------------------------------------------------------------------


def _object(call: ToolCall) -> dict[str, Any]:
    return dict(call.arguments or {})


def _parse_arguments(raw: str) -> Mapping[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


_SDK_PLATFORM: Mapping[str, Literal["Linux", "MacOS", "Windows", "FreeBSD"]] = {
    "linux": "Linux",
    "darwin": "MacOS",
    "win32": "Windows",
    "freebsd": "FreeBSD",
}


class AnthropicProvider:
    """Claude through ``AsyncAnthropic`` and the Messages API with tools."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout: float = 120.0,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._model = model
        self._timeout = timeout
        self._retry = retry
        import anthropic

        self._errors = SdkErrors(
            anthropic.APIError,
            anthropic.APIStatusError,
            anthropic.APITimeoutError,
            anthropic.APIConnectionError,
        )
        # base_url is always explicit so no ambient ANTHROPIC_BASE_URL/profile can redirect the key
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url or ANTHROPIC_DEFAULT_URL,
            timeout=timeout,
            max_retries=0,
            http_client=anthropic.DefaultAsyncHttpxClient(verify=tls_context(), timeout=timeout),
        )

    @property
    def model(self) -> str:
        return self._model

    def encode(self, request: ModelRequest) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for turn in request.turns:
            content: list[dict[str, Any]] = []
            for out in turn.tool_outputs:
                result = {"type": "tool_result", "tool_use_id": out.call_id, "content": out.text}
                content.append({**result, "is_error": out.is_error})
            if turn.text:
                content.append({"type": "text", "text": turn.text})
            for call in turn.tool_calls:
                # arguments that were not an object are echoed as {}: the API accepts only objects
                content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": _object(call)})
            messages.append({"role": turn.role, "content": content})
        payload: dict[str, Any] = {
            "model": self._model,
            "max_tokens": request.max_output_tokens,
            "system": request.system,
            "messages": messages,
            "tools": [
                {"name": t.name, "description": t.description, "input_schema": dict(t.input_schema)}
                for t in request.tools
            ],
        }
        if request.force_tool:
            payload["tool_choice"] = {"type": "tool", "name": request.force_tool}
        return payload

    async def send(self, payload: dict[str, Any]) -> ModelReply:
        message = await with_retries(
            lambda: self._client.messages.create(**payload),
            policy=self._retry,
            attempt_timeout=self._timeout,
            label="Anthropic model",
            errors=self._errors,
        )
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in message.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                raw_input: object = block.input
                calls.append(
                    ToolCall(
                        block.id,
                        block.name,
                        raw_input if isinstance(raw_input, dict) else None,
                        json.dumps(raw_input),
                    )
                )
        u = message.usage
        tokens_in = u.input_tokens + (u.cache_creation_input_tokens or 0) + (u.cache_read_input_tokens or 0)
        usage = make_usage(self._model, tokens_in, u.output_tokens)
        return ModelReply("\n".join(texts), tuple(calls), str(message.stop_reason), usage)

    async def aclose(self) -> None:
        await self._client.close()


# --- OpenAI-compatible ------------------------------------------------------------------------------


def _function(tool: ToolDef) -> dict[str, Any]:
    return {"name": tool.name, "description": tool.description, "parameters": dict(tool.input_schema)}


class OpenAIProvider:
    """OpenAI or any compatible endpoint (Azure, vLLM, Ollama, llama.cpp) through ``AsyncOpenAI`` and
    Chat Completions with function calling."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout: float = 120.0,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._model = model
        self._timeout = timeout
        self._retry = retry
        # OpenAI's own API wants max_completion_tokens (reasoning models reject max_tokens); compatible
        # servers (vLLM, Ollama, llama.cpp) understand the classic max_tokens.
        self._max_tokens_field = "max_completion_tokens" if base_url is None else "max_tokens"
        import openai

        self._errors = SdkErrors(
            openai.APIError, openai.APIStatusError, openai.APITimeoutError, openai.APIConnectionError
        )
        self._client = openai.AsyncOpenAI(
            api_key=api_key or "unused",  # local servers need no key, the SDK insists on one
            base_url=base_url or OPENAI_DEFAULT_URL,
            timeout=timeout,
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(verify=tls_context(), timeout=timeout),
        )
        # Left unset, the SDK calls platform.platform(), which runs `uname -p` with this process's
        # whole environment (model key, tokens): only git and rg may ever run. sys.platform spawns nothing.
        self._client._platform = _SDK_PLATFORM.get(sys.platform, "Unknown")

    @property
    def model(self) -> str:
        return self._model

    def encode(self, request: ModelRequest) -> dict[str, Any]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": request.system}]
        for turn in request.turns:
            if turn.role == "assistant":
                msg: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
                if turn.tool_calls:
                    msg["tool_calls"] = [
                        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.raw}}
                        for c in turn.tool_calls
                    ]
                messages.append(msg)
                continue
            for out in turn.tool_outputs:
                text = f"ERROR: {out.text}" if out.is_error else out.text
                messages.append({"role": "tool", "tool_call_id": out.call_id, "content": text})
            if turn.text:
                messages.append({"role": "user", "content": turn.text})
        payload: dict[str, Any] = {
            "model": self._model,
            self._max_tokens_field: request.max_output_tokens,
            "messages": messages,
            "tools": [{"type": "function", "function": _function(t)} for t in request.tools],
        }
        if request.force_tool:
            payload["tool_choice"] = {"type": "function", "function": {"name": request.force_tool}}
        return payload

    async def send(self, payload: dict[str, Any]) -> ModelReply:
        completion = await with_retries(
            lambda: self._client.chat.completions.create(**payload),
            policy=self._retry,
            attempt_timeout=self._timeout,
            label="OpenAI-compatible model",
            errors=self._errors,
        )
        if not completion.choices:
            raise ModelUnavailable("model response not understood (no choices)")
        choice = completion.choices[0]
        calls: list[ToolCall] = []
        for tc in choice.message.tool_calls or ():
            if tc.type == "function":
                raw = tc.function.arguments or ""
                calls.append(ToolCall(tc.id, tc.function.name, _parse_arguments(raw), raw))
        usage = completion.usage
        tokens_in = usage.prompt_tokens if usage else 0
        tokens_out = usage.completion_tokens if usage else 0
        return ModelReply(
            choice.message.content or "",
            tuple(calls),
            str(choice.finish_reason),
            make_usage(self._model, tokens_in, tokens_out),
        )

    async def aclose(self) -> None:
        await self._client.close()


# --- scripted ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScriptedTurn:
    text: str = ""
    calls: tuple[tuple[str, Mapping[str, Any] | str], ...] = ()  # (tool name, arguments or raw JSON)
    input_tokens: int = 100
    output_tokens: int = 50


class ScriptedProvider:
    """Plays canned turns in-process, for unit tests and ``--model scripted:<file>`` debugging."""

    def __init__(self, turns: Sequence[ScriptedTurn], model: str = "scripted") -> None:
        self._turns = list(turns)
        self._model = model
        self.requests: list[dict[str, Any]] = []  # every payload sent, for assertions

    @classmethod
    def from_file(cls, path: Path) -> ScriptedProvider:
        """A JSON list of ``{"text": "...", "calls": [{"name": "grep", "arguments": {...}}]}``."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            turns = [
                ScriptedTurn(
                    str(t.get("text", "")),
                    tuple((str(c["name"]), c.get("arguments", {})) for c in t.get("calls", [])),
                )
                for t in data
            ]
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ConfigError(f"scripted model file {path}: {exc}") from None
        return cls(turns, model=f"scripted:{path.name}")

    @property
    def model(self) -> str:
        return self._model

    @property
    def remaining(self) -> int:
        return len(self._turns)

    def encode(self, request: ModelRequest) -> dict[str, Any]:
        return {
            "system": request.system,
            "turns": [
                {
                    "role": t.role,
                    "text": t.text,
                    "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.raw} for c in t.tool_calls],
                    "tool_outputs": [
                        {"id": o.call_id, "text": o.text, "is_error": o.is_error} for o in t.tool_outputs
                    ],
                }
                for t in request.turns
            ],
            "tools": [t.name for t in request.tools],
            "max_output_tokens": request.max_output_tokens,
            "force_tool": request.force_tool,
        }

    async def send(self, payload: dict[str, Any]) -> ModelReply:
        self.requests.append(payload)
        if not self._turns:
            raise ModelUnavailable("scripted model: script exhausted")
        turn = self._turns.pop(0)
        calls = []
        for i, (name, args) in enumerate(turn.calls):
            raw = args if isinstance(args, str) else json.dumps(args)
            calls.append(ToolCall(f"call_{len(self.requests)}_{i}", name, _parse_arguments(raw), raw))
        return ModelReply(
            turn.text,
            tuple(calls),
            "tool_use" if calls else "end_turn",
            make_usage(self._model, turn.input_tokens, turn.output_tokens),
        )

    async def aclose(self) -> None:
        return None


def make_provider(
    spec: ModelSpec,
    *,
    api_key: str,
    base_url: str | None = None,
    timeout: float = 120.0,
    max_retries: int = 3,
    backoff_base: float = 1.0,
    max_wait: float = 30.0,
) -> Provider:
    """Build the provider for ``spec``. ``max_retries`` is the total number of attempts per call;
    ``base_url`` (an operator setting) overrides the one in the spec."""
    if max_retries < 1:
        raise ConfigError("max_retries must be at least 1 (it counts attempts)")
    retry = RetryPolicy(max_attempts=max_retries, backoff_base=backoff_base, max_wait=max_wait)
    url = base_url or spec.base_url
    if url is not None:
        _check_url(url)
    if spec.provider == "anthropic":
        return AnthropicProvider(spec.model, api_key=api_key, base_url=url, timeout=timeout, retry=retry)
    if spec.provider == "openai":
        return OpenAIProvider(spec.model, api_key=api_key, base_url=url, timeout=timeout, retry=retry)
    return ScriptedProvider.from_file(Path(spec.model))


__all__ = [
    "PRICES_PER_MTOK",
    "AnthropicProvider",
    "ModelReply",
    "ModelRequest",
    "ModelSpec",
    "OpenAIProvider",
    "Provider",
    "RetryPolicy",
    "ScriptedProvider",
    "ScriptedTurn",
    "ToolCall",
    "ToolDef",
    "ToolOutput",
    "Turn",
    "estimate_cost",
    "make_provider",
    "make_usage",
    "with_retries",
]
