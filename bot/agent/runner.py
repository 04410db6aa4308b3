"""The agent loop: model turns, read-only tool calls, budgets, and one structured ``submit_review``.

The model is assumed hijacked (SECURITY.md): it is offered only the granted read-only tools plus
``submit_review``; any other tool name gets an error result and counts against the tool budget (T-01).
Every outgoing request is checked for our own secrets before it is sent (K-03) and estimated against
the per-call token cap. Budgets (turns, tokens, tool calls, wall time) always end the loop with a
result, partial if need be (P-08, T-06); the pipeline carries on with the offline findings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from bot.agent.definitions import READ_ONLY_TOOLS, AgentDefinition
from bot.agent.prompt import SUBMIT_TOOL, ReviewPromptContext, system_prompt, user_message
from bot.agent.providers import ModelReply, ModelRequest, Provider, ToolCall, ToolDef, ToolOutput, Turn
from bot.diff import estimate_tokens
from bot.errors import ModelUnavailable
from bot.log import get_logger
from bot.models import AgentResult, AgentStatus, Category, Finding, Severity, Usage
from bot.redact import SecretSet

log = get_logger(__name__)


class ToolSpecLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def input_schema(self) -> Mapping[str, Any]: ...


class ToolResultLike(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def is_error(self) -> bool: ...


class ToolRunner(Protocol):
    """What the runner needs from ``bot.agent.tools.Toolbox``."""

    def specs(self) -> Sequence[ToolSpecLike]: ...

    async def call(self, name: str, arguments: Mapping[str, Any]) -> ToolResultLike: ...


@dataclass(frozen=True, slots=True)
class AgentBudgets:
    max_turns: int = 12
    max_input_tokens_per_call: int = 60_000
    max_total_tokens: int = 200_000
    max_output_tokens: int = 4096
    max_seconds: float = 240
    max_tool_calls: int = 40
    max_tool_result_chars: int = 24_000  # per result, on top of the toolbox's own caps


# --- submit_review: the edge schema -----------------------------------------------------------------

_Str = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _FindingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)

    path: Annotated[_Str, StringConstraints(max_length=500)]
    line: int = Field(ge=1)
    end_line: int | None = Field(default=None, ge=1)
    severity: Severity
    category: Category
    title: Annotated[_Str, StringConstraints(max_length=120)]
    body: Annotated[_Str, StringConstraints(max_length=2000)]
    evidence: Annotated[_Str, StringConstraints(max_length=1000)]
    confidence: float = Field(ge=0.0, le=1.0)
    suggestion: Annotated[str, StringConstraints(max_length=4000)] | None = None

    @model_validator(mode="after")
    def _range(self) -> _FindingIn:
        if self.end_line is not None and self.end_line < self.line:
            raise ValueError("end_line must be >= line")
        return self


class _SubmitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    findings: list[dict[str, Any]] = Field(max_length=50)
    summary: Annotated[str, StringConstraints(max_length=2000)] | None = None


_REQUIRED = ("path", "line", "severity", "category", "title", "body", "evidence", "confidence")

SUBMIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["findings"],
    "properties": {
        "findings": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": [*_REQUIRED],
                "properties": {
                    "path": {"type": "string", "description": "file path in the head revision"},
                    "line": {"type": "integer", "minimum": 1, "description": "new-file line number"},
                    "end_line": {"type": "integer", "minimum": 1, "description": "last line of a range"},
                    "severity": {"type": "string", "enum": [s.value for s in Severity]},
                    "category": {"type": "string", "enum": [c.value for c in Category]},
                    "title": {"type": "string", "maxLength": 120},
                    "body": {"type": "string", "maxLength": 2000},
                    "evidence": {
                        "type": "string",
                        "maxLength": 1000,
                        "description": "the exact line(s) from the head file",
                    },
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "suggestion": {
                        "type": "string",
                        "maxLength": 4000,
                        "description": "full replacement text for line..end_line",
                    },
                },
            },
        },
        "summary": {"type": "string", "maxLength": 2000},
    },
}

SUBMIT_TOOL_DEF = ToolDef(
    SUBMIT_TOOL,
    "Submit your review: every finding at once. Call exactly once, at the end; an empty list is fine.",
    SUBMIT_SCHEMA,
)


def parse_submission(arguments: Mapping[str, Any] | None, source: str) -> tuple[list[Finding], list[str]]:
    """Valid findings and one error line per problem (empty when the submission is fully valid)."""
    if arguments is None:
        return [], ["the arguments were not a JSON object"]
    try:
        submit = _SubmitIn.model_validate(dict(arguments))
    except ValidationError as exc:
        return [], [_error_line("", e) for e in exc.errors()[:10]]
    findings: list[Finding] = []
    errors: list[str] = []
    for i, item in enumerate(submit.findings):
        try:
            f = _FindingIn.model_validate(item)
        except ValidationError as exc:
            errors.extend(_error_line(f"findings[{i}].", e) for e in exc.errors()[:5])
            continue
        findings.append(
            Finding(
                path=f.path,
                line=f.line,
                severity=f.severity,
                category=f.category,
                title=f.title,
                body=f.body,
                evidence=f.evidence,
                source=source,
                confidence=f.confidence,
                end_line=f.end_line,
                suggestion=f.suggestion,
            )
        )
    return findings, errors


def _error_line(prefix: str, err: Any) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return f"{prefix}{loc}: {err.get('msg', 'invalid')}" if loc else f"{prefix}{err.get('msg', 'invalid')}"


# --- the loop ---------------------------------------------------------------------------------------


_TRIMMED = "[earlier tool output removed to stay within the token budget]"


class _Stop(Exception):
    def __init__(self, status: AgentStatus, note: str) -> None:
        super().__init__(note)
        self.status = status
        self.note = note


@dataclass
class _State:
    deadline: float = float("inf")  # time.monotonic() at which the review's time budget runs out
    turns: int = 0
    tool_calls: int = 0
    usage: Usage | None = None
    findings: tuple[Finding, ...] = ()
    submitted: bool = False
    repaired: bool = False
    invalid: bool = False

    @property
    def tokens(self) -> int:
        return 0 if self.usage is None else self.usage.input_tokens + self.usage.output_tokens


async def run_agent(
    defn: AgentDefinition,
    *,
    provider: Provider,
    tools: ToolRunner,
    context: ReviewPromptContext,
    budgets: AgentBudgets = AgentBudgets(),
    secrets: SecretSet | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> AgentResult:
    started = time.monotonic()
    state = _State(deadline=started + budgets.max_seconds)
    progress = on_progress or (lambda _line: None)
    granted = defn.granted & READ_ONLY_TOOLS
    specs = tuple(ToolDef(s.name, s.description, s.input_schema) for s in tools.specs() if s.name in granted)
    request_tools = (*specs, SUBMIT_TOOL_DEF)
    system = system_prompt(defn.prompt)
    turns: list[Turn] = [Turn("user", user_message(context))]
    status: AgentStatus = "ok"
    note = ""

    try:
        while not state.submitted:
            elapsed = time.monotonic() - started
            remaining_s = budgets.max_seconds - elapsed
            remaining_tokens = budgets.max_total_tokens - state.tokens
            if remaining_s <= 0:
                raise _Stop("budget_exhausted", "time budget exhausted")
            allowed_turns = budgets.max_turns + (1 if state.repaired else 0)  # the repair round is extra
            if state.turns >= allowed_turns:
                raise _Stop("no_submit", f"no review submitted within {state.turns} turns")
            final = (
                state.turns + 1 >= allowed_turns
                or state.tool_calls >= budgets.max_tool_calls
                or remaining_s < budgets.max_seconds / 4
                or remaining_tokens < budgets.max_total_tokens / 4
                or state.invalid
            )
            if final and not state.invalid:
                turns[-1] = dataclasses.replace(
                    turns[-1],
                    text=(turns[-1].text + "\n\n" if turns[-1].text else "")
                    + f"This is your last turn: call {SUBMIT_TOOL} now with the findings you have.",
                )
            request, payload, text = _fit_request(
                provider, system, turns, request_tools, final, budgets, remaining_tokens
            )
            if secrets is not None and secrets.find(text):
                log.error("model request blocked: secret", agent=defn.name, turn=state.turns + 1)
                raise _Stop("unavailable", "blocked: outgoing request contained a secret")
            state.turns += 1
            progress(f"model turn {state.turns}")
            try:
                async with asyncio.timeout(remaining_s):
                    reply = await provider.send(payload)
            except TimeoutError:
                raise _Stop("budget_exhausted", "time budget exhausted during a model call") from None
            state.usage = reply.usage if state.usage is None else state.usage + reply.usage
            turns.append(_assistant_turn(reply))
            turns.append(await _handle_reply(reply, defn, tools, granted, state, budgets, progress, request))
            if state.tokens > budgets.max_total_tokens and not state.submitted:
                raise _Stop("budget_exhausted", f"token budget exhausted ({state.tokens} tokens)")
        if state.invalid:
            status, note = "invalid_output", "submit_review arguments stayed invalid after one repair round"
    except _Stop as stop:
        status, note = ("invalid_output" if state.invalid else stop.status), stop.note
    except ModelUnavailable as exc:
        status, note = "unavailable", str(exc)
    seconds = time.monotonic() - started
    log.info(
        "agent finished",
        agent=defn.name,
        status=status,
        turns=state.turns,
        tool_calls=state.tool_calls,
        findings=len(state.findings),
        input_tokens=state.usage.input_tokens if state.usage else 0,
        output_tokens=state.usage.output_tokens if state.usage else 0,
        seconds=round(seconds, 2),
    )
    return AgentResult(
        agent=defn.name,
        status=status,
        findings=state.findings,
        usage=state.usage,
        turns=state.turns,
        tool_calls=state.tool_calls,
        seconds=seconds,
        note=note,
    )


def _fit_request(
    provider: Provider,
    system: str,
    turns: list[Turn],
    tools: tuple[ToolDef, ...],
    final: bool,
    budgets: AgentBudgets,
    remaining_tokens: int,
) -> tuple[ModelRequest, dict[str, Any], str]:
    """Encode the next request, trimming the oldest tool outputs until it fits the per-call cap."""
    while True:
        est_out = min(budgets.max_output_tokens, max(remaining_tokens, 0))
        request = ModelRequest(system, tuple(turns), tools, max(est_out, 1), SUBMIT_TOOL if final else None)
        payload = provider.encode(request)
        text = json.dumps(payload, ensure_ascii=False)
        estimate = estimate_tokens(text)
        if estimate <= budgets.max_input_tokens_per_call and estimate + est_out <= remaining_tokens:
            return request, payload, text
        if not _trim_oldest(turns):
            raise _Stop(
                "budget_exhausted",
                f"next request (~{estimate} tokens) exceeds the per-call or total token budget",
            )


def _trim_oldest(turns: list[Turn]) -> bool:
    for i, turn in enumerate(turns):
        for j, out in enumerate(turn.tool_outputs):
            if out.text != _TRIMMED:
                outs = list(turn.tool_outputs)
                outs[j] = dataclasses.replace(out, text=_TRIMMED)
                turns[i] = dataclasses.replace(turn, tool_outputs=tuple(outs))
                return True
    return False


def _assistant_turn(reply: ModelReply) -> Turn:
    # Anthropic rejects an assistant message with no content at all
    text = reply.text if reply.text or reply.tool_calls else "(no output)"
    return Turn("assistant", text=text, tool_calls=reply.tool_calls)


async def _handle_reply(
    reply: ModelReply,
    defn: AgentDefinition,
    tools: ToolRunner,
    granted: frozenset[str],
    state: _State,
    budgets: AgentBudgets,
    progress: Callable[[str], None],
    request: ModelRequest,
) -> Turn:
    """Run the reply's tool calls; returns the next user turn (tool outputs and/or a nudge)."""
    outputs: list[ToolOutput] = []
    nudge = ""
    for call in reply.tool_calls:
        if call.name == SUBMIT_TOOL:
            outputs.append(_submit(call, defn, state))
            continue
        if state.submitted:
            outputs.append(ToolOutput(call.id, "ignored: the review was already submitted", True))
            continue
        state.tool_calls += 1
        outputs.append(await _run_tool(call, tools, granted, state, budgets, progress, defn.name))
    if not reply.tool_calls:
        nudge = f"Call {SUBMIT_TOOL} to finish (an empty findings list is fine). Plain text is discarded."
    elif state.invalid and not state.submitted:
        nudge = f"Fix the problems listed above and call {SUBMIT_TOOL} again with the complete review."
    if request.force_tool and not state.submitted:
        raise _Stop("no_submit", "the model did not submit a review on its last turn")
    return Turn("user", text=nudge, tool_outputs=tuple(outputs))


