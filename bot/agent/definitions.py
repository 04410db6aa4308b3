"""Agent definitions: markdown with YAML front matter (``name``, ``description``, ``tools``).

Definitions come only from the application's own packaged ``bot/agents/`` directory (T-01), never
from the repository under review. The runner grants the intersection of ``tools`` with the hard-coded
read-only set :data:`READ_ONLY_TOOLS`; every other tool a definition asks for is refused and logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.errors import ConfigError
from bot.log import get_logger

log = get_logger(__name__)

READ_ONLY_TOOLS: frozenset[str] = frozenset({"grep", "view"})
"""The only tools an agent can ever be granted, whatever its definition says."""

AGENTS_DIR = Path(__file__).resolve().parent.parent / "agents"
"""The packaged definitions (package data ``bot/agents/*.md``)."""

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)(.*)\Z", re.S)
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_TOOL = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_KEYS = frozenset({"name", "description", "tools"})
MAX_DEFINITION_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class AgentDefinition:
    name: str
    description: str
    tools: tuple[str, ...]  # as written in the definition
    prompt: str  # the markdown body: the agent's system prompt
    granted: frozenset[str]  # tools ∩ READ_ONLY_TOOLS
    refused: frozenset[str]  # everything else the definition asked for


def parse_definition(text: str, source: str = "<string>") -> AgentDefinition:
    """Parse and strictly validate one definition; raises :class:`ConfigError` naming ``source``."""
    match = _FRONT_MATTER.match(text.lstrip("\ufeff"))
    if not match:
        raise ConfigError(f"{source}: agent definition must start with YAML front matter between '---' lines")
    header, body = match.groups()
    try:
        meta: Any = yaml.safe_load(header)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: front matter is not valid YAML ({_first_line(exc)})") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{source}: front matter must be a mapping with name, description and tools")
    unknown = sorted(str(k) for k in meta if k not in _KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown front-matter keys {unknown} (allowed: {sorted(_KEYS)})")
    missing = sorted(_KEYS - set(meta))
    if missing:
        raise ConfigError(f"{source}: missing front-matter keys {missing}")

    name, description, tools = meta["name"], meta["description"], meta["tools"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{source}: name must be lowercase letters, digits and '-', got {name!r}")
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(f"{source}: description must be a non-empty string")
    if not isinstance(tools, list) or not all(isinstance(t, str) and _TOOL.fullmatch(t) for t in tools):
        raise ConfigError(f"{source}: tools must be a list of tool names, got {tools!r}")
    if len(set(tools)) != len(tools):
        raise ConfigError(f"{source}: tools lists a tool twice")
    prompt = body.strip()
    if not prompt:
        raise ConfigError(f"{source}: the definition has no prompt body")

    granted = frozenset(tools) & READ_ONLY_TOOLS
    refused = frozenset(tools) - READ_ONLY_TOOLS
    if refused:
        log.warning("agent tools refused", agent=name, refused=sorted(refused), granted=sorted(granted))
    return AgentDefinition(name, " ".join(description.split()), tuple(tools), prompt, granted, refused)


def load_definition_file(path: Path) -> AgentDefinition:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read agent definition ({exc.strerror})") from None
    if len(raw) > MAX_DEFINITION_BYTES:
        raise ConfigError(f"{path}: agent definition larger than {MAX_DEFINITION_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: agent definition is not UTF-8") from None
    return parse_definition(text, str(path))


def load_definition(name: str = "backend-engineer", directory: Path | None = None) -> AgentDefinition:
    """Load ``<directory>/<name>.md`` (default: the packaged :data:`AGENTS_DIR`)."""
    if not _NAME.fullmatch(name):
        raise ConfigError(f"invalid agent name {name!r}")
    definition = load_definition_file((directory or AGENTS_DIR) / f"{name}.md")
    if definition.name != name:
        raise ConfigError(f"agent file {name}.md declares name {definition.name!r}")
    return definition


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


__all__ = [
    "AGENTS_DIR",
    "READ_ONLY_TOOLS",
    "AgentDefinition",
    "load_definition",
    "load_definition_file",
    "parse_definition",
]
