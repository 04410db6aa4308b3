"""File kinds (issue 7 item 5) and migration dialects (item 4): the pure parts, case by case."""

from __future__ import annotations

import pytest

from bot.diff import PathFilters, gitattributes, looks_minified, skip_reason
from bot.rules.dialect import (
    MYSQL,
    POSTGRES,
    SQLITE,
    ProjectDialects,
    dialect_of,
    framework_of,
    project_dialects,
)

# -- minified text ------------------------------------------------------------------------------------------


def test_minified_bundle_text() -> None:
    packed = "!function(e){var t={};function n(r){if(t[r])return t[r].exports}}(window);" * 40
    assert looks_minified("static/js/main.js", [packed])
    assert looks_minified("static/css/site.css", [".a{color:red}.b{margin:0;padding:0}" * 40])
    assert looks_minified("data/bundle.json", ['{"a":1,"b":[1,2,3],"c":{"d":"e"}}' * 40])


@pytest.mark.parametrize(
    ("path", "lines"),
    [
        ("app/views.py", ["x = 1"] * 500),  # many short lines
        ("app/queries.py", ["SQL = '" + "SELECT a, b FROM t WHERE x = 1 " * 40 + "'"]),  # long, but spaced
        ("README.md", ["a" * 5000]),  # prose formats are never code bundles
        ("app/icons.py", ["ICON = '" + "A" * 3000 + "'"]),  # source code is never minified
        (
            "hc/api/migrations/0123_alter_channel_kind.py",  # a Django choices list on one line
            ["            field=models.CharField(choices=[" + "('pagertree', 'PagerTree'), " * 40 + "])"],
        ),
        ("static/app.js", ["const CHOICES = [" + "['pagertree', 'PagerTree'], " * 40 + "];"]),
        ("static/data.json", ['{"a": 1, ' * 100 + "}"]),  # pretty enough JSON on one line
    ],
)
def test_hand_written_text_is_not_minified(path: str, lines: list[str]) -> None:
    assert not looks_minified(path, lines)


def test_a_20_mb_line_is_judged_from_a_sample() -> None:
    assert looks_minified("big.js", ["a=1;" * 5_000_000])
    assert looks_minified("data/dump.txt", ["a = 1; " * 2_500_000])  # any type: machine-made
    assert not looks_minified("data/notes.txt", ["a = 1; " * 10_000])


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("webapp/dist/assets/index-9c1f3a7b.js", "generated"),
        ("webapp/dist/assets/vendor-DiwrgTda.css", "generated"),
        ("frontend/build/static/js/main.8e3f1c2a.js", "generated"),
        ("packages/ui/dist/button-3f9a1c2b.mjs", "generated"),
        ("packages/ui/dist/button.js", None),  # no content hash: a package's own source may live there
        ("src/dist/distance.py", None),
    ],
)
def test_hashed_build_bundles(path: str, reason: str | None) -> None:
    assert skip_reason(path) == reason


# -- .gitattributes --------------------------------------------------------------------------------------


def test_gitattributes_semantics() -> None:
    attrs = gitattributes(
        [
            (
                ".gitattributes",
                "# comment\n*.gen.go linguist-generated\nlib/** linguist-vendored\n*.bin binary\n",
            ),
            ("lib/own/.gitattributes", "*.py -linguist-vendored\n"),
            ("proto/.gitattributes", "*.py linguist-generated=true\nkeep.py !linguist-generated\n"),
        ]
    )
    flt = PathFilters(attributes=attrs)
    assert skip_reason("x/y.gen.go", filters=flt) == "generated (linguist-generated in .gitattributes)"
    assert skip_reason("lib/a/b.py", filters=flt) == "vendored (linguist-vendored in .gitattributes)"
    assert skip_reason("lib/own/a.py", filters=flt) is None  # a deeper file wins
    assert skip_reason("proto/a/b.py", filters=flt) == "generated (linguist-generated in .gitattributes)"
    assert skip_reason("proto/keep.py", filters=flt) is None  # unset again
    assert skip_reason("assets/x.bin", filters=flt) == "not diffed (-diff in .gitattributes)"
    assert skip_reason("app/views.py", filters=flt) is None


def test_linguist_false_overrides_the_defaults() -> None:
    flt = PathFilters(attributes=gitattributes([(".gitattributes", "vendor/** linguist-vendored=false\n")]))
    assert skip_reason("vendor/ours/x.go") == "vendored"
    assert skip_reason("vendor/ours/x.go", filters=flt) is None
    assert skip_reason("node_modules/x/y.js", filters=flt) == "vendored"


