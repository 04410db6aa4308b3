"""W-03: no comparison operator, startswith or endswith touches a *sig*, *digest* or *hmac* name in bot/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import bot

SENSITIVE = re.compile(r"sig|digest|hmac", re.IGNORECASE)
ROOT = Path(bot.__file__).parent


def _names(node: ast.AST) -> set[str]:
    out: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            out.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            out.add(sub.attr)
        elif isinstance(sub, ast.arg):
            out.add(sub.arg)
    return out


def violations(source: str, filename: str = "<src>") -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        operands: list[ast.AST] = []
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("startswith", "endswith", "removeprefix", "find", "index")
        ):
            operands = [node.func.value, *node.args]
        hits = sorted(n for op in operands for n in _names(op) if SENSITIVE.search(n))
        if hits:
            found.append(f"{filename}:{getattr(node, 'lineno', 0)}: {', '.join(hits)}")
    return found


def test_w03_ast_scan_of_bot_is_clean() -> None:
    problems: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        problems += violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT.parent)))
    assert problems == []


def test_w03_ast_scan_catches_timing_compares() -> None:
    assert violations("ok = signature == expected")
    assert violations("ok = expected != hmac.new(k, b, 'sha256').hexdigest()")
    assert violations("ok = header.startswith(sig_prefix)")
    assert violations("ok = x_hub_signature.startswith('sha256=')")
    assert violations("ok = computed_digest in allowed")
    assert not violations("ok = hmac.compare_digest(a, b)")
