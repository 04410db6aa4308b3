"""Item 8: the model sees each hunk's enclosing definition (from the syntax tree) and the offline hints."""

from __future__ import annotations

from bot.agent.context import TITLE, enclosing_definitions
from bot.agent.prompt import ReviewPromptContext, user_message
from bot.diff import estimate_tokens, parse_diff
from bot.models import Category, Finding, PromptDiff, Severity
from bot.rules import FileTexts

HEAD = (
    "from flask import jsonify\n\n\n"
    "@bp.get('/orders/<int:pk>')\n@login_required\ndef order(pk):\n"
    + "".join(f"    step_{i} = {i}\n" for i in range(30))
    + "    row = Order.query.get(pk)\n    return jsonify(row.to_dict())\n"
)
DIFF = """diff --git a/app/views.py b/app/views.py
--- a/app/views.py
+++ b/app/views.py
@@ -36,3 +36,3 @@ def order(pk):
     step_29 = 29
-    row = Order.query.filter_by(owner=current_user).get(pk)
+    row = Order.query.get(pk)
     return jsonify(row.to_dict())
"""


def _changeset():  # type: ignore[no-untyped-def]
    return parse_diff(DIFF, base_sha="a" * 40, head_sha="b" * 40)


def test_a_hunk_comes_with_its_enclosing_function_and_decorators() -> None:
    text = enclosing_definitions(_changeset(), {"app/views.py": FileTexts(HEAD, None)}, 5_000)
    assert text.startswith(TITLE)
    assert "### app/views.py:4-38 (function order)" in text
    assert " 4 @bp.get('/orders/<int:pk>')\n 5 @login_required\n 6 def order(pk):\n" in text
    assert "37     row = Order.query.get(pk)" in text


def test_definitions_stay_within_the_room_left_and_add_nothing_without_a_tree() -> None:
    texts = {"app/views.py": FileTexts(HEAD, None)}
    full = enclosing_definitions(_changeset(), texts, 5_000)
    assert enclosing_definitions(_changeset(), texts, estimate_tokens(full) - 1) == ""
    assert enclosing_definitions(_changeset(), texts, 0) == ""
    assert enclosing_definitions(_changeset(), {}, 5_000) == ""


def test_a_definition_the_hunk_shows_whole_is_not_repeated() -> None:
    small = "def f(x):\n    return x\n"
    diff = (
        "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n"
        "@@ -1,2 +1,2 @@\n def f(x):\n-    return 1\n+    return x\n"
    )
    cs = parse_diff(diff, base_sha="a" * 40, head_sha="b" * 40)
    assert enclosing_definitions(cs, {"m.py": FileTexts(small, None)}, 5_000) == ""


def _finding(confidence: float) -> Finding:
    return Finding("app/views.py", 37, Severity.HIGH, Category.AUTH, "Unscoped", "b", "row", "r", confidence)


def test_the_prompt_carries_definitions_and_separates_unposted_leads() -> None:
    definitions = enclosing_definitions(_changeset(), {"app/views.py": FileTexts(HEAD, None)}, 5_000)
    ctx = ReviewPromptContext(
        title="t",
        body="b",
        diff=PromptDiff(DIFF, ("app/views.py",), (), (), 10),
        hints=(_finding(0.9), _finding(0.5)),
        definitions=definitions,
    )
    msg = user_message(ctx, nonce="n" * 32)
    assert "### app/views.py:4-38 (function order)" in msg
    posted, leads = msg.split("## Unconfirmed offline leads")
    assert "## Offline check results\n- app/views.py:37" in posted
    assert leads.count("app/views.py:37") == 1
