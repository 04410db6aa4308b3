"""The offline reviewer's contract: rule table, language mapping, what it reports on, demo defects, speed."""

from __future__ import annotations

import dataclasses
import time

import pytest

from bot.models import Category, DiffLine, FileDiff, FileStatus, Hunk, Severity
from bot.review import fingerprint
from bot.rules import RULES, Rule, language_of, run_rules
from tests.rules.util import changeset, file_diff, findings, hits, rule_ids

DEMO_SERVICE = """\
import hashlib
import logging

import jwt
import requests

logger = logging.getLogger(__name__)


def find_user(cursor, email):
    query = f"SELECT id, email FROM users WHERE email = '{email}'"
    cursor.execute(query)
    return cursor.fetchone()


def hash_password(password):
    return hashlib.md5(password.encode()).hexdigest()


def notify(url, payload):
    requests.post(url, json=payload)


def current_user(token):
    claims = jwt.decode(token, options={"verify_signature": False})
    return claims["sub"]


def best_effort(fn):
    try:
        fn()
    except Exception:
        pass


def verify(signature, expected, token):
    if signature == expected:
        logger.info("login token=%s", token)
        return True
    return False
"""

DEMO_MIGRATION = """\
ALTER TABLE users DROP COLUMN legacy_id;
CREATE INDEX idx_orders_user ON orders(user_id);
"""


def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_rule_table_is_complete_and_unique() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids)) >= 25
    known = {"python", "javascript", "typescript", "go", "java", "ruby", "sql"}
    for r in RULES:
        assert isinstance(r, Rule) and dataclasses.is_dataclass(r)
        assert isinstance(r.category, Category) and isinstance(r.severity, Severity)
        assert r.languages <= known
        assert r.title and r.message and r.fix and 0 < r.confidence <= 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        RULES[0].id = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("app/x.py", "python"),
        ("web/a.jsx", "javascript"),
        ("web/a.mjs", "javascript"),
        ("web/a.tsx", "typescript"),
        ("cmd/main.go", "go"),
        ("src/A.java", "java"),
        ("app/models/u.rb", "ruby"),
        ("db/V1__init.SQL", "sql"),
        ("README.md", None),
        ("Makefile", None),
    ],
)
def test_language_of(path: str, language: str | None) -> None:
    assert language_of(path) == language


def test_demo_service_defects_are_all_caught() -> None:
    found = {(f.source, f.line) for f in findings("app/service.py", DEMO_SERVICE)}
    expected = {
        ("py-sql-format", _line_of(DEMO_SERVICE, "query = f")),
        ("weak-password-hash", _line_of(DEMO_SERVICE, "hashlib.md5")),
        ("py-http-no-timeout", _line_of(DEMO_SERVICE, "requests.post")),
        ("jwt-unverified", _line_of(DEMO_SERVICE, "verify_signature")),
        ("py-swallowed-exception", _line_of(DEMO_SERVICE, "except Exception")),
        ("timing-unsafe-compare", _line_of(DEMO_SERVICE, "signature == expected")),
        ("secret-in-log", _line_of(DEMO_SERVICE, "logger.info")),
    }
    assert found == expected  # and nothing else: clean lines stay quiet


def test_demo_migration_defects_are_all_caught() -> None:
    assert hits("migrations/002_cleanup.sql", DEMO_MIGRATION) == {
        ("mig-drop", 1),
        ("mig-index-not-concurrent", 2),
    }


def test_finding_fields_come_from_the_rule_and_the_head_line() -> None:
    by_id = {r.id: r for r in RULES}
    (f,) = findings("app/notify.py", "def notify(url):\n    requests.get(url)   \n")
    r = by_id[f.source]
    assert (f.path, f.line) == ("app/notify.py", 2)
    assert (f.severity, f.category, f.title, f.confidence) == (r.severity, r.category, r.title, r.confidence)
    assert f.body == f"{r.message} {r.fix_for('python')}"
    assert f.evidence == "    requests.get(url)"  # trailing whitespace only is stripped
    assert f.suggestion == "    requests.get(url, timeout=10)"


