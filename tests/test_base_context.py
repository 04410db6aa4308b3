"""What the review reads from the BASE branch (P-04), end to end through ``review_repository`` on real git:
.gitattributes file kinds, the database dialect from project settings, moved code, repository rules."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.local import review_repository
from bot.pipeline import ReviewOutcome
from bot.publish.local import render
from tests.support.gitrepo import GitRepo

SQL_FN = (
    "def find_user(cur, name):\n"
    "    cur.execute(f\"SELECT id, email FROM users WHERE name = '{name}'\")\n"
    "    row = cur.fetchone()\n"
    "    if row is None:\n"
    "        raise LookupError(name)\n"
    "    return row\n"
)


def review(repo: GitRepo, base: str) -> ReviewOutcome:
    return asyncio.run(review_repository(repo.path, base=base, head="HEAD", model="none", environ={}))


def sources(outcome: ReviewOutcome) -> set[tuple[str, str]]:
    return {(r.finding.path, r.finding.source) for r in outcome.draft.findings}


def skipped(outcome: ReviewOutcome) -> dict[str, str]:
    return {f.path: f.skip_reason or "" for f in outcome.changeset.skipped_files}


# -- moved code ---------------------------------------------------------------------------------------


def test_code_moved_to_another_file_is_not_reviewed_as_new(git_repo: GitRepo) -> None:
    base = git_repo.commit("base", {"app/users.py": "import os\n\n\n" + SQL_FN, "app/db.py": "X = 1\n"})
    git_repo.write("app/users.py", "import os\n")
    git_repo.write("app/db.py", "X = 1\n\n\n" + SQL_FN)
    git_repo.commit("move find_user to db.py")
    outcome = review(git_repo, base)
    assert ("app/db.py", "py-sql-format") in {(f.path, f.source) for f in outcome.rule_findings}
    assert not outcome.draft.findings  # the rule saw it, the review posts nothing on moved code


def test_moved_and_reindented_code_is_still_moved(git_repo: GitRepo) -> None:
    base = git_repo.commit("base", {"app/users.py": SQL_FN})
    indented = "".join(f"    {ln}" if ln else ln for ln in SQL_FN.splitlines(keepends=True))
    git_repo.write("app/users.py", "class Users:\n" + indented.replace("(cur, name)", "(cur, name)"))
    git_repo.commit("wrap in a class")
    assert not review(git_repo, base).draft.findings


def test_a_line_changed_while_moving_is_new(git_repo: GitRepo) -> None:
    base = git_repo.commit(
        "base", {"app/users.py": SQL_FN.replace('f"SELECT', '"SELECT').replace("'{name}'\"", '%s", (name,)')}
    )
    moved = SQL_FN  # same block, but the query line now formats the name in
    git_repo.write("app/users.py", "")
    git_repo.write("app/db.py", moved)
    git_repo.commit("move and change")
    assert ("app/db.py", "py-sql-format") in sources(review(git_repo, base))


# -- .gitattributes from the base branch ----------------------------------------------------------------


def test_linguist_attributes_of_the_base_branch_skip_files(git_repo: GitRepo) -> None:
    attrs = (
        "api/gen/** linguist-generated=true\n"
        "third/** linguist-vendored\n"
        "snap/*.py -diff\n"
        "vendor/ours/** linguist-vendored=false\n"
    )
    base = git_repo.commit("base", {".gitattributes": attrs, "README.md": "x\n"})
    git_repo.commit(
        "head",
        {
            "api/gen/client.py": SQL_FN,
            "third/lib.py": SQL_FN,
            "snap/data.py": SQL_FN,
            "vendor/ours/handlers.py": SQL_FN,
            "app/users.py": SQL_FN,
        },
    )
    outcome = review(git_repo, base)
    assert skipped(outcome) == {
        "api/gen/client.py": "generated (linguist-generated in .gitattributes)",
        "third/lib.py": "vendored (linguist-vendored in .gitattributes)",
        "snap/data.py": "not diffed (-diff in .gitattributes)",
    }
    assert {p for p, _ in sources(outcome)} == {"vendor/ours/handlers.py", "app/users.py"}
    # listed as such, with the reason, in the review
    assert "linguist-generated in .gitattributes" in outcome.draft.body
    data = json.loads(render(outcome, "json"))
    assert {"path": "third/lib.py", "reason": "vendored (linguist-vendored in .gitattributes)"} in data[
        "files"
    ]["skipped"]


def test_p04_a_pull_request_cannot_mark_its_own_files_generated(git_repo: GitRepo) -> None:
    base = git_repo.commit("base", {"README.md": "x\n"})
    git_repo.commit("head", {".gitattributes": "app/** linguist-generated\n", "app/users.py": SQL_FN})
    outcome = review(git_repo, base)
    assert ("app/users.py", "py-sql-format") in sources(outcome)


def test_nested_gitattributes_are_relative_to_their_directory(git_repo: GitRepo) -> None:
    base = git_repo.commit("base", {"web/.gitattributes": "*.py linguist-generated\n", "README.md": "x\n"})
    git_repo.commit("head", {"web/x/views.py": SQL_FN, "app/views.py": SQL_FN})
    assert set(skipped(review(git_repo, base))) == {"web/x/views.py"}


def test_a_change_deep_inside_a_generated_file_is_skipped_by_its_marker(git_repo: GitRepo) -> None:
    body = "".join(f"export const v{i} = {i};\n" for i in range(400))
    gen = "// 1776520206\n// GENERATED CODE - DO NOT MODIFY BY HAND\n" + body
    base = git_repo.commit("base", {"plugins/types/generated/types.d.ts": gen, "src/app.ts": body})
    new_line = "export const q = eval(req.query.x);\n"
    git_repo.commit(
        "head",
        {"plugins/types/generated/types.d.ts": gen + new_line, "src/app.ts": body + new_line},
    )
    outcome = review(git_repo, base)
    assert skipped(outcome) == {"plugins/types/generated/types.d.ts": "generated"}
    assert {p for p, _ in sources(outcome)} <= {"src/app.ts"}


# -- minified bundles -------------------------------------------------------------------------------------

MINIFIED = (
    '!function(e){"use strict";var t=e.db,r=e.cfg||{};function n(o){return t.query('
    '"SELECT * FROM t WHERE id="+o.id).then(function(e){return e.rows[0]})}function i(o,a){return '
    'r.retry?n(o).catch(function(){return n(o)}):n(o)}var c={password:"hunter2-admin",user:"svc"};'
    "e.exports={find:n,get:i,cfg:c}}(module);"
) * 20


def test_minified_and_hashed_bundles_are_skipped_and_listed(git_repo: GitRepo) -> None:
    base = git_repo.commit("base", {"README.md": "x\n"})
    git_repo.commit(
        "head",
        {
            "webapp/dist/assets/index-9c1f3a7b.js": MINIFIED + "\n",
            "webapp/static/app.js": MINIFIED + "\n",  # no telling name: recognised by its text
            "webapp/src/long.ts": "export const sql = `" + "SELECT a, b, c FROM t WHERE x = 1 " * 30 + "`;\n",
        },
    )
    outcome = review(git_repo, base)
    assert skipped(outcome) == {
        "webapp/dist/assets/index-9c1f3a7b.js": "generated",
        "webapp/static/app.js": "minified",
    }
    assert not any(p.startswith("webapp/dist") or p == "webapp/static/app.js" for p, _ in sources(outcome))


# -- dialect from the base branch's settings ---------------------------------------------------------------

DJANGO_INDEX = (
    "from django.db import migrations\n\n\n"
    "class Migration(migrations.Migration):\n"
    "    dependencies = [('shop', '0001_initial')]\n"
    "    operations = [\n"
    "        migrations.RunSQL('CREATE INDEX shop_order_user ON shop_order (user_id);'),\n"
    "    ]\n"
)


@pytest.mark.parametrize(
    ("engine", "flagged"),
    [
        ("django.db.backends.mysql", False),
        ("django.db.backends.sqlite3", False),
        ("django.db.backends.postgresql", True),
    ],
)
def test_django_engine_in_the_base_settings_decides(git_repo: GitRepo, engine: str, flagged: bool) -> None:
    settings = f"DATABASES = {{'default': {{'ENGINE': '{engine}', 'NAME': 'shop'}}}}\n"
    base = git_repo.commit("base", {"config/settings/base.py": settings})
    git_repo.commit("head", {"shop/migrations/0002_idx.py": DJANGO_INDEX})
    outcome = review(git_repo, base)
    found = {f.source: f.confidence for f in outcome.rule_findings}
    assert ("mig-index-not-concurrent" in found) is flagged
    if flagged:
        assert found["mig-index-not-concurrent"] == 0.7


def test_rails_production_adapter_wins_over_development_sqlite(git_repo: GitRepo) -> None:
    yml = (
        "development:\n  adapter: sqlite3\n  database: db/dev.sqlite3\n"
        "production:\n  adapter: mysql2\n  database: app\n"
    )
    base = git_repo.commit("base", {"config/database.yml": yml})
    migration = (
        "class AddIdx < ActiveRecord::Migration[7.1]\n"
        "  def change\n    add_index :orders, :user_id\n  end\nend\n"
    )
    git_repo.commit("head", {"db/migrate/20240104000000_idx.rb": migration})
    assert "mig-index-not-concurrent" not in {f.source for f in review(git_repo, base).rule_findings}


# -- repository rules --------------------------------------------------------------------------------------

RULE = """\
id: no-print
language: python
severity: warning
message: Use the structured logger, not print.
note: print() output never reaches the log pipeline.
rule:
  pattern: print($$$ARGS)
  inside:
    kind: function_definition
    stopBy: end
