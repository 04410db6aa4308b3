"""Every false positive seen on real repositories (issue 7) as a must-not-flag case, each beside the
nearest must-flag case, so the fix is the class and not the example."""

from __future__ import annotations

import pytest

from bot.models import FileStatus
from bot.rules import ProjectDialects, run_rules
from bot.rules.dialect import MYSQL, POSTGRES, SQLITE
from bot.rules.migrations import UNKNOWN_DIALECT_CONFIDENCE
from tests.rules.util import changeset, file_diff, findings, rule_ids

# -- "hard-coded credential" in test helpers -----------------------------------------------------------

GO_USER = 'package {pkg}\n\n{imports}\nvar admin = User{{\n\tName:     "admin",\n\tPassword: "admin",\n}}\n'


@pytest.mark.parametrize(
    ("path", "imports"),
    [
        ("internal/testutil/users.go", ""),  # a test utility package
        ("pkg/testhelpers/fixtures.go", ""),
        ("internal/store/helpers.go", 'import "testing"\n'),  # helper beside the code, imports testing
        ("internal/api/mocks/user.go", ""),
        ("e2e/setup.go", ""),
    ],
)
def test_fake_password_in_test_helpers_is_not_a_leak(path: str, imports: str) -> None:
    code = GO_USER.format(pkg="x", imports=imports)
    assert "hardcoded-secret" not in rule_ids(path, code)


def test_the_same_password_in_service_code_is_flagged() -> None:
    assert "hardcoded-secret" in rule_ids("internal/store/seed.go", GO_USER.format(pkg="store", imports=""))


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("tests/helpers.py", 'ADMIN = {"password": "admin123!"}'),
        ("app/test_utils.py", 'PASSWORD = "hunter2hunter2"'),
        ("src/api/testHelpers.ts", 'export const creds = { password: "s3cret-pw" };'),
        ("spec/support/auth.rb", 'PASSWORD = "s3cret-pw"'),
        (
            "app/factories.py",
            'import factory\n\nclass UserFactory(factory.Factory):\n    password = "pw-1234"',
        ),
    ],
)
def test_credentials_in_test_support_code_in_other_languages(path: str, code: str) -> None:
    assert "hardcoded-secret" not in rule_ids(path, code)


def test_test_code_keeps_its_correctness_findings() -> None:
    # a swallowed exception is a bug in a test helper too: only credential-like rules are off there
    code = "import pytest\n\n\ndef load():\n    try:\n        run()\n    except Exception:\n        pass\n"
    assert "py-swallowed-exception" in rule_ids("tests/helpers.py", code)
    assert "py-swallowed-exception" in rule_ids("app/support.py", code)  # test code by its import


# -- CONCURRENTLY on MySQL and SQLite ------------------------------------------------------------------

INDEX = "CREATE INDEX idx_orders_user ON orders(user_id);"


@pytest.mark.parametrize(
    "path",
    ["db/migrations/mysql/0005_idx.sql", "migrations/sqlite/0005_idx.sql", "migrate/0005_idx.mysql.sql"],
)
def test_no_concurrently_advice_where_the_path_names_another_dialect(path: str) -> None:
    assert "mig-index-not-concurrent" not in rule_ids(path, INDEX)


@pytest.mark.parametrize(
    "code",
    [
        "CREATE TABLE `orders` (`id` int NOT NULL AUTO_INCREMENT) ENGINE=InnoDB;\n" + INDEX,
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT);\n" + INDEX,
        "PRAGMA foreign_keys=off;\n" + INDEX,
    ],
)
def test_no_concurrently_advice_where_the_migration_is_written_for_another_dialect(code: str) -> None:
    assert "mig-index-not-concurrent" not in rule_ids("migrations/0005_idx.sql", code)


def _run(path: str, code: str, project: ProjectDialects) -> dict[str, float]:
    found = run_rules(changeset(file_diff(path, code)), project)
    return {f.source: f.confidence for f in found}


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("migrations/0005_idx.sql", INDEX),
        ("db/migrate/20240104_idx.rb", "    add_index :orders, :user_id"),
        ("alembic/versions/y_idx.py", "op.create_index('ix_orders_user', 'orders', ['user_id'])"),
    ],
)
def test_project_settings_decide_the_dialect(path: str, code: str) -> None:
    fw = {"migrations/0005_idx.sql": "drivers", "db/migrate/20240104_idx.rb": "rails"}.get(path, "alembic")
    for dialect in (MYSQL, SQLITE):
        project = ProjectDialects({fw: frozenset({dialect})})
        assert "mig-index-not-concurrent" not in _run(path, code, project), dialect
    on_postgres = _run(path, code, ProjectDialects({fw: frozenset({POSTGRES})}))
    assert on_postgres["mig-index-not-concurrent"] == 0.7  # the rule's own confidence
    unknown = _run(path, code, ProjectDialects())
    assert unknown["mig-index-not-concurrent"] == UNKNOWN_DIALECT_CONFIDENCE  # a hint, not a comment