# -- dialects -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "framework", "dialect"),
    [
        (
            {"shop/settings.py": "DATABASES={'default':{'ENGINE':'django.db.backends.mysql'}}"},
            "django",
            MYSQL,
        ),
        (
            {
                "cfg/settings/prod.py": "'ENGINE': 'django.contrib.gis.db.backends.postgis'",
                "cfg/settings/test.py": "'ENGINE': 'django.db.backends.sqlite3'",
            },
            "django",
            POSTGRES,
        ),
        (
            {"settings.py": "DATABASES = {'default': dj_database_url.config(default='postgres://u@h/db')}"},
            "django",
            POSTGRES,
        ),
        ({"alembic.ini": "[alembic]\nsqlalchemy.url = mysql+pymysql://u:p@h/db\n"}, "alembic", MYSQL),
        ({"config/database.yml": "default: &d\n  adapter: postgresql\n"}, "rails", POSTGRES),
        ({"knexfile.js": "module.exports = { client: 'better-sqlite3' }"}, "knex", SQLITE),
        ({"config/config.json": '{"production": {"dialect": "mysql"}}'}, "sequelize", MYSQL),
        ({"prisma/schema.prisma": 'datasource db {\n  provider = "postgresql"\n}'}, "prisma", POSTGRES),
        ({"prisma/migrations/migration_lock.toml": 'provider = "sqlite"'}, "prisma", SQLITE),
        (
            {"src/main/resources/application.properties": "spring.datasource.url=jdbc:mysql://db/app"},
            "flyway",
            MYSQL,
        ),
        ({"go.mod": "require (\n\tgithub.com/jackc/pgx/v5 v5.5.0\n)"}, None, POSTGRES),
        ({"package.json": '{"dependencies": {"mysql2": "^3"}}'}, None, MYSQL),
        ({"Gemfile": "gem 'sqlite3'\ngem 'pg'\n"}, None, POSTGRES),  # sqlite beside a server db: development
        (
            {"go.mod": "github.com/lib/pq v1\ngithub.com/go-sql-driver/mysql v1\n"},
            None,
            None,
        ),  # both: unknown
        ({}, "django", None),
    ],
)
def test_project_dialects(files: dict[str, str], framework: str | None, dialect: str | None) -> None:
    assert project_dialects(files).for_framework(framework) == dialect


@pytest.mark.parametrize(
    ("path", "code", "dialect"),
    [
        ("migrations/001.sql", "CREATE TABLE `t` (id int) ENGINE=InnoDB;", MYSQL),
        ("migrations/001.sql", "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT);", SQLITE),
        ("migrations/001.sql", "CREATE TABLE t (id bigserial, doc jsonb);", POSTGRES),
        ("migrations/001.sql", "UPDATE t SET v = v::text;", POSTGRES),
        ("db/migrate/1_x.rb", "class X < ActiveRecord::Migration[7.1]\nend", None),  # :: is Ruby, not a cast
        ("db/migrations/mysql/001.sql", "CREATE INDEX i ON t (x);", MYSQL),
        ("migrations/postgres/001_init.up.sql", "CREATE INDEX i ON t (x);", POSTGRES),
        ("migrations/001.sql", "CREATE INDEX i ON t (x);", None),
    ],
)
def test_dialect_of_one_migration(path: str, code: str, dialect: str | None) -> None:
    assert dialect_of(path, code) == dialect


def test_the_migrations_framework_picks_its_settings() -> None:
    project = ProjectDialects({"django": frozenset({MYSQL}), "drivers": frozenset({POSTGRES})})
    assert dialect_of("shop/migrations/0002_x.py", "from django.db import migrations", project) == MYSQL
    assert dialect_of("db/migrations/001_x.sql", "CREATE INDEX i ON t (x);", project) == POSTGRES
    assert framework_of("prisma/migrations/20240101000000_init/migration.sql", "") == "prisma"
    assert framework_of("db/migration/V3__idx.sql", "") == "flyway"
    assert (
        framework_of("migrations/20240101-add.js", "module.exports = { up(queryInterface) {} }")
        == "sequelize"
    )


def test_a_migration_of_no_known_framework_takes_what_all_settings_agree_on() -> None:
    rails_mysql = ProjectDialects({"rails": frozenset({MYSQL})})
    assert dialect_of("db/migrations/002_idx.sql", "CREATE INDEX i ON t (x);", rails_mysql) == MYSQL
    split = ProjectDialects({"rails": frozenset({MYSQL}), "knex": frozenset({POSTGRES})})
    assert dialect_of("db/migrations/002_idx.sql", "CREATE INDEX i ON t (x);", split) is None
