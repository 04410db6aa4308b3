"""The offline reviewer: deterministic backend checks over the lines a change adds.

Pure: reads only the :class:`~bot.models.Changeset`. Every finding is on an added line, and its evidence is
that line exactly as in the head file, so the review stage can verify it. Checks read the code with its
comments blanked, so no comment in the PR changes what is reported (P-01); only the checks marked
``in_comments`` (leaked keys and tokens) read the raw text.
"""

from __future__ import annotations

from bot.models import Changeset, FileStatus, Finding
from bot.rules import migrations, reliability, secrets, security, sql, unicode
from bot.rules.base import Check, Rule, Source, language_of
from bot.rules.dialect import UNKNOWN_PROJECT, ProjectDialects

__all__ = ["RULES", "ProjectDialects", "Rule", "language_of", "run_rules"]

_CHECKS: tuple[Check, ...] = (
    *sql.CHECKS,
    *secrets.CHECKS,
    *security.CHECKS,
    *reliability.CHECKS,
    *migrations.CHECKS,
    *unicode.CHECKS,
)
RULES: tuple[Rule, ...] = tuple(c.rule for c in _CHECKS)


def _checks_for(language: str | None) -> tuple[Check, ...]:
    return tuple(c for c in _CHECKS if not c.rule.languages or language in c.rule.languages)


_BY_LANGUAGE = {
    lang: _checks_for(lang) for lang in ("python", "javascript", "typescript", "go", "java", "ruby", "sql")
}
_ANY_FILE = _checks_for(None)


def run_rules(changeset: Changeset, project: ProjectDialects = UNKNOWN_PROJECT) -> list[Finding]:
    """Findings of every rule on the added lines of every reviewable file, ordered by path and line.

    ``project``: what the base branch's settings say about the database, for dialect-specific rules.
    """
    findings: list[Finding] = []
    for fd in changeset.files:
        if not fd.reviewable or fd.is_binary or fd.status == FileStatus.DELETED or fd.additions == 0:
            continue
        language = language_of(fd.path)
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
    return migrations.one_per_file(findings)