def test_suggestions_are_whole_line_replacements() -> None:
    (f,) = findings("app/conf.py", "        data = yaml.load(fh)")
    assert f.suggestion == "        data = yaml.safe_load(fh)"
    (g,) = findings("app/n.py", "requests.post(\n    url,\n)")
    assert g.suggestion is None  # the call spans lines: no mechanical single-line fix


def test_only_added_lines_are_reported() -> None:
    fd = file_diff(
        "app/service.py",
        """
 def old(cursor, email):
-    requests.get(url)
     cursor.execute(f"SELECT * FROM users WHERE email = '{email}'")
+    requests.get(url)
""",
        status=FileStatus.MODIFIED,
        marked=True,
    )
    assert {(f.source, f.line) for f in run_rules(changeset(fd))} == {("py-http-no-timeout", 3)}


def test_context_lines_inform_added_lines() -> None:
    # The SQL is built on a context line; the added execute() line is where the finding lands.
    fd = file_diff(
        "app/db.py",
        """
 def find(cursor, name):
     sql = f"SELECT * FROM users WHERE name = '{name}'"
+    cursor.execute(sql)
""",
        status=FileStatus.MODIFIED,
        marked=True,
    )
    assert {(f.source, f.line) for f in run_rules(changeset(fd))} == {("py-sql-format", 3)}


def test_skipped_binary_and_deleted_files_are_ignored() -> None:
    code = "requests.get(url)"
    skipped = dataclasses.replace(file_diff("vendor/x.py", code), skip_reason="vendored")
    binary = dataclasses.replace(file_diff("app/x.py", code), is_binary=True)
    deleted = FileDiff(
        "app/gone.py",
        None,
        FileStatus.DELETED,
        False,
        (Hunk(1, 1, 0, 0, "", (DiffLine("-", 1, None, code),)),),
        0,
        1,
    )
    assert run_rules(changeset(skipped, binary, deleted)) == []


def test_comment_lines_are_not_reported_but_keys_in_comments_are() -> None:
    assert hits("app/x.py", "# requests.get(url)") == set()
    key = "// -----BEGIN OPENSSH PRIVATE KEY-----\n// b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"
    assert rule_ids("app/x.js", key) == {"private-key"}  # a header alone is no key (test_false_positives)


@pytest.mark.parametrize(
    "path",
    [
        "tests/test_login.py",
        "app/test_login.py",
        "pkg/login_test.go",
        "web/login.spec.ts",
        "spec/models/u_spec.rb",
    ],
)
def test_credential_and_debug_rules_skip_test_files(path: str) -> None:
    code = {
        ".py": 'PASSWORD = "s3cr3t-Pa55"\napp.run(debug=True)',
        ".go": 'password := "s3cr3t-Pa55"',
        ".ts": "const password = 's3cr3t-Pa55';",
        ".rb": "password = 's3cr3t-Pa55'",
    }["." + path.rsplit(".", 1)[1]]
    assert rule_ids(path, code) == set()
    assert rule_ids(
        path.replace("test", "x").replace("spec", "src"), code
    )  # the same code elsewhere is flagged


def test_swallowed_exceptions_are_reported_in_tests_too() -> None:
    assert rule_ids("tests/test_x.py", "try:\n    f()\nexcept Exception:\n    pass") == {
        "py-swallowed-exception"
    }


def test_migration_rules_apply_only_to_migration_files() -> None:
    assert rule_ids("app/schema.sql", DEMO_MIGRATION) == set()
    assert rule_ids("db/migrate/20240101_x.rb", "    remove_column :users, :legacy_id") == {"mig-drop"}
    assert rule_ids("app/models/user.rb", "    remove_column :users, :legacy_id") == set()


def test_django_add_field_after_create_model_is_fine() -> None:
    code = """
operations = [
    migrations.CreateModel(name="Book", fields=[("id", models.AutoField(primary_key=True))]),
    migrations.AddField(
        model_name="book",
        name="author",
        field=models.ForeignKey(on_delete=models.CASCADE, to="app.author"),
    ),
]
"""
    assert rule_ids("app/migrations/0001_initial.py", code) == set()


def test_fk_rule_needs_the_whole_migration_in_view() -> None:
    code = "ALTER TABLE orders ADD COLUMN coupon_id bigint REFERENCES coupons(id);"
    assert rule_ids("migrations/7.sql", code) == {"mig-fk-no-index"}
    assert rule_ids("migrations/7.sql", code, status=FileStatus.MODIFIED) == set()


