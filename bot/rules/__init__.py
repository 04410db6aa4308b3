"""The offline reviewer: deterministic backend checks over the lines a change adds.

Pure: reads only the :class:`~bot.models.Changeset`. Every finding is on an added line, and its evidence is
that line exactly as in the head file, so the review stage can verify it. Checks read the code with its
comments blanked, so no comment in the PR changes what is reported (P-01); only the checks marked
``in_comments`` (leaked keys and tokens) read the raw text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from bot.models import Changeset, FileDiff, FileStatus, Finding
from bot.rules import (
    authz,
    gitmodules,
    injection,
    migrations,
    orm,
    reliability,
    removed,
    secrets,
    security,
    sql,
    tokens,
    unicode,
)
from bot.rules.base import Check, Rule, Source, language_of
from bot.rules.dialect import UNKNOWN_PROJECT, ProjectDialects
from bot.rules.structural import FileTexts, ParseBudget, StructCheck, run_structural
from bot.rules.syntax import GRAMMARS

__all__ = ["RULES", "FileTexts", "ProjectDialects", "Rule", "language_of", "run_rules"]

_CHECKS: tuple[Check, ...] = (
    *sql.CHECKS,
    *secrets.CHECKS,
    *security.CHECKS,
    *reliability.CHECKS,
    *migrations.CHECKS,
    *unicode.CHECKS,
    *gitmodules.CHECKS,
)
_STRUCT_CHECKS: tuple[StructCheck, ...] = (
    *injection.CHECKS,
    *tokens.CHECKS,
    *authz.CHECKS,
    *orm.CHECKS,
    *removed.CHECKS,
)
_SAME_AS = {c.rule.id: c.same_as for c in _STRUCT_CHECKS}
RULES: tuple[Rule, ...] = tuple(c.rule for c in _CHECKS) + tuple(c.rule for c in _STRUCT_CHECKS)


def _checks_for(language: str | None) -> tuple[Check, ...]:
    return tuple(c for c in _CHECKS if not c.rule.languages or language in c.rule.languages)


_BY_LANGUAGE = {
    lang: _checks_for(lang) for lang in ("python", "javascript", "typescript", "go", "java", "ruby", "sql")
}
_ANY_FILE = _checks_for(None)


def run_rules(
    changeset: Changeset,
    project: ProjectDialects = UNKNOWN_PROJECT,
    texts: Mapping[str, FileTexts] | None = None,
) -> list[Finding]:
    """Findings of every rule on every reviewable file, ordered by path and line.

    ``project``: what the base branch's settings say about the database, for dialect-specific rules.
    ``texts``: the full head and base text of changed files, for the structural checks (syntax trees of
    whole files, diff-aware comparisons); without them the trees are built from the hunks alone.
    """
    findings: list[Finding] = []
    budget = ParseBudget()
    added: dict[str, str] = {}
    for fd in changeset.files:
        if not fd.reviewable or fd.is_binary or fd.status == FileStatus.DELETED:
            continue
        language = language_of(fd.path)
        if language in GRAMMARS:
            findings.extend(_structural(changeset, fd, language, (texts or {}).get(fd.path), budget, added))
        if fd.additions == 0:
            continue
        src = Source(fd, language, project)
        if not any(src.added):
            continue
        for check in _BY_LANGUAGE.get(language or "", _ANY_FILE):
            if (check.skip_tests and src.is_test) or (check.migrations_only and not src.is_migration):
                continue
            view = src.raw_view() if check.in_comments else src
            if not view.focus(check.needles):
                continue
            r = check.rule
            seen: set[int] = set()
            for hit in check.run(view):
                i = hit.index
                if i in seen or not src.added[i]:
                    continue
                seen.add(i)
                findings.append(
                    Finding(
                        path=fd.path,
                        line=src.nos[i],
                        severity=r.severity,
                        category=r.category,
                        title=r.title,
                        body=" ".join(x for x in (r.message, hit.detail, r.fix_for(language)) if x),
                        evidence=src.raw[i].rstrip(),
                        source=r.id,
                        confidence=r.confidence if hit.confidence is None else hit.confidence,
                        suggestion=hit.suggestion.rstrip() if hit.suggestion else None,
                    )
                )
    findings.sort(key=lambda f: (f.path, f.line, f.source))
    return migrations.one_per_file(_one_per_line(findings))


def _one_per_line(findings: list[Finding]) -> list[Finding]:
    """A line rule and a structural rule reporting the same defect on the same line (``same_as``): one
    finding, the line rule's (its id is the established one), as sure as the surer of the two."""
    line_rules: dict[tuple[str, int, str], int] = {}
    out: list[Finding] = []
    for f in findings:
        if f.source not in _SAME_AS:
            line_rules.setdefault((f.path, f.line, f.source), len(out))
            out.append(f)
    for f in findings:
        if f.source in _SAME_AS:
            k = next(
                (k for r in _SAME_AS[f.source] if (k := line_rules.get((f.path, f.line, r))) is not None),
                None,
            )
            if k is None:
                out.append(f)
            elif f.confidence > out[k].confidence:
                out[k] = replace(out[k], confidence=f.confidence)
    out.sort(key=lambda f: (f.path, f.line, f.source))
    return out


def _structural(
    changeset: Changeset,
    fd: FileDiff,
    language: str,
    texts: FileTexts | None,
    budget: ParseBudget,
    added: dict[str, str],
) -> list[Finding]:
    out: list[Finding] = []
    elsewhere = _AddedElsewhere(changeset, fd.path, added)
    for check, hit, unit in run_structural(fd, language, texts, _STRUCT_CHECKS, elsewhere, budget):
        r = check.rule
        body = (
            f"{r.message} {hit.detail} {r.fix_for(language)}"
            if hit.detail
            else f"{r.message} {r.fix_for(language)}"
        )
        out.append(
            Finding(
                path=fd.path,
                line=hit.line + 1,
                severity=r.severity,
                category=r.category,
                title=r.title,
                body=body,
                evidence=unit.head_line(hit.line).rstrip(),
                source=r.id,
                confidence=r.confidence if hit.confidence is None else hit.confidence,
            )
        )
    return out


class _AddedElsewhere:
    """Code the change adds in files other than ``path``, lower-cased on first use (shared by every file):
    where a "removed" safeguard may have moved to."""

    def __init__(self, changeset: Changeset, path: str, cache: dict[str, str]) -> None:
        self._changeset = changeset
        self._path = path
        self._cache = cache  # path -> its added code, lower-cased

    def __contains__(self, needle: object) -> bool:
        if not isinstance(needle, str):
            return False
        if not self._cache:
            for f in self._changeset.files:
                self._cache[f.path] = "\n".join(
                    ln.text for h in f.hunks for ln in h.lines if ln.kind == "+"
                ).lower()
        n = needle.lower()
        return any(n in text for p, text in self._cache.items() if p != self._path)
