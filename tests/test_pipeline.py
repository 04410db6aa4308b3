"""The whole review pipeline with a scripted model, through BOTH official SDKs on loopback.

Real git workspace, real offline rules, real :class:`~bot.agent.tools.Toolbox` (so ``rg`` really
runs), real review assembly; only the model is scripted (tests/support/model_server.py).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.agent.providers import ModelSpec, make_provider
from bot.checkout import GitSource, resolve_ref, workspace
from bot.local import build_demo_repository, review_repository
from bot.pipeline import ReviewInputs, ReviewOutcome, review_workspace
from bot.publish.local import render
from tests.support.model_server import Call, ModelServer, Recorded, Submit, tool_results

MODELS = {"anthropic": "claude-sonnet-4-6", "openai": "gpt-4.1"}
KEY_VAR = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}

SQL_LINE = "cur.execute(f\"SELECT id, name, email FROM users WHERE name = '{name}'\")"
AGENT_FINDINGS = [
    {  # new: no offline rule looks for unbounded result sets
        "path": "app/users.py",
        "line": 28,
        "severity": "medium",
        "category": "performance",
        "title": "Search returns every matching row",
        "body": "`fetchall()` with no LIMIT loads the whole result set; add pagination.",
        "evidence": "return jsonify(cur.fetchall())",
        "confidence": 0.8,
    },
    {  # the same issue the sql rule reports: merged with it, not repeated
        "path": "app/users.py",
        "line": 27,
        "severity": "critical",
        "category": "database",
        "title": "User input interpolated into SQL",
        "body": "`name` comes from the query string. Pass it as a parameter.",
        "evidence": SQL_LINE,
        "confidence": 0.95,
    },
]
NORMAL_SCRIPT = [
    Call("grep", {"pattern": r"execute\(", "glob": "*.py"}),
    Call("view", {"path": "app/users.py"}),
    Submit(AGENT_FINDINGS, summary="One new issue besides the injection."),
]


@pytest.fixture(scope="module")
def server() -> Iterator[ModelServer]:
    with ModelServer.start() as s:
        yield s


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return asyncio.run(build_demo_repository(tmp_path_factory.mktemp("demo")))


def environ(flavour: str, server: ModelServer, key: str) -> dict[str, str]:
    url = server.anthropic_url if flavour == "anthropic" else server.openai_url
    return {"BACKEND_REVIEW_MODEL_BASE_URL": url, KEY_VAR[flavour]: key}


def tool_names(flavour: str, rec: Recorded) -> set[str]:
    if flavour == "anthropic":
        return {t["name"] for t in rec.body["tools"]}
    return {t["function"]["name"] for t in rec.body["tools"]}


def human(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


@pytest.mark.parametrize("flavour", ["anthropic", "openai"])
def test_full_review_through_the_sdk(flavour: str, server: ModelServer, demo_repo: Path) -> None:
    key = f"sk-canary-{uuid.uuid4().hex}"
    server.play(NORMAL_SCRIPT)
    outcome = asyncio.run(
        review_repository(
            demo_repo,
            base="main",
            head="HEAD",
            model=f"{flavour}:{MODELS[flavour]}",
            environ=environ(flavour, server, key),
        )
    )
    assert [r.status for r in server.requests] == [200, 200, 200]
    assert server.exhausted == 0
    first, second, third = server.requests
    assert {"grep", "view", "submit_review"} <= tool_names(flavour, first)
    assert first.body["model"] == MODELS[flavour]

    # the real Toolbox ran rg and its output went back in the next request (path:line:text)
    grep_out = tool_results(flavour, second)
    assert len(grep_out) == 1
    assert "app/users.py:27:" in grep_out[0] and "app/users.py:42:" in grep_out[0]
    assert "app/orders.py:" in grep_out[0]  # the whole checkout was searched, not only the diff
    view_out = tool_results(flavour, third)[-1]
    assert view_out.startswith("app/users.py (lines 1-43 of 43)")
    assert "    28\t        return jsonify(cur.fetchall())" in view_out

    # K-03: the key travels only in the SDK's authentication header
    auth = first.headers.get("x-api-key") or first.headers.get("authorization", "").removeprefix("Bearer ")
    assert auth == key
    assert not any(key in r.text for r in server.requests)

    agent = outcome.agent
    assert agent is not None and agent.status == "ok"
    assert agent.turns == 3 and agent.tool_calls == 2
    assert agent.usage is not None
    assert agent.usage.input_tokens == sum(r.input_tokens for r in server.requests)
    assert agent.usage.output_tokens == sum(r.output_tokens for r in server.requests)

    draft = outcome.draft
    inline = {(c.path, c.line): c.body for c in draft.comments}
    # the agent's new finding is an inline comment next to the rules' ones
    assert "Search returns every matching row" in inline[("app/users.py", 28)]
    rule_lines = {(f.path, f.line) for f in outcome.rule_findings}
    assert ("app/users.py", 27) in rule_lines
    assert len(draft.comments) == min(10, len(rule_lines) + 1)
    # the agent's duplicate of the rule's finding is merged into one comment crediting both sources
    sql = inline[("app/users.py", 27)]
    assert "also flagged by py-sql-format" in sql or "also flagged by backend-engineer" in sql
    assert sum(1 for r in draft.findings if (r.finding.path, r.finding.line) == ("app/users.py", 27)) == 1
    sources = {r.finding.source for r in draft.findings}
    assert "backend-engineer" in sources and len(sources) > 1

    u = agent.usage
    assert f"backend-engineer · {MODELS[flavour]} · {human(u.input_tokens)} tokens in, " in draft.body
    assert f"{human(u.output_tokens)} out (≈ $" in draft.body  # both models have a list price
    assert "Offline checks only" not in draft.body

    data = json.loads(render(outcome, "json"))
    agent_rows = [f for f in data["findings"] if f["source"] == "backend-engineer"]
    # the agent's better-rated report of the injection leads the merged pair
    assert [(f["path"], f["line"], f["severity"], f["category"]) for f in agent_rows] == [
        ("app/users.py", 27, "critical", "database"),
        ("app/users.py", 28, "medium", "performance"),
    ]


async def _review_with_dead_model(repo: Path, flavour: str, server: ModelServer) -> ReviewOutcome:
    # the provider's production backoff (1 s base) is shortened here; the attempt count is not
    provider = make_provider(
        ModelSpec(flavour, MODELS[flavour]),  # type: ignore[arg-type]  # a ProviderName literal
        api_key=f"sk-canary-{uuid.uuid4().hex}",
        base_url=server.anthropic_url if flavour == "anthropic" else server.openai_url,
        backoff_base=0.01,
        max_wait=0.05,
    )
    head = await resolve_ref(repo, "HEAD")
    base = await resolve_ref(repo, "main")
    try:
        async with workspace(GitSource.local(repo), head, base) as ws:
            return await review_workspace(ws, ReviewInputs(), provider=provider)
    finally:
        await provider.aclose()


@pytest.mark.parametrize("flavour", ["anthropic", "openai"])
def test_d05_model_failing_forever_still_yields_the_offline_review(
    flavour: str, server: ModelServer, demo_repo: Path
) -> None:
    server.play([])  # every request answers 500
    outcome = asyncio.run(_review_with_dead_model(demo_repo, flavour, server))
    assert server.attempts == 3  # bounded retries, then the review goes on without the model
    agent = outcome.agent
    assert agent is not None and agent.status == "unavailable"
    assert "unavailable after 3 attempts (HTTP 500)" in agent.note
    assert outcome.rule_findings
    assert {r.finding.source for r in outcome.draft.findings} == {f.source for f in outcome.rule_findings}
    assert outcome.draft.comments  # the offline findings are still posted inline
    assert "unavailable after 3 attempts" in outcome.draft.body
    assert outcome.conclusion == "neutral"
