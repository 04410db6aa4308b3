"""Build Changesets by hand for the rules tests (independent of bot/diff.py)."""

from __future__ import annotations

from bot.models import Changeset, DiffLine, FileDiff, FileStatus, Finding, Hunk
from bot.rules import run_rules


def file_diff(
    path: str, text: str, *, status: FileStatus = FileStatus.ADDED, marked: bool = False
) -> FileDiff:
    """One hunk. With ``marked``, each line starts with "+" (added), " " (context) or "-" (removed)."""
    body = text.strip("\n").split("\n")
    lines: list[DiffLine] = []
    old = new = 1
    for raw in body:
        kind, content = (raw[:1] or " ", raw[1:]) if marked else ("+", raw)
        if kind == "+":
            lines.append(DiffLine("+", None, new, content))
            new += 1
        elif kind == "-":
            lines.append(DiffLine("-", old, None, content))
            old += 1
        else:
            lines.append(DiffLine(" ", old, new, content))
            old += 1
            new += 1
    adds = sum(ln.kind == "+" for ln in lines)
    dels = sum(ln.kind == "-" for ln in lines)
    hunk = Hunk(1, old - 1, 1, new - 1, "", tuple(lines))
    return FileDiff(path, None, status, False, (hunk,), adds, dels)


def changeset(*files: FileDiff) -> Changeset:
    return Changeset("a" * 40, "b" * 40, files)


def findings(path: str, text: str, **kw: object) -> list[Finding]:
    return run_rules(changeset(file_diff(path, text, **kw)))  # type: ignore[arg-type]


def hits(path: str, text: str, **kw: object) -> set[tuple[str, int]]:
    return {(f.source, f.line) for f in findings(path, text, **kw)}


def rule_ids(path: str, text: str, **kw: object) -> set[str]:
    return {f.source for f in findings(path, text, **kw)}
