"""A recording stand-in for ``bot.agent.tools.Toolbox`` (the real jail is tested in its own module)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FakeSpec:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class FakeResult:
    text: str
    is_error: bool = False


_SCHEMAS = {
    "grep": {
        "type": "object",
        "additionalProperties": False,
        "required": ["pattern"],
        "properties": {"pattern": {"type": "string"}, "path": {"type": "string"}, "glob": {"type": "string"}},
    },
    "view": {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "path": {"type": "string"},
            "start_line": {"type": "integer"},
            "end_line": {"type": "integer"},
        },
    },
}


@dataclass
class FakeTools:
    """Offers grep and view (or ``offered``); answers from ``answer`` and records every call."""

    answer: Callable[[str, Mapping[str, Any]], FakeResult] = lambda name, args: FakeResult(f"{name} ok")
    offered: tuple[str, ...] = ("grep", "view")
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def specs(self) -> list[FakeSpec]:
        return [FakeSpec(n, f"fake {n}", _SCHEMAS.get(n, {"type": "object"})) for n in self.offered]

    async def call(self, name: str, arguments: Mapping[str, Any]) -> FakeResult:
        self.calls.append((name, dict(arguments)))
        if name not in self.offered:
            return FakeResult(f"unknown tool {name}", True)
        return self.answer(name, arguments)
