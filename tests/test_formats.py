"""Local/CI writers: terminal, markdown, JSON, SARIF 2.1.0 (schema-validated), GitLab Code Quality."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from bot.formats import to_codeclimate, to_json, to_markdown, to_sarif, to_text
from bot.models import Category, ReviewDraft, Severity
from bot.review import build_review
from tests.conftest import SARIF_SCHEMA
from tests.test_review import ctx, design_findings, finding, make_changeset, read_head


@pytest.fixture(scope="module")
def draft() -> ReviewDraft:
    fs = [
        *design_findings(),
        finding(
            line=51,
            evidence="duplicate()",
            severity=Severity.NIT,
            category=Category.OTHER,
            title="file level \x1b[31mred\x1b]8;;https://x.example\x07link",
            body="line one\n\x1b[2Jcleared\tand tab",
            source="py-rule",
        ),
        finding(
            path="app/other.py",
            line=1,
            evidence="def helper():",
            end_line=2,
            severity=Severity.LOW,
            category=Category.API,
            title="summary only",
        ),
    ]
    return build_review(fs, make_changeset(), read_head, ctx())


def test_o07_text_has_no_control_characters(draft: ReviewDraft) -> None:
    out = to_text(draft, color=False)
    assert "\x1b" not in out and "\x07" not in out
    lines = out.splitlines()
    assert lines[0] == "CRITICAL SQL built from request input"
    assert "app/other.py:1-2" in out
    assert "cleared and tab" in out
    assert lines[-1] == "backend-review: 5 findings in a1b2c3d (1 critical, 1 high, 1 medium, 1 low, 1 nit)"


def test_text_colour_only_our_own_escapes(draft: ReviewDraft) -> None:
    out = to_text(draft, color=True)
    assert "\x1b[1;31mCRITICAL\x1b[0m" in out
    # every escape in the output is one of our own SGR codes: the planted ones were stripped
    assert set(re.findall(r"\x1b\[([0-9;]*)m", out)) <= {"0", "1", "2", "31", "32", "33", "34", "1;31"}
    assert "\x1b]" not in out and "\x1b[2J" not in out and "\x07" not in out


def test_text_when_nothing_found() -> None:
    empty = build_review([finding(evidence="nowhere to be found")], make_changeset(), read_head, ctx())
    assert to_text(empty, color=False) == (
        "backend-review: no issues in a1b2c3d\n1 unverifiable finding dropped\n"
    )


def test_markdown_is_the_github_review(draft: ReviewDraft) -> None:
    out = to_markdown(draft)
    assert out.startswith(draft.body)
    assert "#### `app/users.py:19`\n\n🔴 **SQL built from request input**" in out
    assert "#### `app/users.py`\n\n⚪" in out
    for c in draft.comments:
        assert c.body in out


def test_markdown_shows_ranges() -> None:
    d = build_review([finding(line=19, end_line=20)], make_changeset(), read_head, ctx())
    assert "#### `app/users.py:19-20`" in to_markdown(d)


def test_json_shape(draft: ReviewDraft) -> None:
    data = json.loads(to_json(draft, make_changeset()))
    assert data["head_sha"] == draft.head_sha
    assert data["summary"]["total"] == 5
    assert data["summary"]["by_severity"] == {"critical": 1, "high": 1, "medium": 1, "low": 1, "nit": 1}
    assert data["files"]["skipped"] == [{"path": "poetry.lock", "reason": "lock file"}]
    assert data["files"]["reviewed"] == ["app/users.py", "app/notify.py"]
    required = {"path", "line", "end_line", "severity", "category", "title", "body", "source", "confidence"}
    for f in data["findings"]:
        assert required | {"fingerprint", "placement"} <= f.keys()
    assert [f["placement"] for f in data["findings"]] == ["inline", "inline", "inline", "summary", "file"]


def test_sarif_validates_against_the_schema(draft: ReviewDraft) -> None:
    schema = json.loads(SARIF_SCHEMA.read_text())
    rules = [("py-rule", "A rule that reports one thing"), ("unused-rule", "")]
    for text in (to_sarif(draft, tool_version="0.1.0", rules=rules), to_sarif(draft, tool_version="0.1.0")):
        log = json.loads(text)
        jsonschema.validate(log, schema)
    run = json.loads(to_sarif(draft, tool_version="0.1.0", rules=rules))["runs"][0]
    ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert ids[:2] == ["py-rule", "unused-rule"]
    assert "backend-engineer/database" in ids
    results = run["results"]
    assert [r["level"] for r in results] == ["error", "error", "warning", "note", "note"]
    first = results[0]
    assert first["partialFingerprints"]["backendReview/v1"] == draft.findings[0].fingerprint
    loc = first["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "app/users.py", "uriBaseId": "%SRCROOT%"}
    assert loc["region"] == {"startLine": 19}
    ranged = next(r for r in results if r["ruleId"].endswith("/api"))
    assert ranged["locations"][0]["physicalLocation"]["region"] == {"startLine": 1, "endLine": 2}
    by_id = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert by_id["backend-engineer/database"]["properties"]["security-severity"] == "9.5"


def test_sarif_uri_is_percent_encoded_and_empty_run_is_valid() -> None:
    f = finding(path="app/my file#1.py", line=1, evidence="def helper():")
    d = build_review([f], make_changeset(), lambda p: ["def helper():"], ctx())
    run = json.loads(to_sarif(d, tool_version="x"))["runs"][0]
    assert (
        run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        == "app/my%20file%231.py"
    )
    empty = json.loads(to_sarif(build_review([], make_changeset(), read_head, ctx()), tool_version="x"))
    jsonschema.validate(empty, json.loads(SARIF_SCHEMA.read_text()))
    assert empty["runs"][0]["results"] == []


def test_codeclimate_shape(draft: ReviewDraft) -> None:
    issues = json.loads(to_codeclimate(draft))
    assert len(issues) == 5
    for issue in issues:
        assert {"description", "check_name", "fingerprint", "severity", "location"} <= issue.keys()
        assert issue["severity"] in {"info", "minor", "major", "critical", "blocker"}
        assert isinstance(issue["location"]["path"], str)
        assert isinstance(issue["location"]["lines"]["begin"], int)
    assert [i["severity"] for i in issues] == ["blocker", "critical", "major", "minor", "info"]
    assert len({i["fingerprint"] for i in issues}) == 5
    assert issues[0]["check_name"] == "backend-engineer/database"