metadata:
  category: observability
  confidence: 0.9
"""
HANDLER = (
    "import logging\n\n\ndef handle(req):\n    print(req)\n    return 1\n\n\nprint('module level is fine')\n"
)


def test_repository_rules_from_the_base_branch_run_offline(git_repo: GitRepo) -> None:
    base = git_repo.commit("base", {".github/backend-review/rules/logging.yml": RULE, "README.md": "x\n"})
    git_repo.commit("head", {"app/handlers.py": HANDLER})
    outcome = review(git_repo, base)
    [f] = [r.finding for r in outcome.draft.findings if r.finding.source == "repo:no-print"]
    assert (f.path, f.line, f.severity, f.category, f.confidence) == (
        "app/handlers.py",
        5,
        "medium",
        "observability",
        0.9,
    )
    assert f.title == "Use the structured logger, not print."
    assert "log pipeline" in f.body and f.evidence == "    print(req)"
    assert any(c.path == "app/handlers.py" and c.line == 5 for c in outcome.draft.comments)


def test_p04_a_pull_request_cannot_add_or_change_the_rules_that_review_it(git_repo: GitRepo) -> None:
    base = git_repo.commit("base", {".github/backend-review/rules/logging.yml": RULE, "README.md": "x\n"})
    git_repo.commit(
        "head",
        {
            ".github/backend-review/rules/logging.yml": RULE.replace(
                "print($$$ARGS)", "nothing_matches_this()"
            ),
            ".github/backend-review/rules/new.yml": RULE.replace("no-print", "no-return").replace(
                "print($$$ARGS)", "return $X"
            ),
            "app/handlers.py": HANDLER,
        },
    )
    ids = {r.finding.source for r in review(git_repo, base).draft.findings}
    assert "repo:no-print" in ids and "repo:no-return" not in ids


def test_p04_a_broken_rule_file_is_a_visible_note_not_a_failure(
    git_repo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = "id: bad\nlanguage: python\nmessage: x\nrule:\n  regex: '(a)\\1'\n"
    base = git_repo.commit(
        "base",
        {".github/backend-review/rules/bad.yml": broken, ".github/backend-review/rules/ok.yml": RULE},
    )
    git_repo.commit("head", {"app/handlers.py": HANDLER})
    outcome = review(git_repo, base)
    assert "repo:no-print" in {r.finding.source for r in outcome.draft.findings}
    assert "bad.yml" in outcome.draft.body and "backreferences are not supported" in outcome.draft.body
    assert "bad.yml`: ast-grep rejects it" in capsys.readouterr().err  # and on the terminal


def test_repo_without_a_base_tree_reads_nothing(tmp_path: Path) -> None:
    # a review of a repository whose base has none of these files behaves as before
    from tests.support.gitrepo import init_repo

    repo = init_repo(tmp_path / "r")
    base = repo.commit("base", {"README.md": "x\n"})
    repo.commit("head", {"app/users.py": SQL_FN})
    assert ("app/users.py", "py-sql-format") in sources(review(repo, base))


def test_a_line_only_respaced_by_a_formatter_is_not_new(git_repo: GitRepo) -> None:
    # maybe-finance/maybe 7aca5a22 "Fix array bracket spacing in migrations": rubocop, not a new index
    before = (
        "class AddIdx < ActiveRecord::Migration[7.2]\n"
        "  def change\n    add_index :devices, [:user_id, :device_id]\n  end\nend\n"
    )
    base = git_repo.commit("base", {"db/migrate/20250618110104_add_idx.rb": before})
    git_repo.commit(
        "head",
        {
            "db/migrate/20250618110104_add_idx.rb": before.replace(
                "[:user_id, :device_id]", "[ :user_id, :device_id ]"
            )
        },
    )
    outcome = review(git_repo, base)
    assert "mig-index-not-concurrent" in {f.source for f in outcome.rule_findings}
    assert not outcome.draft.findings
    git_repo.commit(
        "change", {"db/migrate/20250618110104_add_idx.rb": before.replace(":device_id]", ":kind]")}
    )
    assert review(git_repo, "HEAD~1").draft.findings  # a real edit of the line is new
