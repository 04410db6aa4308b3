"""Pure writers of a :class:`~bot.models.ReviewDraft` for the local CLI and CI artifacts.

Terminal text, the markdown GitHub would show, JSON, SARIF 2.1.0 (GitHub code scanning) and GitLab
Code Quality. The draft's findings are already verified and cleaned by :mod:`bot.review` (no
secrets, no invisible characters); the terminal writer still strips every control character so
untrusted text cannot move the cursor, recolour the terminal or plant OSC-8 links (O-07).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence
from typing import Any, Literal, TypedDict

from bot.models import Category, Changeset, Finding, RankedFinding, ReviewDraft, Severity
from bot.sanitize import Sanitised, SanitisedText, code_span, compose, join, plain_text, strip_invisible
from bot.terminal import ReportFooter, render_report

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_INFO_URI = "https://github.com/backend-review/backend-review"

_SARIF_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.NIT: "note",
}
# GitHub code scanning reads a 0–10 "security-severity" to label security alerts
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "7.5",
    Severity.MEDIUM: "5.0",
    Severity.LOW: "3.0",
    Severity.NIT: "1.0",
}
_CODECLIMATE_SEVERITY = {
    Severity.CRITICAL: "blocker",
    Severity.HIGH: "critical",
    Severity.MEDIUM: "major",
    Severity.LOW: "minor",
    Severity.NIT: "info",
}
_CODECLIMATE_CATEGORY = {
    Category.SECURITY: "Security",
    Category.AUTH: "Security",
    Category.PERFORMANCE: "Performance",
    Category.API: "Compatibility",
    Category.OBSERVABILITY: "Clarity",
    Category.OTHER: "Style",
}


def _plain(text: str) -> str:
    """Untrusted text for a terminal: no control characters at all (tabs become spaces)."""
    return strip_invisible(text).replace("\t", "    ")


def _loc(f: Finding) -> str:
    return f"{f.path}:{f.line}" + (f"-{f.end_line}" if f.end_line else "")


def _counts(findings: Sequence[RankedFinding]) -> dict[str, int]:
    return {s.value: sum(1 for r in findings if r.finding.severity == s) for s in Severity}


def to_text(
    draft: ReviewDraft,
    *,
    color: bool,
    changeset: Changeset | None = None,
    width: int = 100,
    footer: ReportFooter | None = None,
) -> str:
    """The terminal report (:mod:`bot.terminal`): code frames, wrapped text, a summary line."""
    return render_report(draft, changeset, color=color, width=width, footer=footer)


def to_markdown(draft: ReviewDraft) -> Sanitised:
    """The review as GitHub would show it: the body, then each comment under its location."""
    parts = [draft.body]
    for c in draft.comments:
        where = f"{c.path}:{c.start_line}-{c.line}" if c.start_line else f"{c.path}:{c.line}"
        parts.append(compose("#### {}\n\n{}", code_span(where), c.body))
    for fc in draft.file_comments:
        parts.append(compose("#### {}\n\n{}", code_span(fc.path), fc.body))
    return compose("{}\n", join("\n\n---\n\n", parts))


def _finding_json(r: RankedFinding) -> dict[str, Any]:
    f = r.finding
    return {
        "path": f.path,
        "line": f.line,
        "end_line": f.end_line,
        "severity": f.severity.value,
        "category": f.category.value,
        "title": f.title,
        "body": f.body,
        "evidence": f.evidence,
        "suggestion": f.suggestion,
        "source": f.source,
        "confidence": f.confidence,
        "fingerprint": r.fingerprint,
        "placement": r.placement,
    }


def to_json(draft: ReviewDraft, changeset: Changeset) -> str:
    """Machine-readable findings plus coverage: what was reviewed, skipped and dropped."""
    data = {
        "head_sha": draft.head_sha,
        "base_sha": changeset.base_sha,
        "summary": {
            "total": len(draft.findings),
            "by_severity": _counts(draft.findings),
            "inline": len(draft.comments),
            "file": len(draft.file_comments),
            "dropped": draft.dropped,
        },
        "files": {
            "changed": len(changeset.files),
            "reviewed": [f.path for f in changeset.reviewable_files],
            "skipped": [{"path": f.path, "reason": f.skip_reason} for f in changeset.skipped_files],
        },
        "findings": [_finding_json(r) for r in draft.findings],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _rule_id(f: Finding, known: set[str]) -> str:
    # a rule reports one kind of issue; an agent reports many, so its id carries the category
    return f.source if f.source in known else f"{f.source}/{f.category.value}"


def to_sarif(
    draft: ReviewDraft,
    *,
    tool_version: str,
    rules: Sequence[tuple[str, str]] | None = None,
) -> str:
    """SARIF 2.1.0. ``rules`` are (rule id, one-line description) of the offline rules that ran."""
    known = dict(rules or ())
    descriptors: dict[str, dict[str, Any]] = {
        rid: {"id": rid, "shortDescription": {"text": desc or rid}} for rid, desc in known.items()
    }
    results: list[dict[str, Any]] = []
    for r in draft.findings:
        f = r.finding
        rid = _rule_id(f, set(known))
        desc = descriptors.setdefault(
            rid, {"id": rid, "shortDescription": {"text": f"{f.source}: {f.category.value}"}}
        )
        worst = desc.setdefault("properties", {"tags": [f.category.value], "security-severity": "0.0"})
        if float(_SECURITY_SEVERITY[f.severity]) > float(worst["security-severity"]):
            worst["security-severity"] = _SECURITY_SEVERITY[f.severity]
        region: dict[str, int] = {"startLine": f.line}
        if f.end_line:
            region["endLine"] = f.end_line
        results.append(
            {
                "ruleId": rid,
                "level": _SARIF_LEVEL[f.severity],
                "message": {"text": f"{f.title}\n\n{f.body}".strip()},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {
                                "uri": urllib.parse.quote(f.path),
                                "uriBaseId": "%SRCROOT%",
                            },
                            "region": region,
                        }
                    }
                ],
                "partialFingerprints": {"backendReview/v1": r.fingerprint},
                "properties": {
                    "severity": f.severity.value,
                    "category": f.category.value,
                    "confidence": f.confidence,
                    "source": f.source,
                },
            }
        )
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "backend-review",
                        "version": tool_version,
                        "informationUri": _INFO_URI,
                        "rules": list(descriptors.values()),
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def to_codeclimate(draft: ReviewDraft) -> str:
    """GitLab Code Quality report: a JSON array of Code Climate issues."""
    issues = []
    for r in draft.findings:
        f = r.finding
        issues.append(
            {
                "type": "issue",
                "description": " ".join(f.title.split()),
                "content": {"body": f.body},
                "check_name": f"{f.source}/{f.category.value}",
                "categories": [_CODECLIMATE_CATEGORY.get(f.category, "Bug Risk")],
                "fingerprint": r.fingerprint,
                "severity": _CODECLIMATE_SEVERITY[f.severity],
                "location": {"path": f.path, "lines": {"begin": f.line, "end": f.end_line or f.line}},
            }
        )
    return json.dumps(issues, indent=2, ensure_ascii=False) + "\n"


_ANNOTATION_LEVEL: dict[Severity, Literal["notice", "warning", "failure"]] = {
    Severity.CRITICAL: "failure",
    Severity.HIGH: "failure",
    Severity.MEDIUM: "warning",
    Severity.LOW: "notice",
    Severity.NIT: "notice",
}


class Annotation(TypedDict):
    """A check-run annotation; GitHub shows ``title`` and ``message`` as plain text."""

    path: str
    start_line: int
    end_line: int
    annotation_level: Literal["notice", "warning", "failure"]
    title: SanitisedText
    message: SanitisedText


def check_annotations(draft: ReviewDraft) -> list[Annotation]:
    """Check-run annotations for every surviving finding (the client sends them 50 per request)."""
    out: list[Annotation] = []
    for ranked in draft.findings:
        f = ranked.finding
        out.append(
            {
                "path": f.path,
                "start_line": f.line,
                "end_line": f.end_line or f.line,
                "annotation_level": _ANNOTATION_LEVEL[f.severity],
                "title": plain_text(f.title),
                "message": plain_text(f"{f.severity} · {f.category}: {f.title}", limit=1000),
            }
        )
    return out


__all__ = [
    "Annotation",
    "check_annotations",
    "to_codeclimate",
    "to_json",
    "to_markdown",
    "to_sarif",
    "to_text",
]
