"""P-08: the review's wall-time budget bounds tool calls too, not only model calls."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from bot.agent.definitions import load_definition
from bot.agent.providers import ScriptedProvider, ScriptedTurn
from bot.agent.runner import AgentBudgets, run_agent
from tests.support.fake_tools import FakeResult, FakeTools
from tests.test_agent_runner import context


class HangingTools(FakeTools):
    """A grep that never returns (a wedged child process): it must be cancelled, not awaited."""

    cancelled: bool = False

    async def call(self, name: str, arguments: Mapping[str, Any]) -> FakeResult:
        self.calls.append((name, dict(arguments)))
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return FakeResult("unreachable")


def test_p08_a_hanging_tool_is_cancelled_at_the_time_budget() -> None:
    provider = ScriptedProvider([ScriptedTurn(calls=(("grep", {"pattern": "execute("}),))] * 3)
    tools = HangingTools()
    result = asyncio.run(
        run_agent(
            load_definition(),
            provider=provider,
            tools=tools,
            context=context(),
            budgets=AgentBudgets(max_seconds=0.3),
        )
    )
    assert tools.cancelled and len(tools.calls) == 1
    assert result.status in ("budget_exhausted", "no_submit") and result.findings == ()
