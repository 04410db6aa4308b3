"""Evidence anchoring keeps a correctly placed range, and a suggestion only replaces the lines it was
written for (DESIGN.md "Evidence is checked, not trusted"; a suggestion is the full replacement of
line..end_line)."""

from __future__ import annotations

from bot.diff import parse_diff
from bot.models import Category, Finding, Severity
from bot.review import ReviewContext, build_review, verify_and_anchor

HEAD = [f"line_{n} = {n}" for n in range(1, 31)]
DIFF = "diff --git a/m.py b/m.py\nnew file mode 100644\n--- /dev/null\n+++ b/m.py\n@@ -0,0 +1,30 @@\n"
DIFF += "".join(f"+{t}\n" for t in HEAD)
CS = parse_diff(DIFF, head_sha="a" * 40)


def read_head(path: str) -> list[str] | None:
    return HEAD if path == "m.py" else None


def finding(line: int, end_line: int | None, evidence: str, suggestion: str | None = None) -> Finding:
    return Finding(
        path="m.py",
        line=line,
        severity=Severity.HIGH,
        category=Category.DATABASE,
        title="t",
        body="b",
        evidence=evidence,
        source="agent",
        confidence=0.9,
        end_line=end_line,
        suggestion=suggestion,
    )


def test_evidence_inside_the_claimed_range_keeps_the_range() -> None:
    # the model claims 10-12 and quotes line 11: the range is right and must not move to 11-13
    kept, dropped = verify_and_anchor([finding(10, 12, "line_11 = 11", "a\nb\nc")], CS, read_head)
    assert dropped == 0
    assert (kept[0].line, kept[0].end_line) == (10, 12)
    draft = build_review([finding(10, 12, "line_11 = 11", "a\nb\nc")], CS, read_head, _ctx())
    (c,) = draft.comments
    assert (c.start_line, c.line) == (10, 12)
    assert "```suggestion\na\nb\nc\n```" in c.body


def test_suggestion_is_dropped_when_anchoring_widens_its_range() -> None:
    # one-line suggestion for line 11; the three-line evidence widens the comment to 11-12, where the
    # suggestion would silently delete line 12
    f = finding(11, None, "line_10 = 10\nline_11 = 11\nline_12 = 12", "line_11 = 0")
    draft = build_review([f], CS, read_head, _ctx())
    (c,) = draft.comments
    assert (c.start_line, c.line) == (11, 12)
    assert "suggestion" not in c.body


def test_suggestion_survives_a_pure_shift() -> None:
    f = finding(3, 4, "line_20 = 20\nline_21 = 21", "x\ny")
    draft = build_review([f], CS, read_head, _ctx())
    (c,) = draft.comments
    assert (c.start_line, c.line) == (20, 21)
    assert "```suggestion\nx\ny\n```" in c.body


def _ctx() -> ReviewContext:
    return ReviewContext(repo="o/r", head_sha="a" * 40)