def _submit(call: ToolCall, defn: AgentDefinition, state: _State) -> ToolOutput:
    if state.submitted:
        return ToolOutput(call.id, "ignored: the review was already submitted", True)
    findings, errors = parse_submission(call.arguments, defn.name)
    merged = {(f.path, f.line, f.title): f for f in (*state.findings, *findings)}
    state.findings = tuple(merged.values())
    if not errors:
        state.submitted, state.invalid = True, False
        return ToolOutput(call.id, f"review received: {len(findings)} findings")
    log.warning("agent submit_review invalid", agent=defn.name, problems=len(errors), repaired=state.repaired)
    if state.repaired:
        state.submitted, state.invalid = True, True  # gave up: keep what was valid
        return ToolOutput(call.id, "review rejected again; keeping the valid findings", True)
    state.repaired, state.invalid = True, True
    return ToolOutput(
        call.id,
        f"{SUBMIT_TOOL} rejected ({len(findings)} findings were valid):\n"
        + "\n".join(f"- {e}" for e in errors[:15]),
        True,
    )


async def _run_tool(
    call: ToolCall,
    tools: ToolRunner,
    granted: frozenset[str],
    state: _State,
    budgets: AgentBudgets,
    progress: Callable[[str], None],
    agent: str,
) -> ToolOutput:
    name = call.name[:64]
    if state.tool_calls > budgets.max_tool_calls:
        return ToolOutput(call.id, "tool call budget exhausted: submit your review now", True)
    if call.name not in granted:
        log.warning("agent tool refused", agent=agent, tool=name)
        offered = ", ".join(sorted(granted | {SUBMIT_TOOL}))
        return ToolOutput(call.id, f"unknown tool {name!r}: the only tools are {offered}", True)
    if call.arguments is None:
        return ToolOutput(call.id, "invalid arguments: expected a JSON object", True)
    remaining = state.deadline - time.monotonic()
    if remaining <= 0:
        return ToolOutput(call.id, "time budget exhausted: submit your review now", True)
    progress(f"tool {name} {_first_arg(call.arguments)}")
    try:
        # the review's wall-time budget covers tool calls too, not only model calls (P-08)
        async with asyncio.timeout(remaining):
            result = await tools.call(call.name, call.arguments)
    except TimeoutError:
        return ToolOutput(call.id, "tool stopped: the time budget ran out; submit your review now", True)
    text = result.text
    if len(text) > budgets.max_tool_result_chars:
        text = text[: budgets.max_tool_result_chars] + "\n[truncated]"
    return ToolOutput(call.id, text, result.is_error)


def _first_arg(arguments: Mapping[str, Any]) -> str:
    for key in ("pattern", "path"):
        value = arguments.get(key)
        if isinstance(value, str):
            return repr(value[:60])
    return ""


__all__ = [
    "SUBMIT_SCHEMA",
    "AgentBudgets",
    "ToolResultLike",
    "ToolRunner",
    "ToolSpecLike",
    "parse_submission",
    "run_agent",
]
