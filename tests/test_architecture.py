"""The sans-I/O core stays pure: decision modules import no I/O library and no adapter module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parent.parent / "bot"
PURE = [
    "models.py",
    "errors.py",
    "events.py",
    "config.py",
    "diff.py",
    "review.py",
    "sanitize.py",
    "formats.py",
    "terminal.py",
    "redact.py",
    "backoff.py",
    "workflow_commands.py",
    "outdated.py",
    *(f"rules/{p.name}" for p in sorted((BOT / "rules").glob("*.py"))),
]
IO_LIBRARIES = {
    "asyncio", "httpx", "githubkit", "sqlite3", "subprocess", "socket", "psycopg", "psycopg_pool",
    "anthropic", "openai", "uvicorn", "starlette", "requests", "urllib.request", "shutil", "tempfile",
}  # fmt: skip
ADAPTERS = {
    "bot.app", "bot.checkout", "bot.ci", "bot.github", "bot.jobs", "bot.ledger", "bot.local", "bot.log",
    "bot.manifest", "bot.pipeline", "bot.process", "bot.server", "bot.settings", "bot.worker", "bot.queue",
    "bot.agent", "bot.basetree", "bot.repocache", "bot.metrics", "bot.setup_flow",
}  # fmt: skip


def imported_modules(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(source: str) -> set[str]:
    bad = set()
    for name in imported_modules(source):
        if any(name == lib or name.startswith(lib + ".") for lib in IO_LIBRARIES | ADAPTERS):
            bad.add(name)
    return bad


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io_and_no_adapter(module: str) -> None:
    assert (BOT / module).exists(), module
    assert violations((BOT / module).read_text()) == set()


def test_the_check_can_fail() -> None:
    assert violations("import sqlite3\nfrom bot.github import GitHubApp\nimport json\n") == {
        "sqlite3",
        "bot.github",
        "bot.github.GitHubApp",
    }
    assert violations("from asyncio import subprocess\n") == {"asyncio", "asyncio.subprocess"}