def test_findings_are_ordered_by_path_and_line() -> None:
    cs = changeset(
        file_diff("b.py", "requests.get(u)\nrequests.get(u)"),
        file_diff("a.py", "requests.get(u)"),
    )
    assert [(f.path, f.line) for f in run_rules(cs)] == [("a.py", 1), ("b.py", 1), ("b.py", 2)]


def test_large_changeset_is_fast() -> None:
    # ~500k added lines over several languages, a realistic mix of mostly clean code.
    py = "\n".join(
        [
            "def handler_{n}(request, session):",
            "    user = session.get(User, request.user_id)",
            '    data = {{"id": user.id, "name": user.name}}',
            "    if not data:",
            '        raise ValueError("missing")',
            "    return data",
            "",
        ]
    )
    js = "function f{n}(a, b) {{\n  const x = a + b;\n  return x * 2;\n}}\n"
    sql = "ALTER TABLE t{n} ADD COLUMN c int;\n"
    files = []
    for k in range(10):
        files.append(file_diff(f"app/m{k}.py", "\n".join(py.format(n=n) for n in range(4500))))
        files.append(file_diff(f"web/m{k}.ts", "\n".join(js.format(n=n) for n in range(3500))))
        files.append(file_diff(f"migrations/{k}.sql", "".join(sql.format(n=n) for n in range(2000))))
    cs = changeset(*files)
    total = sum(f.additions for f in cs.files)
    assert total >= 500_000
    start = time.perf_counter()
    assert run_rules(cs) == []
    # ~1.5 s alone on the 2-core box; the bound leaves room for a loaded CI machine.
    assert time.perf_counter() - start < 15.0


def test_p01_evidence_and_suggestions_keep_the_head_line_with_its_comment() -> None:
    (f,) = findings("app/n.py", "requests.get(url)  # see f(x), don't")
    assert f.evidence == "requests.get(url)  # see f(x), don't"
    assert f.suggestion == "requests.get(url, timeout=10)  # see f(x), don't"
    (g,) = findings("app/conf.py", "data = yaml.load(fh)  # trusted input")
    assert g.suggestion == "data = yaml.safe_load(fh)  # trusted input"


def test_p01_many_comment_lines_do_not_push_code_out_of_a_window() -> None:
    """Statement limits and look-around windows count code lines, so padding with comments hides nothing."""
    pad = "\n".join(["    # padding"] * 45)
    add_field = f"migrations.AddField(\n    model_name='user',\n{pad}\n    field=models.IntegerField(),\n),"
    assert rule_ids("app/migrations/0009_add.py", add_field) == {"mig-not-null-no-default"}
    cors = f"app.add_middleware(\n    Cors,\n    allow_origins=['*'],\n{pad}\n    allow_credentials=True)"
    assert rule_ids("app/main.py", cors) == {"cors-wildcard-credentials"}
    swallow = f"try:\n    run()\nexcept Exception:\n{pad}\n    pass"
    assert rule_ids("app/jobs.py", swallow) == {"py-swallowed-exception"}
    sql = "ALTER TABLE users ADD COLUMN tenant_id bigint\n" + "  -- padding\n" * 8 + "  NOT NULL;"
    assert rule_ids("migrations/004.sql", sql) == {"mig-not-null-no-default"}


