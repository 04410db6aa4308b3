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
    "publish/__init__.py",
    "publish/markers.py",
    "publish/body.py",
    *(f"rules/{p.name}" for p in sorted((BOT / "rules").glob("*.py"))),
]
IO_LIBRARIES = {
    "asyncio", "httpx", "githubkit", "sqlite3", "subprocess", "socket", "psycopg", "psycopg_pool",
    "anthropic", "openai", "uvicorn", "starlette", "requests", "urllib.request", "shutil", "tempfile",
}  # fmt: skip
ADAPTERS = {
    "bot.app", "bot.checkout", "bot.ci", "bot.github", "bot.jobs", "bot.ledger", "bot.local", "bot.log",
    "bot.manifest", "bot.pipeline", "bot.process", "bot.server", "bot.settings", "bot.worker", "bot.queue",
    "bot.agent", "bot.basetree", "bot.repocache", "bot.metrics", "bot.setup_flow", "bot.jail", "bot.tokens",
    "bot.store", "bot.publish.github_app", "bot.publish.ci", "bot.publish.base", "bot.publish.history",
    "bot.publish.local",
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


# Opening a database connection (or a pool of them) is the store's job alone (issue 11: one store).
CONNECTION_OPENERS = {
    "sqlite3.connect",
    "psycopg.connect",
    "psycopg.Connection.connect",
    "psycopg.AsyncConnection.connect",
    "ConnectionPool",
    "AsyncConnectionPool",
}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def connection_openers(source: str) -> set[str]:
    """The calls in ``source`` that open a connection, by the name they are called through (also the
    bare ``connect``/``ConnectionPool`` of a ``from … import``)."""
    tree = ast.parse(source)
    imported = {
        alias.asname or alias.name: f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            head, _, rest = name.partition(".")
            full = f"{imported[head]}.{rest}".rstrip(".") if head in imported else name
            for opener in CONNECTION_OPENERS:
                if name == opener or full == opener or full.endswith(f"psycopg_pool.{opener}"):
                    found.add(opener)
    return found


def test_only_the_store_opens_database_connections() -> None:
    outside = {
        str(path.relative_to(BOT)): openers
        for path in sorted(BOT.rglob("*.py"))
        if "store" not in path.relative_to(BOT).parts[:1]
        and (openers := connection_openers(path.read_text()))
    }
    assert outside == {}


def test_the_connection_check_can_fail() -> None:
    source = """
import sqlite3
import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool as Pool
from sqlite3 import connect

sqlite3.connect("x.db")
psycopg.connect("postgresql://")
AsyncConnection.connect("postgresql://")
Pool("postgresql://")
connect("y.db")
"""
    assert connection_openers(source) == {
        "sqlite3.connect",
        "psycopg.connect",
        "psycopg.AsyncConnection.connect",
        "AsyncConnectionPool",
    }
    assert connection_openers("import json\njson.loads('1')\n") == set()


# -- one jail: bot/jail.py is the only reader of head files ------------------------------------------

_NOT_CHECKOUT = {"definitions.py", "providers.py"}  # read packaged agent files and scripted turns
# the modules that hold a checkout path (and the pure core, which reads no file at all)
CHECKOUT_HANDLERS = [
    "pipeline.py",
    "local.py",
    "basetree.py",
    *(f"agent/{p.name}" for p in sorted((BOT / "agent").glob("*.py")) if p.name not in _NOT_CHECKOUT),
    *PURE,
]
FILE_READS = {"open", "fdopen", "read", "lstat", "stat", "scandir", "listdir", "walk", "fwalk"}
PATH_READS = {"read_text", "read_bytes", "open", "iterdir", "glob", "rglob", "stat", "lstat", "walk"}


def file_reads(source: str) -> set[str]:
    """Calls that open, read, list or stat a file: ``open(…)``, ``os.<read>(…)``, ``<path>.<read>(…)``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in FILE_READS:
            found.add(func.id)
        elif isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else ""
            if owner in ("os", "io") and func.attr in FILE_READS:
                found.add(f"{owner}.{func.attr}")
            elif owner not in ("os", "io", "re") and func.attr in PATH_READS:
                found.add(f".{func.attr}")
    return found


@pytest.mark.parametrize("module", CHECKOUT_HANDLERS)
def test_only_the_jail_reads_head_files(module: str) -> None:
    assert (BOT / module).exists(), module
    assert file_reads((BOT / module).read_text()) == set()


def test_the_jail_check_can_fail() -> None:
    source = (
        "import os\nopen(p)\nos.lstat(p)\npath.read_text()\nos.scandir(fd)\nws.path.stat()\nre.compile(x)\n"
    )
    assert file_reads(source) == {"open", "os.lstat", ".read_text", "os.scandir", ".stat"}
    assert file_reads((BOT / "jail.py").read_text()) >= {"os.open", "os.read", "os.lstat", "os.scandir"}


def test_one_token_estimator() -> None:
    from bot import diff
    from bot.agent import runner

    defined = [
        str(p.relative_to(BOT))
        for p in sorted(BOT.rglob("*.py"))
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.FunctionDef) and "estimate" in node.name and "token" in node.name
    ]
    assert defined == ["diff.py"]
    assert runner.estimate_tokens is diff.estimate_tokens  # the agent's per-call budget uses it too


def test_the_secret_set_lives_in_redact() -> None:
    owners, importers = set(), set()
    for p in sorted(BOT.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "SECRETS" for t in node.targets
            ):
                owners.add(str(p.relative_to(BOT)))
            if isinstance(node, ast.ImportFrom) and any(a.name == "SECRETS" for a in node.names):
                importers.add(node.module)
    assert owners == {"redact.py"}
    assert importers == {"bot.redact"}  # nobody takes it from bot.log


# Only bot/publish/ writes to GitHub (issue 11): the client's write methods, by name, are used nowhere
# else in bot/ (bot/github.py defines them, and its composite writes call its own on ``self``).
GITHUB_WRITES = {
    "create_review", "post_issue_comment", "post_file_comment", "create_check_run", "open_check_run",
    "complete_check_run", "add_reaction", "resolve_review_thread", "minimize_comment",
}  # fmt: skip


def github_writes(source: str, *, own_self: bool = False) -> list[str]:
    """Uses of a GitHub write method (``x.create_review(...)``, or the bound method passed on); with
    ``own_self``, a class's calls of its own methods (``self.create_check_run``) are its own business."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute) or node.attr not in GITHUB_WRITES:
            continue
        if own_self and isinstance(node.value, ast.Name) and node.value.id == "self":
            continue
        found.append((node.lineno, node.attr))
    return [f"{line}:{name}" for line, name in sorted(found)]


def test_only_bot_publish_writes_to_github() -> None:
    publish = BOT / "publish"
    found = {
        str(path.relative_to(BOT)): hits
        for path in sorted(BOT.rglob("*.py"))
        if publish not in path.parents
        and (hits := github_writes(path.read_text(), own_self=path == BOT / "github.py"))
    }
    assert found == {}
    assert github_writes((publish / "github_app.py").read_text())  # the scan sees the real writers


def test_the_github_write_scan_can_fail() -> None:
    source = (
        "async def f(gw, self):\n"
        "    await gw.create_review(pr, sha, body, comments)\n"
        "    later = gw.add_reaction\n"
        "    await self.client.complete_check_run(pr, 1)\n"
        "    await self.create_check_run(pr, 'sha')\n"
        "    await gw.get_pull(pr)\n"
    )
    assert github_writes(source) == [
        "2:create_review", "3:add_reaction", "4:complete_check_run", "5:create_check_run",
    ]  # fmt: skip
    assert github_writes(source, own_self=True) == [
        "2:create_review",
        "3:add_reaction",
        "4:complete_check_run",
    ]
