"""Which SQL dialect a migration runs on: from its own text, its path, its framework and the project's
settings in the BASE branch. Pure: the caller reads the settings files (:data:`SETTINGS_FILES` names them).

Postgres-only rules (index builds without CONCURRENTLY, unindexed foreign keys) must never fire on MySQL or
SQLite, where that syntax does not exist or the problem does not arise. The order of evidence, strongest
first: dialect-specific syntax in the migration itself, a dialect named in its path (``migrations/mysql/``),
the settings of the migration's framework (Django ``DATABASES``, ``alembic.ini``, Rails ``database.yml``,
``knexfile``, Sequelize config, Prisma datasource / ``migration_lock.toml``, Flyway / Spring URL), then the
project's database drivers (go.mod, package.json, requirements, Gemfile). Several dialects with no way to
choose, or nothing at all, leave it unknown: callers treat unknown conservatively.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import MappingProxyType

POSTGRES = "postgresql"
MYSQL = "mysql"
SQLITE = "sqlite"

# Settings files worth reading from the base tree, by file name (any directory) or glob-ish suffix.
SETTINGS_NAMES = frozenset(
    {
        "settings.py",
        "alembic.ini",
        "database.yml",
        "knexfile.js",
        "knexfile.ts",
        "knexfile.cjs",
        "knexfile.mjs",
        "schema.prisma",
        "migration_lock.toml",
        "flyway.conf",
        "flyway.toml",
        "application.properties",
        "application.yml",
        "application.yaml",
        ".sequelizerc",
        "go.mod",
        "package.json",
        "requirements.txt",
        "pyproject.toml",
        "Gemfile",
    }
)
MAX_SETTINGS_FILES = 40
MAX_SETTINGS_BYTES = 200_000


def is_settings_file(path: str) -> bool:
    """Whether a base-tree path may tell the project's database (kept cheap: names, not contents)."""
    p = PurePosixPath(path)
    if any(part in ("node_modules", "vendor", "third_party", ".git") for part in p.parts):
        return False
    name = p.name
    if name in SETTINGS_NAMES:
        return True
    if name.endswith(".py") and (p.parent.name == "settings" or name.startswith("settings")):
        return True
    return p.parent.name == "config" and name in ("config.json", "config.js")  # Sequelize


_ALIASES = {
    "postgresql": POSTGRES,
    "postgres": POSTGRES,
    "postgresql_psycopg2": POSTGRES,
    "postgis": POSTGRES,
    "pg": POSTGRES,
    "pgsql": POSTGRES,
    "cockroachdb": POSTGRES,
    "mysql": MYSQL,
    "mysql2": MYSQL,
    "mariadb": MYSQL,
    "trilogy": MYSQL,
    "sqlite": SQLITE,
    "sqlite3": SQLITE,
    "better-sqlite3": SQLITE,
    "spatialite": SQLITE,
}


def _canon(word: str) -> str | None:
    return _ALIASES.get(word.lower())


_DJANGO_ENGINE = re.compile(r"django(?:\.contrib\.gis)?\.db\.backends\.(\w+)")
_URL = re.compile(r"\b(postgres(?:ql)?|pgsql|mysql|mariadb|sqlite3?)(?:\+\w+)?:(?://|/)", re.I)
_JDBC = re.compile(r"\bjdbc:(postgresql|mysql|mariadb|sqlite)\b", re.I)
_RAILS_ADAPTER = re.compile(r"^\s*adapter:\s*['\"]?(\w+)", re.M)
_KNEX_CLIENT = re.compile(r"\bclient\s*:\s*['\"]([\w-]+)['\"]")
_SEQUELIZE = re.compile(r"[\"']?dialect[\"']?\s*:\s*[\"'](\w+)[\"']")
_PRISMA = re.compile(r"\bprovider\s*=\s*\"(\w+)\"")
_GO_DRIVERS = (
    (re.compile(r"github\.com/(?:lib/pq|jackc/pgx)\b"), POSTGRES),
    (re.compile(r"github\.com/go-sql-driver/mysql\b"), MYSQL),
    (re.compile(r"github\.com/mattn/go-sqlite3\b|modernc\.org/sqlite\b|glebarez/sqlite\b"), SQLITE),
)
_JS_DRIVERS = (
    (re.compile(r"\"(?:pg|postgres|@neondatabase/serverless)\"\s*:"), POSTGRES),
    (re.compile(r"\"(?:mysql2?|mariadb)\"\s*:"), MYSQL),
    (re.compile(r"\"(?:sqlite3|better-sqlite3|@libsql/client)\"\s*:"), SQLITE),
)
_PY_DRIVERS = (
    (re.compile(r"(?im)^\s*[\"']?(?:psycopg2?(?:-binary)?|psycopg\[[^\]]*\]|asyncpg|pg8000)\b"), POSTGRES),
    (re.compile(r"(?im)^\s*[\"']?(?:mysqlclient|pymysql|aiomysql|mysql-connector-python)\b"), MYSQL),
)
_RB_DRIVERS = (
    (re.compile(r"^\s*gem\s+['\"]pg['\"]", re.M), POSTGRES),
    (re.compile(r"^\s*gem\s+['\"](?:mysql2|trilogy)['\"]", re.M), MYSQL),
    (re.compile(r"^\s*gem\s+['\"]sqlite3['\"]", re.M), SQLITE),
)