# Names that belong to one language's libraries: a fix naming another language's is the wrong fix.
_FAMILY = {
    "python": "python",
    "javascript": "js",
    "typescript": "js",
    "go": "go",
    "java": "java",
    "ruby": "ruby",
}
_MARKERS = {
    "python": (
        "(Python)",
        "PyJWT",
        "hashlib",
        "hmac.compare_digest",
        "secrets.",
        "os.environ",
        "Django",
        "Alembic",
        "op.create_index",
        "json.loads",
        "ast.literal_eval",
        "verify=",
        "server_default",
        "argon2-cffi",
    ),
    "js": (
        "(Node)",
        "jsonwebtoken",
        "jwt.verify",
        "crypto.",
        "process.env",
        "Knex",
        "https.Agent",
        "rejectUnauthorized",
        "cors({",
        "Buffer",
    ),
    "go": (
        "(Go)",
        "subtle.",
        "crypto/rand",
        "golang.org",
        "InsecureSkipVerify",
        "RootCAs",
        "os.Getenv",
        "jwt.Parse",
        "[]string",
        "slog.",
    ),
    "java": (
        "(Java)",
        "MessageDigest",
        "JWT.require",
        "PasswordEncoder",
        "System.getenv",
        "TrustManager",
        "SSLContext",
        "Algorithm.",
    ),
    "ruby": (
        "(Ruby)",
        "ActiveSupport",
        "Rails",
        "has_secure_password",
        "ENV.fetch",
        "add_index",
        "disable_ddl_transaction",
        "VERIFY_PEER",
        "JWT.decode(token, key, true",
    ),
}


def _foreign_markers(text: str, language: str | None) -> list[str]:
    own = _FAMILY.get(language or "")
    return [m for fam, marks in _MARKERS.items() if fam != own for m in marks if m in text]


@pytest.mark.parametrize("r", [r for r in RULES if len(r.languages) > 1], ids=lambda r: r.id)
def test_multi_language_rule_fix_names_only_the_findings_language(r: Rule) -> None:
    # The generic fix is the fallback, so it names no language's API; per-language fixes cover every
    # language the rule runs on, and each names only its own language's APIs.
    assert _foreign_markers(r.fix, None) == [], f"{r.id}: generic fix lists languages; add fixes="
    if r.fixes:
        assert set(r.fixes) == r.languages
    for lang in r.languages:
        assert _foreign_markers(r.fix_for(lang), lang) == [], (r.id, lang)


def test_fix_for_falls_back_to_the_generic_fix() -> None:
    r = next(r for r in RULES if r.id == "timing-unsafe-compare")
    assert r.fix_for("go") != r.fix_for("python") and r.fix_for(None) == r.fix == r.fix_for("sql")
    assert r.fix_for("typescript") == r.fix_for("javascript")  # one entry serves both


def test_python_jwt_finding_names_the_pyjwt_fix() -> None:
    (f,) = findings("app/auth.py", 'claims = jwt.decode(token, options={"verify_signature": False})')
    assert f.source == "jwt-unverified"
    assert "jwt.decode(token, key, algorithms=[" in f.body
    for other in ("jwt.verify", "jwt.Parse", "JWT.require", "(Go)", "(Java)", "(Node)", "JWT.decode"):
        assert other not in f.body


def test_go_timing_compare_finding_names_subtle_only() -> None:
    (f,) = findings("svc/auth.go", "func ok(sig, expected string) bool {\n\treturn sig == expected\n}")
    assert f.source == "timing-unsafe-compare"
    assert "subtle.ConstantTimeCompare" in f.body
    for other in ("hmac.compare_digest", "timingSafeEqual", "MessageDigest", "secure_compare", "(Python)"):
        assert other not in f.body


def test_migration_fix_follows_the_migration_flavour() -> None:
    rails = findings("db/migrate/1_idx.rb", "add_index :orders, :user_id")
    (sql,) = findings("migrations/002.sql", "CREATE INDEX idx ON orders(user_id);")
    assert [f.source for f in rails] == ["mig-index-not-concurrent"]
    assert "algorithm: :concurrently" in rails[0].body and "Alembic" not in rails[0].body
    assert "CONCURRENTLY" in sql.body and "Alembic" not in sql.body and "algorithm:" not in sql.body


def test_fingerprints_do_not_depend_on_the_fix_text() -> None:
    # Pinned from the release before per-language fixes: open review threads must keep matching.
    got = {(f.source, f.line): fingerprint(f) for f in findings("app/service.py", DEMO_SERVICE)}
    assert got[("jwt-unverified", 25)] == "fc5a623bf57824f8"
    assert got[("timing-unsafe-compare", 37)] == "37c1c83f644d8440"
    (g,) = findings(
        "svc/auth.go", "package a\nfunc ok(sig, expected string) bool {\n\treturn sig == expected\n}"
    )
    assert fingerprint(g) == "5a86263074ad6925"
    assert fingerprint(dataclasses.replace(g, body="anything else")) == fingerprint(g)