def test_fk_index_rule_is_postgres_only() -> None:
    code = "ALTER TABLE orders ADD COLUMN coupon_id bigint REFERENCES coupons(id);"
    assert "mig-fk-no-index" not in _run(
        "migrations/006.sql", code, ProjectDialects({"drivers": frozenset({MYSQL})})
    )
    assert "mig-fk-no-index" in _run(
        "migrations/006.sql", code, ProjectDialects({"drivers": frozenset({POSTGRES})})
    )


# -- SQLite's table rebuild ------------------------------------------------------------------------------

REBUILD_NEW_FIRST = """\
CREATE TABLE new_users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);
INSERT INTO new_users (id, email) SELECT id, email FROM users;
DROP TABLE users;
ALTER TABLE new_users RENAME TO users;
"""
REBUILD_OLD_FIRST = """\
ALTER TABLE "users" RENAME TO "users_old";
CREATE TABLE "users" (id INTEGER PRIMARY KEY, email TEXT NOT NULL);
INSERT INTO "users" (id, email)
  SELECT id, email
  FROM "users_old";
DROP TABLE "users_old";
"""


@pytest.mark.parametrize("code", [REBUILD_NEW_FIRST, REBUILD_OLD_FIRST])
def test_table_rebuild_is_neither_drop_nor_rename(code: str) -> None:
    assert not rule_ids("migrations/0007_users.sql", code) & {"mig-drop", "mig-rename"}


def test_a_rebuild_that_does_not_copy_the_rows_still_drops_them() -> None:
    code = REBUILD_NEW_FIRST.replace("INSERT INTO new_users (id, email) SELECT id, email FROM users;\n", "")
    assert {"mig-drop"} <= rule_ids("migrations/0007_users.sql", code)


def test_a_plain_drop_beside_a_rebuild_is_still_flagged() -> None:
    ids = {
        (f.source, f.line) for f in findings("migrations/0007.sql", REBUILD_NEW_FIRST + "DROP TABLE audit;")
    }
    assert ("mig-drop", 5) in ids
    assert ("mig-drop", 3) not in ids


# -- Django AddField: what Django fills existing rows with -------------------------------------------------


def _addfield(field: str) -> str:
    return f"migrations.AddField(\n    model_name='user',\n    name='nickname',\n    field={field},\n),"


@pytest.mark.parametrize(
    "field",
    [
        "models.CharField(blank=True, max_length=50)",  # Django fills '' (effective_default)
        "models.TextField(blank=True)",
        "models.SlugField(blank=True)",
        "models.EmailField(max_length=254, blank=True)",
        "models.URLField(blank=True)",
        "models.FileField(upload_to='x', blank=True)",
        "models.DateTimeField(auto_now_add=True)",  # now()
        "models.DateField(auto_now=True)",
        "models.IntegerField(default=0)",
        "models.BooleanField(default=False)",
        "models.CharField(max_length=5, default='x')",
        "models.IntegerField(db_default=0)",
        "models.ForeignKey(null=True, on_delete=models.SET_NULL, to='app.team')",
        "models.GeneratedField(expression=F('a'), output_field=models.IntegerField(), db_persist=True)",
    ],
)
def test_django_fields_that_django_fills_for_existing_rows(field: str) -> None:
    assert "mig-not-null-no-default" not in rule_ids("app/migrations/0009_user_nickname.py", _addfield(field))


@pytest.mark.parametrize(
    "field",
    [
        "models.IntegerField(blank=True)",  # blank=True gives no default to a non-string field
        "models.BooleanField(blank=True)",
        "models.DateTimeField(blank=True)",
        "models.UUIDField(blank=True)",
        "models.ForeignKey(blank=True, on_delete=models.CASCADE, to='app.team')",
        "models.CharField(max_length=50)",  # neither default nor blank
    ],
)
def test_django_fields_with_no_value_for_existing_rows(field: str) -> None:
    assert "mig-not-null-no-default" in rule_ids("app/migrations/0009_user_nickname.py", _addfield(field))


# -- query in a loop over a small constant collection --------------------------------------------------