@dataclass(frozen=True)
class ProjectDialects:
    """Dialects named by each framework's settings ("django", "rails", …) and by the drivers ("drivers")."""

    by_source: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))

    def for_framework(self, framework: str | None) -> str | None:
        """The framework's own settings first, then the drivers, then whatever all settings agree on."""
        if framework and framework in self.by_source:
            found = _choose(self.by_source[framework])
            if found:
                return found
        found = _choose(self.by_source.get("drivers", frozenset()))
        if found:
            return found
        return _choose(d for dialects in self.by_source.values() for d in dialects)


UNKNOWN_PROJECT = ProjectDialects()


def _choose(found: Iterable[str]) -> str | None:
    s = set(found)
    if len(s) == 1:
        return s.pop()
    # SQLite beside a server database is the development/test setup; the server one is production.
    s.discard(SQLITE)
    return s.pop() if len(s) == 1 else None


def _rails_production(text: str) -> set[str]:
    """Rails: the production section's adapter when there is one (development often uses sqlite3)."""
    m = re.search(r"^production:\s*\n((?:[ \t]+.*\n?|\s*\n)*)", text, re.M)
    if m:
        prod = {d for a in _RAILS_ADAPTER.findall(m.group(1)) if (d := _canon(a))}
        if prod:
            return prod
    return {d for a in _RAILS_ADAPTER.findall(text) if (d := _canon(a))}


def project_dialects(files: Mapping[str, str]) -> ProjectDialects:
    """What the settings files (base-tree path → text) say about the database, per framework."""
    out: dict[str, set[str]] = {}

    def add(source: str, dialects: Iterable[str | None]) -> None:
        out.setdefault(source, set()).update(d for d in dialects if d)

    for path, text in files.items():
        name = PurePosixPath(path).name
        if name.endswith(".py") and name not in ("pyproject.toml",):
            add("django", (_canon(e) for e in _DJANGO_ENGINE.findall(text)))
            if "DATABASE" in text and not _DJANGO_ENGINE.search(text):
                add("django", (_canon(u) for u in _URL.findall(text)))
        elif name == "alembic.ini":
            m = re.search(r"^\s*sqlalchemy\.url\s*=\s*(.+)$", text, re.M)
            if m:
                add("alembic", (_canon(u) for u in _URL.findall(m.group(1))))
        elif name == "database.yml":
            add("rails", _rails_production(text))
        elif name.startswith("knexfile"):
            add("knex", (_canon(c) for c in _KNEX_CLIENT.findall(text)))
        elif name in ("config.json", "config.js", ".sequelizerc"):
            add("sequelize", (_canon(c) for c in _SEQUELIZE.findall(text)))
        elif name in ("schema.prisma", "migration_lock.toml"):
            add("prisma", (_canon(p) for p in _PRISMA.findall(text)))
        elif name in (
            "flyway.conf",
            "flyway.toml",
            "application.properties",
            "application.yml",
            "application.yaml",
        ):
            add("flyway", (_canon(j) for j in _JDBC.findall(text)))
        elif name == "go.mod":
            add("drivers", (d for rx, d in _GO_DRIVERS if rx.search(text)))
        elif name == "package.json":
            add("drivers", (d for rx, d in _JS_DRIVERS if rx.search(text)))
        elif name in ("requirements.txt", "pyproject.toml"):
            add("drivers", (d for rx, d in _PY_DRIVERS if rx.search(text)))
        elif name == "Gemfile":
            add("drivers", (d for rx, d in _RB_DRIVERS if rx.search(text)))
    return ProjectDialects(MappingProxyType({k: frozenset(v) for k, v in out.items() if v}))


