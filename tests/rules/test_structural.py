"""The structural layer: diff-aware rules, full-file texts, caps (cases in structural_cases.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bot.models import Changeset, FileStatus
from bot.rules import FileTexts, run_rules
from bot.rules.syntax import MAX_PARSE_BYTES, parse
from tests.rules.structural_cases import ALSO_LINE_RULES, REMOVED_CLEAN, REMOVED_FLAG
from tests.rules.util import changeset, file_diff


def _removed_findings(path: str, diff: str) -> list[tuple[str, int, str]]:
    cs = changeset(file_diff(path, diff, marked=True, status=FileStatus.MODIFIED))
    return [(f.source, f.line, f.evidence) for f in run_rules(cs)]


@pytest.mark.parametrize("case", REMOVED_FLAG, ids=lambda c: f"{c[0]}:{c[1]}")
def test_removed_safeguard_is_flagged_on_the_nearest_right_side_line(case: tuple[str, str, str, int]) -> None:
    rule_id, path, diff, line = case
    found = [(ln, ev) for r, ln, ev in _removed_findings(path, diff) if r == rule_id]
    head = [t[1:] for t in diff.split("\n") if not t.startswith("-")]
    assert found == [(line, head[line - 1].rstrip())], found


@pytest.mark.parametrize("case", REMOVED_CLEAN, ids=lambda c: f"{c[0]}:{c[1]}")
def test_removed_safeguard_not_flagged_when_moved_or_only_a_comment(case: tuple[str, str, str]) -> None:
    rule_id, path, diff = case
    assert not [r for r, _, _ in _removed_findings(path, diff) if r == rule_id]


def test_a_safeguard_moved_to_another_changed_file_is_not_removed() -> None:
    view = file_diff(
        "app/views.py",
        ' @app.route("/login", methods=["POST"])\n-@limiter.limit("5/minute")\n'
        " def login():\n     return auth()",
        marked=True,
        status=FileStatus.MODIFIED,
    )
    assert {f.source for f in run_rules(changeset(view))} == {"removed-rate-limit"}
    moved = file_diff("app/middleware.py", 'LIMITS = {"/login": limiter.limit("5/minute")}')
    assert "removed-rate-limit" not in {f.source for f in run_rules(changeset(view, moved))}


def test_full_texts_give_the_checks_what_the_hunks_do_not_show() -> None:
    """A removed decorator whose function lies outside the hunk: only the full base and head say so."""
    base = '@app.route("/x")\n@login_required\ndef x():\n' + "    a = 1\n" * 20 + "    return a\n"
    head = '@app.route("/x")\ndef x():\n' + "    a = 1\n" * 20 + "    return a\n"
    fd = file_diff("app/views.py", ' @app.route("/x")\n-@login_required\n def x():', marked=True,
                   status=FileStatus.MODIFIED)  # fmt: skip
    cs = Changeset("a" * 40, "b" * 40, (fd,))
    with_texts = run_rules(cs, texts={"app/views.py": FileTexts(head, base)})
    assert [(f.source, f.line) for f in with_texts] == [("removed-auth-check", 2)]


def test_sql_built_in_a_variable_on_an_unchanged_call_is_found_where_it_is_built() -> None:
    diff = (
        " def f(request):\n+    sql = 'SELECT * FROM t ORDER BY ' + request.GET['s']\n"
        "     cursor.execute(sql)"
    )
    cs = changeset(file_diff("app/views.py", diff, marked=True, status=FileStatus.MODIFIED))
    assert ("sql-built-query", 2) in {(f.source, f.line) for f in run_rules(cs)} | {
        ("sql-built-query", f.line) for f in run_rules(cs) if f.source == "py-sql-format"
    }


def test_strings_and_comments_neither_add_nor_hide_structural_findings() -> None:
    code = (
        'doc = "cursor.execute(\\"SELECT * FROM t ORDER BY \\" + sort)"\n'
        "# cursor.execute('SELECT * FROM t ORDER BY ' + sort)\n"
    )
    assert not run_rules(changeset(file_diff("app/views.py", code)))
    hidden = "cursor.execute(  # the sort is validated\n    'SELECT * FROM t ORDER BY ' + sort  # )\n)"
    assert {f.source for f in run_rules(changeset(file_diff("app/x.py", hidden)))} & {
        "sql-built-query",
        "py-sql-format",
    }


def test_django_tests_modules_get_no_structural_findings() -> None:
    code = (
        "def a(request, pk):\n    return Doc.objects.get(pk=pk, owner=request.user)\n\n"
        "def b(request, pk):\n    return Doc.objects.get(pk=pk)"
    )
    assert "authz-unscoped-lookup" in {
        f.source for f in run_rules(changeset(file_diff("app/views.py", code)))
    }
    assert not run_rules(changeset(file_diff("app/tests.py", code)))


def test_huge_and_minified_files_are_not_parsed() -> None:
    assert parse("x = 1\n" * (MAX_PARSE_BYTES // 6 + 1), "python") is None
    assert parse("var a=" + "1+" * 10_000 + "1;", "javascript") is None  # one long line: minified
    assert parse("x = 1\n", "python") is not None


def test_a_20_mb_one_line_file_is_skipped_quickly() -> None:
    line = "const q = `SELECT * FROM t WHERE a = ${x}`;" * (20_000_000 // 44)
    fd = file_diff("web/app.js", line)
    started = time.perf_counter()
    run_rules(changeset(fd), texts={"web/app.js": FileTexts(line, None)})
    # not a speed assertion (bench/ measures): the structural layer must not even parse it
    assert parse(line, "javascript") is None
    assert time.perf_counter() - started >= 0


@pytest.mark.parametrize("case", ALSO_LINE_RULES, ids=lambda c: f"{c[0]}:{c[1]}")
def test_a_defect_both_layers_see_is_one_finding(case: tuple[str, str, str, int]) -> None:
    _, path, code, line = case
    on_line = [f for f in run_rules(changeset(file_diff(path, code))) if f.line == line]
    assert len(on_line) == 1 and on_line[0].category.value == "database", on_line


def test_a_new_handler_beside_one_guarded_sibling_is_flagged_less_surely() -> None:
    diff = (
        ' @bp.get("/users")\n @login_required\n def list_users():\n     return users()\n+\n'
        '+@bp.get("/users/export")\n+def export_users():\n+    return dump()'
    )
    found = [
        (f.source, f.line, f.confidence)
        for f in run_rules(
            changeset(file_diff("app/admin.py", diff, marked=True, status=FileStatus.MODIFIED))
        )
    ]
    assert found == [("authz-missing-guard", 6, 0.65)]
    public = diff.replace("export_users", "login").replace("/users/export", "/login")
    cs = changeset(file_diff("app/admin.py", public, marked=True, status=FileStatus.MODIFIED))
    assert not run_rules(cs)


def test_a_guard_dropped_while_its_function_is_rewritten_is_only_a_hint() -> None:
    diff = (
        " def clean_email(self):\n-    if taken and UNIQUE:\n-        raise ValidationError(msg)\n"
        "+    value = normalise(self.cleaned_data['email'])\n+    log(value)\n+    audit(value)\n"
        "     return value"
    )
    cs = changeset(file_diff("app/forms.py", diff, marked=True, status=FileStatus.MODIFIED))
    found = [f for f in run_rules(cs) if f.source == "removed-guard-clause"]
    assert [f.confidence for f in found] == [0.5]


def test_expected_native_errors_capture_no_backtrace() -> None:
    """Kinds a grammar lacks are queried on purpose; with RUST_BACKTRACE=1 (set on many machines, CI
    included) each such error captured a backtrace, ~80 ms apiece: a small review took 23 s."""
    probe = (
        "import os\n"
        "from bot.rules.syntax import find_all, parse\n"
        "p = parse('def f():\\n    return 1\\n', 'python', 'app/x.py')\n"
        "assert p is not None\n"
        "find_all(p.root, 'no_such_kind_in_python')\n"
        "print(os.environ.get('RUST_LIB_BACKTRACE'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RUST_LIB_BACKTRACE"}
    env["RUST_BACKTRACE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "0"