DATA_MIGRATION = """\
STATUS_MAP = {"new": "open", "done": "closed", "wontfix": "closed"}


def forwards(apps, schema_editor):
    Ticket = apps.get_model("tracker", "Ticket")
    for old, new in STATUS_MAP.items():
        Ticket.objects.filter(status=old).update(status=new)
    for kind in ("bug", "task"):
        Ticket.objects.filter(kind=kind).update(priority=1)
"""


def test_bulk_update_per_entry_of_a_constant_is_not_n_plus_one() -> None:
    assert "py-query-in-loop" not in rule_ids("tracker/migrations/0012_statuses.py", DATA_MIGRATION)


@pytest.mark.parametrize(
    "loop",
    [
        "for t in Ticket.objects.all():",
        "for t in tickets:",
        "for t in (await session.execute(q)).scalars():",
    ],
)
def test_loops_over_data_still_flag_a_query_per_row(loop: str) -> None:
    code = (
        f"def forwards(apps, schema_editor):\n    {loop}\n        Ticket.objects.filter(id=t).update(n=1)\n"
    )
    assert "py-query-in-loop" in rule_ids("tracker/views.py", code)


# -- minified bundles and moved code: see tests/test_file_kinds.py and tests/test_moved_code.py -----------


def test_status_of_test_helper_does_not_matter() -> None:
    # a modified helper (not only a new one) is recognised by its import too
    code = GO_USER.format(pkg="x", imports='import "testing"\n')
    fd = file_diff("internal/store/helpers.go", code, status=FileStatus.MODIFIED)
    assert not [f for f in run_rules(changeset(fd)) if f.source == "hardcoded-secret"]


def test_bulk_update_per_key_of_an_imported_mapping_is_not_n_plus_one() -> None:
    # healthchecks 0121_fix_legacy_timezones_ii: one UPDATE per legacy zone name, not per row
    code = (
        "from hc.lib.tz import legacy_timezones\n\n\n"
        "def fix_tz(apps, schema_editor):\n"
        '    Check = apps.get_model("api", "Check")\n'
        "    for old, new in legacy_timezones.items():\n"
        "        Check.objects.filter(tz=old).update(tz=new)\n"
    )
    assert "py-query-in-loop" not in rule_ids("hc/api/migrations/0121_fix_legacy_timezones_ii.py", code)
    per_row = code.replace(".update(tz=new)", ".first()")  # a read per key is still a query per entry
    assert "py-query-in-loop" in rule_ids("hc/api/migrations/0121_fix_legacy_timezones_ii.py", per_row)


# -- seen on pocketbase (a Go service with a JS front end and built assets) -----------------------------


@pytest.mark.parametrize(
    "code",
    [
        'placeholder: "-----BEGIN PRIVATE KEY-----\\n...\\n-----END PRIVATE KEY-----",',  # a format hint
        'if (pem.startsWith("-----BEGIN PRIVATE KEY-----")) {',  # a prefix check
        'const hint = "-----BEGIN RSA PRIVATE KEY-----\\n<your key>\\n-----END RSA PRIVATE KEY-----";',
    ],
)
def test_a_pem_header_without_a_key_body_is_not_a_key(code: str) -> None:
    assert "private-key" not in rule_ids("ui/src/collections/oauth2/appleOptions.js", code)


def test_a_pem_key_with_its_body_is_flagged() -> None:
    code = (
        'const KEY = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC'
        '\\n-----END PRIVATE KEY-----";'
    )
    assert "private-key" in rule_ids("src/keys.js", code)


@pytest.mark.parametrize("value", ["123456789", "987654321", "12345678", "aaaaaaaa", "00000000"])
def test_sequential_or_repeated_values_are_obviously_fake(value: str) -> None:
    assert "hardcoded-secret" not in rule_ids(
        "ui/src/apiPreview/docsCreate.js", f'payload.password = "{value}";'
    )


def test_a_real_looking_password_in_app_code_is_flagged() -> None:
    assert "hardcoded-secret" in rule_ids("src/config.js", 'payload.password = "Tr0ub4dor&3";')


def test_one_comment_per_migration_rule_and_file() -> None:
    # maybe-finance/maybe d5b147f2 add_indexes_to_core_models: ten add_index lines, one decision
    code = "\n".join(f"    add_index :t{i}, :c" for i in range(10))
    found = [
        f
        for f in findings("db/migrate/20250718120146_add_indexes.rb", code)
        if f.source == "mig-index-not-concurrent"
    ]
    assert [f.line for f in found] == [1]
    assert found[0].body.endswith("The same applies to lines 2, 3, 4, 5, 6, 7, 8, 9, 10.")
    other = findings("db/migrate/20250718120147_other.rb", "    add_index :x, :c")
    assert [f.line for f in other if f.source == "mig-index-not-concurrent"] == [1]
