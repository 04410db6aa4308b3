from __future__ import annotations

import asyncio
import email.utils
import json
from pathlib import Path

import pytest

from bot.agent.providers import (
    AnthropicProvider,
    ModelRequest,
    ModelSpec,
    OpenAIProvider,
    RetryPolicy,
    ScriptedProvider,
    ToolCall,
    ToolDef,
    ToolOutput,
    Turn,
    estimate_cost,
    make_provider,
)
from bot.backoff import backoff_delay, parse_retry_after
from bot.errors import ConfigError, ModelUnavailable
from tests.support.model_server import Fault, ModelServer, Submit


def test_model_spec_parse() -> None:
    assert ModelSpec.parse("anthropic:claude-sonnet-4-5") == ModelSpec("anthropic", "claude-sonnet-4-5")
    assert ModelSpec.parse("openai:gpt-4.1") == ModelSpec("openai", "gpt-4.1")
    spec = ModelSpec.parse("openai:llama3@http://127.0.0.1:11434/v1")
    assert spec == ModelSpec("openai", "llama3", "http://127.0.0.1:11434/v1")
    assert str(spec) == "openai:llama3@http://127.0.0.1:11434/v1"
    assert ModelSpec.parse("anthropic:claude@20250929").model == "claude@20250929"
    for bad in ("claude", "gemini:x", "openai:", "openai:m@http://u:p@h/"):
        with pytest.raises(ConfigError):
            ModelSpec.parse(bad)


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("0.2") == 0.2
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_010, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(10)
    assert parse_retry_after(date, now=2_000_000) == 0.0


def test_backoff_is_exponential_jittered_capped_and_honours_retry_after() -> None:
    assert backoff_delay(1, base=1, cap=30, jitter=0.5, rand=lambda: 0.0) == 0.5
    assert backoff_delay(3, base=1, cap=30, jitter=0.5, rand=lambda: 1.0) == 6.0
    assert backoff_delay(10, base=1, cap=30, jitter=0.5, rand=lambda: 1.0) == 30
    assert backoff_delay(1, base=0.01, cap=30, retry_after=2.0, jitter=0.5, rand=lambda: 0.5) == 2.5
    assert backoff_delay(1, base=0.01, cap=5, retry_after=3600, rand=lambda: 0.5) == 5


def test_cost_table() -> None:
    assert estimate_cost("claude-sonnet-4-6", 1_000_000, 0) == 3.0
    assert estimate_cost("gpt-4.1-mini", 0, 1_000_000) == 1.6
    assert estimate_cost("llama3", 10, 10) is None


def test_retry_after_is_honoured_and_capped(tmp_path: Path) -> None:
    async def main() -> float:
        with ModelServer.start() as server:
            server.play([Fault(429, retry_after="0.2"), Submit([])])
            p = OpenAIProvider(
                "gpt-4.1",
                api_key="k" * 20,
                base_url=server.openai_url,
                timeout=5,
                retry=RetryPolicy(backoff_base=0.001),
            )
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            try:
                reply = await p.send(p.encode(_request()))
            finally:
                await p.aclose()
            assert reply.tool_calls[0].name == "submit_review"
            return loop.time() - t0

    assert asyncio.run(main()) >= 0.2


def test_permanent_4xx_is_not_retried() -> None:
    async def main() -> None:
        with ModelServer.start() as server:
            server.play([Fault(401), Submit([])])
            p = AnthropicProvider(
                "claude-haiku-4-5",
                api_key="k" * 20,
                base_url=server.anthropic_url,
                retry=RetryPolicy(backoff_base=0.001),
            )
            try:
                with pytest.raises(ModelUnavailable, match=r"rejected \(HTTP 401\)"):
                    await p.send(p.encode(_request()))
            finally:
                await p.aclose()
            assert server.attempts == 1

    asyncio.run(main())


def _request(force: str | None = None) -> ModelRequest:
    call = ToolCall("c1", "grep", {"pattern": "x"}, '{"pattern": "x"}')
    turns = (
        Turn("user", "review"),
        Turn("assistant", "", (call,)),
        Turn("user", "go on", tool_outputs=(ToolOutput("c1", "no match", True),)),
    )
    return ModelRequest("sys", turns, (ToolDef("grep", "d", {"type": "object"}),), 100, force)


def test_wire_encoding_of_tool_turns() -> None:
    a = AnthropicProvider("claude-haiku-4-5", api_key="k" * 20, base_url="http://127.0.0.1:9")
    o = OpenAIProvider("gpt-4.1", api_key="k" * 20)
    try:
        ap, op = a.encode(_request("submit_review")), o.encode(_request("submit_review"))
    finally:
        asyncio.run(a.aclose())
        asyncio.run(o.aclose())
    assert ap["system"] == "sys" and ap["tool_choice"] == {"type": "tool", "name": "submit_review"}
    assert ap["messages"][1]["content"] == [
        {"type": "tool_use", "id": "c1", "name": "grep", "input": {"pattern": "x"}}
    ]
    assert ap["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "c1",
        "content": "no match",
        "is_error": True,
    }
    assert [m["role"] for m in op["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert op["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"pattern": "x"}'
    assert op["tool_choice"] == {"type": "function", "function": {"name": "submit_review"}}
    assert "max_completion_tokens" in op  # the official endpoint
    json.dumps(ap), json.dumps(op)


def test_scripted_provider_from_file(tmp_path: Path) -> None:
    path = tmp_path / "turns.json"
    path.write_text(json.dumps([{"calls": [{"name": "submit_review", "arguments": {"findings": []}}]}]))
    p = make_provider(ModelSpec.parse(f"scripted:{path}"), api_key="")
    assert isinstance(p, ScriptedProvider)
    reply = asyncio.run(p.send(p.encode(_request())))
    assert reply.tool_calls[0].arguments == {"findings": []}
    with pytest.raises(ModelUnavailable, match="exhausted"):
        asyncio.run(p.send({}))
    path.write_text("{not json")
    with pytest.raises(ConfigError):
        ScriptedProvider.from_file(path)
