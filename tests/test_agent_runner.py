"""The agent loop driven through BOTH official SDKs against the scripted model server on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from bot.agent.definitions import load_definition
from bot.agent.prompt import ReviewPromptContext
from bot.agent.providers import AnthropicProvider, OpenAIProvider, Provider, RetryPolicy
from bot.agent.runner import AgentBudgets, run_agent
from bot.models import AgentResult, Category, PromptDiff, Severity
from bot.redact import SecretSet
from tests.support.fake_tools import FakeResult, FakeTools
from tests.support.model_server import Call, Fault, ModelServer, Stall, Submit, Text

DIFF = """diff --git a/app/users.py b/app/users.py
--- a/app/users.py
+++ b/app/users.py
@@ -17,3 +17,4 @@ def find_user(db, name):
     conn = db.connect()
+    rows = conn.execute(f"SELECT * FROM users WHERE name = '{name}'")
     return rows
"""

FINDING = {
    "path": "app/users.py",
    "line": 18,
    "severity": "critical",
    "category": "database",
    "title": "SQL built from request input",
    "body": "`name` is interpolated into the SQL text. Pass it as a parameter.",
    "evidence": "rows = conn.execute(f\"SELECT * FROM users WHERE name = '{name}'\")",
    "confidence": 0.95,
}

FAST = AgentBudgets(max_seconds=20)
KEY = "sk-test-model-key-0123456789abcdef"


@pytest.fixture(scope="module")
def server() -> Iterator[ModelServer]:
    with ModelServer.start() as s:
        yield s


def context(body: str = "Adds user lookup.", title: str = "Add find_user") -> ReviewPromptContext:
    diff = PromptDiff(DIFF, ("app/users.py",), (), (), len(DIFF) // 4)
    return ReviewPromptContext(title=title, body=body, diff=diff, repository="o/r", head_sha="a1b2c3d")


def make(flavour: str, server: ModelServer, timeout: float = 5.0) -> Provider:
    retry = RetryPolicy(max_attempts=3, backoff_base=0.01, max_wait=1.0)
    if flavour == "anthropic":
        return AnthropicProvider(
            "claude-sonnet-4-6", api_key=KEY, base_url=server.anthropic_url, timeout=timeout, retry=retry
        )
    return OpenAIProvider("gpt-4.1", api_key=KEY, base_url=server.openai_url, timeout=timeout, retry=retry)


def review(
    flavour: str,
    server: ModelServer,
    tools: FakeTools | None = None,
    *,
    ctx: ReviewPromptContext | None = None,
    budgets: AgentBudgets = FAST,
    secrets: SecretSet | None = None,
    timeout: float = 5.0,
    progress: list[str] | None = None,
) -> AgentResult:
    async def main() -> AgentResult:
        provider = make(flavour, server, timeout)
        try:
            return await run_agent(
                load_definition(),
                provider=provider,
                tools=tools or FakeTools(),
                context=ctx or context(),
                budgets=budgets,
                secrets=secrets,
                on_progress=None if progress is None else progress.append,
            )
        finally:
            await provider.aclose()

    return asyncio.run(main())


def tool_names(body: Mapping[str, Any]) -> list[str]:
    return sorted(t.get("name") or t["function"]["name"] for t in body["tools"])


FLAVOURS = pytest.mark.parametrize("flavour", ["anthropic", "openai"])


@FLAVOURS
def test_normal_review_grep_view_submit(flavour: str, server: ModelServer) -> None:
    tools = FakeTools(answer=lambda name, args: FakeResult("app/users.py:18:    rows = conn.execute(...)"))
    progress: list[str] = []
    server.play(
        [Call("grep", {"pattern": "execute("}), Call("view", {"path": "app/users.py"}), Submit([FINDING])]
    )
    result = review(flavour, server, tools, progress=progress)

    assert result.status == "ok", result.note
    assert len(result.findings) == 1
    f = result.findings[0]
    assert (f.path, f.line, f.severity, f.category, f.source) == (
        "app/users.py",
        18,
        Severity.CRITICAL,
        Category.DATABASE,
        "backend-engineer",
    )
    assert tools.calls == [("grep", {"pattern": "execute("}), ("view", {"path": "app/users.py"})]
    assert (result.turns, result.tool_calls) == (3, 2)
    assert result.usage is not None and result.usage.input_tokens == sum(
        r.input_tokens for r in server.requests
    )
    assert result.usage.cost_usd is not None
    assert progress[:2] == ["model turn 1", "tool grep 'execute('"]
    # T-01: only the granted tools plus submit_review are offered; the key travels only in the auth header
    assert tool_names(server.requests[0].body) == ["grep", "submit_review", "view"]
    for r in server.requests:
        assert KEY not in r.text
        assert KEY in (r.headers.get("x-api-key", "") + r.headers.get("authorization", ""))
    # the tool result reaches the model as a tool result tied to the call id
    assert "conn.execute(...)" in server.requests[1].text


@FLAVOURS
def test_malformed_submit_gets_one_repair_round(flavour: str, server: ModelServer) -> None:
    bad = {**FINDING, "line": "eighteen", "severity": "catastrophic"}
    server.play([Call("submit_review", {"findings": [bad, FINDING]}), Submit([FINDING])])
    result = review(flavour, server)
    assert result.status == "ok"
    assert len(result.findings) == 1
    repair = server.requests[1].text
    assert "line" in repair and "severity" in repair and "rejected" in repair


@FLAVOURS
def test_invalid_json_then_invalid_again_keeps_valid_findings(flavour: str, server: ModelServer) -> None:
    server.play(
        [
            Call("grep", '{"pattern": "exec'),  # invalid JSON: an error result, nothing runs
            Call("submit_review", {"findings": [FINDING, {"path": "x"}]}),
            Call("submit_review", '{"findings": [ nope'),
        ]
    )
    tools = FakeTools()
    result = review(flavour, server, tools)
    assert tools.calls == []
    assert result.status == "invalid_output"
    assert [f.title for f in result.findings] == [FINDING["title"]]
    assert len(server.requests) == 3


@FLAVOURS
def test_d05_retry_after_429_then_500_and_529_then_success(flavour: str, server: ModelServer) -> None:
    server.play([Fault(429, retry_after="0.2"), Fault(500), Submit([])])
    result = review(flavour, server)
    assert result.status == "ok" and result.findings == ()
    assert len(server.requests) == 3
    server.play([Fault(529), Fault(503), Submit([])])
    assert review(flavour, server).status == "ok"


@FLAVOURS
def test_d05_500_forever_is_unavailable_after_three_attempts(flavour: str, server: ModelServer) -> None:
    server.play([Fault(500)] * 10)
    result = review(flavour, server)
    assert result.status == "unavailable"
    assert "after 3 attempts" in result.note and "HTTP 500" in result.note
    assert server.attempts == 3


@FLAVOURS
def test_stalled_response_hits_the_per_call_timeout(flavour: str, server: ModelServer) -> None:
    server.play([Stall(30), Stall(30), Stall(30)])
    result = review(flavour, server, timeout=0.3)
    assert result.status == "unavailable"
    assert "no response within 0.3s" in result.note
    assert result.seconds < 5


@FLAVOURS
def test_t06_model_that_never_submits_is_stopped_by_the_budget(flavour: str, server: ModelServer) -> None:
    server.play([Call("grep", {"pattern": f"x{i}"}) for i in range(20)])
    tools = FakeTools()
    result = review(flavour, server, tools, budgets=AgentBudgets(max_turns=4, max_seconds=20))
    assert result.status == "no_submit"
    assert result.turns == 4 and len(server.requests) == 4
    # the last allowed turn forces submit_review where the provider supports it
    last = server.requests[-1].body
    assert last["tool_choice"] in (
        {"type": "tool", "name": "submit_review"},
        {"type": "function", "function": {"name": "submit_review"}},
    )
    assert "tool_choice" not in server.requests[0].body


@FLAVOURS
def test_t01_hijacked_model_calling_edit_bash_webfetch_is_refused(
    flavour: str, server: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.play(
        [
            Reply_calls := Call("bash", {"cmd": "env"}),
            Call("edit", {"path": "app.py", "text": "pwned"}),
            Call("webfetch", {"url": "http://127.0.0.1:9/x"}),
            Call("view", {"path": "../../etc/passwd"}),
            Submit([]),
        ]
    )
    assert Reply_calls.name == "bash"
    tools = FakeTools(answer=lambda name, args: FakeResult("invalid path", True))
    with caplog.at_level(logging.WARNING, logger="bot"):
        result = review(flavour, server, tools)
    assert result.status == "ok"
    # refused tools never reach the toolbox; the jailed one does, with the argument as given
    assert tools.calls == [("view", {"path": "../../etc/passwd"})]
    assert result.tool_calls == 4  # refused calls count against the budget
    refused = [r for r in caplog.records if r.getMessage() == "agent tool refused"]
    assert sorted(r.fields["tool"] for r in refused) == ["bash", "edit", "webfetch"]  # type: ignore[attr-defined]
    assert "unknown tool 'bash'" in server.requests[1].text
    for r in server.requests:
        assert tool_names(r.body) == ["grep", "submit_review", "view"]


@FLAVOURS
def test_d02_p08_huge_pr_body_is_capped_and_tokens_stay_in_budget(flavour: str, server: ModelServer) -> None:
    body = ("Please reason step by step about every line. " * 2000)[:65_536]
    assert len(body) == 65_536
    server.play([Submit([])])
    budgets = AgentBudgets(max_total_tokens=20_000, max_input_tokens_per_call=10_000, max_seconds=20)
    result = review(flavour, server, ctx=context(body=body), budgets=budgets)
    assert result.status == "ok"
    sent = server.requests[0].text
    # the body's repeated sentence appears at most 4 KB worth
    assert (
        sent.count("Please reason step by step") * len("Please reason step by step about every line. ")
        <= 4096
    )
    assert server.total_tokens <= budgets.max_total_tokens


@FLAVOURS
def test_k03_secret_in_tool_result_blocks_the_next_request(flavour: str, server: ModelServer) -> None:
    canary = "CANARY-7f0c2a9e-5d1b-4c3e-9a8f-0123456789ab"
    tools = FakeTools(answer=lambda name, args: FakeResult(f"config.py:3: TOKEN = '{canary}'"))
    server.play([Call("grep", {"pattern": "TOKEN"}), Submit([])])
    result = review(flavour, server, tools, secrets=SecretSet([canary]))
    assert result.status == "unavailable"
    assert result.note == "blocked: outgoing request contained a secret"
    assert len(server.requests) == 1  # the request carrying the tool result was never sent
    assert all(canary not in r.text for r in server.requests)


@FLAVOURS
def test_text_only_reply_is_nudged_to_submit(flavour: str, server: ModelServer) -> None:
    server.play([Text("Looks good to me!"), Submit([FINDING])])
    result = review(flavour, server)
    assert result.status == "ok" and len(result.findings) == 1
    assert "submit_review" in json.dumps(server.requests[1].body["messages"][-1])