# -- one migration ---------------------------------------------------------------------------------------

_PATH_HINT = re.compile(r"(?:^|[/_.-])(postgres(?:ql)?|pg|pgsql|mysql|mariadb|sqlite3?)(?=$|[/_.-])", re.I)
# Syntax only one dialect has. Read on the migration's code with comments blanked.
_SYNTAX = (
    (
        re.compile(
            r"`\w+`|\bENGINE\s*=\s*\w+|\bAUTO_INCREMENT\b|\bUNSIGNED\b|\bALGORITHM\s*=\s*(?:INPLACE|INSTANT|COPY)\b"
            r"|\bCHARSET\s*=|\bMODIFY\s+COLUMN\b|\bTINYINT\b|\bMEDIUMTEXT\b|\bLONGTEXT\b",
            re.I,
        ),
        MYSQL,
    ),
    (
        re.compile(r"\bAUTOINCREMENT\b|\bPRAGMA\s+\w+|\bWITHOUT\s+ROWID\b|\bsqlite_master\b", re.I),
        SQLITE,
    ),
    (
        re.compile(
            r"\bCONCURRENTLY\b|\b(?:BIG|SMALL)?SERIAL\b|\bJSONB\b|\bTIMESTAMPTZ\b|\$\$|\bCREATE\s+EXTENSION\b"
            r"|(?<=[\w)'\"])::(?:text|int\w*|bigint|jsonb?|uuid|date|timestamp\w*|numeric|varchar|boolean|regclass)\b"
            r"|\bUSING\s+(?:gin|gist|brin|btree)\b|\bpostgresql_\w+\s*=|\bdisable_ddl_transaction!",
            re.I,
        ),
        POSTGRES,
    ),
)


def framework_of(path: str, text: str) -> str | None:
    """The migration framework a migration file belongs to, from its path and code."""
    p = path.lower()
    if p.endswith(".py"):
        if "alembic" in p or re.search(r"\bfrom\s+alembic\b|\bop\.\w+\(", text):
            return "alembic"
        if "/migrations/" in f"/{p}" or "django" in text:
            return "django"
        return None
    if p.endswith(".rb"):
        return "rails"
    if p.endswith((".js", ".ts", ".cjs", ".mjs")):
        if "queryinterface" in text.lower():
            return "sequelize"
        return "knex"
    if p.endswith(".sql"):
        if "prisma/migrations/" in p or re.search(r"(?:^|/)migrations/\d{14}_[^/]+/migration\.sql$", p):
            return "prisma"
        if re.search(r"(?:^|/)[VUR]\d+(?:[._]\d+)*__[^/]+\.sql$", path) or "db/changelog" in p:
            return "flyway"
        if "db/migrate" in p:
            return "rails"
    return None


def dialect_of(path: str, code: str, project: ProjectDialects = UNKNOWN_PROJECT) -> str | None:
    """The dialect of one migration (``code``: its visible text, comments blanked); None when unknown."""
    own = {d for rx, d in _SYNTAX if rx.search(code)}
    if len(own) == 1:
        return own.pop()
    hints = {d for h in _PATH_HINT.findall(path) if (d := _canon(h))}
    if len(hints) == 1:
        return hints.pop()
    return project.for_framework(framework_of(path, code))


__all__ = [
    "MYSQL",
    "POSTGRES",
    "SQLITE",
    "UNKNOWN_PROJECT",
    "ProjectDialects",
    "dialect_of",
    "framework_of",
    "is_settings_file",
    "project_dialects",
]
