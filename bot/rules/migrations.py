"""Schema migrations that break running code, lose data or lock tables during a deploy.

They apply to migration files only (by path: migrations/, db/migrate/, alembic/, Flyway V1__x.sql, …),
in plain SQL (also SQL embedded in Django/Alembic/Rails/Knex migrations) and in the ORMs' own operations.
The down/downgrade/rollback half of a migration undoes the up half, so drops there are expected.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import replace

from bot.models import Category, FileStatus, Finding, Severity
from bot.rules.base import MIGRATION_LANGS, Check, Hit, Source, call_args, kwarg, rule
from bot.rules.dialect import POSTGRES

# A Postgres-only rule on a migration whose dialect is unknown: reported, but below the inline threshold
# (it still reaches the agent as a hint). Precision wins over recall.
UNKNOWN_DIALECT_CONFIDENCE = 0.45

_SQL_DROP = re.compile(r"\bDROP\s+(?:COLUMN|TABLE)\b", re.I)
_ORM_DROP = re.compile(
    r"\bmigrations\.(?:RemoveField|DeleteModel)\s*\(|\b(?:op|batch_op)\.(?:drop_column|drop_table)\s*\("
    r"|^\s*(?:remove_column|remove_columns|drop_table|remove_reference|remove_belongs_to)\b|^\s*t\.remove\b"
    r"|\.(?:dropColumn|dropColumns|dropTable|dropTableIfExists)\s*\("
)
_SQL_RENAME = re.compile(
    r"\bRENAME\s+COLUMN\b|\bRENAME\s+TABLE\b|\bALTER\s+TABLE\b[^;\n]*\bRENAME\s+(?:TO|\w+\s+TO)\b", re.I
)
_ORM_RENAME = re.compile(
    r"\bmigrations\.(?:RenameField|RenameModel)\s*\(|\bop\.rename_table\s*\(|\bnew_column_name\s*="
    r"|^\s*(?:rename_column|rename_table)\b|\.(?:renameColumn|renameTable)\s*\("
)
_REVERSE = re.compile(r"\breverse_sql\s*=")


def _up_hits(src: Source, *patterns: re.Pattern[str]) -> Iterator[Hit]:
    rebuilt = _rebuilt_tables(src)
    for pattern in patterns:
        for i, m in src.line_matches(pattern):
            line = src.lines[i]
            if _REVERSE.search(line[: m.start()]) or src.direction(i) == "down":
                continue
            if rebuilt and _rebuild_step(src, i, rebuilt):
                continue
            yield Hit(i)


def _drop(src: Source) -> Iterator[Hit]:
    return _up_hits(src, _SQL_DROP, _ORM_DROP)


def _rename(src: Source) -> Iterator[Hit]:
    return _up_hits(src, _SQL_RENAME, _ORM_RENAME)


# -- table rebuilds (SQLite's way to alter a table) ------------------------------------------------------

_NAME = r"[\"`\[]?(\w+)[\"`\]]?"
_RENAME_TABLE = re.compile(rf"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_NAME}\s+RENAME\s+TO\s+{_NAME}", re.I)
_CREATE_TABLE = re.compile(rf"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}", re.I)
_COPY = re.compile(rf"\bINSERT\s+INTO\s+{_NAME}[^;]*?\bSELECT\b[^;]*?\bFROM\s+{_NAME}", re.I | re.S)
_DROP_TABLE = re.compile(rf"\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_NAME}", re.I)


def _rebuilt_tables(src: Source) -> set[str]:
    """Tables this migration rebuilds: a copy is created, the rows copied into it, the old one dropped and
    the copy renamed into its place (or the old one renamed away first). No data or name is lost, so the
    DROP and RENAME in it are not the drop and rename the rules warn about."""
    if "rename" not in src.text.lower():
        return set()
    created = {m.group(1).lower() for m in _CREATE_TABLE.finditer(src.text)}
    copies = {(m.group(1).lower(), m.group(2).lower()) for m in _COPY.finditer(src.text)}
    dropped = {m.group(1).lower() for m in _DROP_TABLE.finditer(src.text)}
    out: set[str] = set()
    for m in _RENAME_TABLE.finditer(src.text):
        a, b = m.group(1).lower(), m.group(2).lower()
        # new_t created, filled from t, t dropped, new_t → t; or t → t_old, t created, filled, t_old dropped
        if a in created and b in dropped and (a, b) in copies:
            out.update((a, b))
    return out


def _rebuild_step(src: Source, i: int, rebuilt: set[str]) -> bool:
    text, _ = src.sql_statement(i, limit=3)
    for rx in (_DROP_TABLE, _RENAME_TABLE):
        m = rx.search(text)
        if m and m.group(1).lower() in rebuilt:
            return True
    return False


# -- NOT NULL without a default -------------------------------------------------------------------------

_SQL_ADD_COLUMN = re.compile(
    r"\bADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?!CONSTRAINT\b|PRIMARY\b|FOREIGN\b|UNIQUE\b|INDEX\b|KEY\b|CHECK\b)"
    r"[\"`]?\w+[\"`]?\s+\w",
    re.I,
)
_ALTER_TABLE = re.compile(r"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?([\w.\"`]+)", re.I)


def _created_here(src: Source, table: str) -> bool:
    name = table.strip('"`').split(".")[-1]
    return (
        re.search(
            rf"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[\w.\"`]*?\b{re.escape(name)}\b", src.text, re.I
        )
        is not None
        or re.search(
            rf"\b(?:create_table\s*\(?\s*[:\"']|createTable\s*\(\s*[\"']){re.escape(name)}\b", src.text
        )
        is not None
    )


def _table_above(src: Source, i: int) -> str | None:
    for j in (i, *src.code_lines(i, -1, 11)):
        m = _ALTER_TABLE.search(src.lines[j])
        if m:
            return m.group(1)
    return None


_DJ_ADDFIELD = re.compile(r"\bmigrations\.AddField\s*\(")
# Django's schema editor adds a column with the field's "effective default" for the existing rows
# (BaseDatabaseSchemaEditor.effective_default): its default=, else "" for a blank=True field whose class
# allows empty strings (CharField, TextField, SlugField, EmailField, URLField, FileField, …), else now()
# for auto_now / auto_now_add. These classes don't allow empty strings, so blank=True alone adds nothing:
_DJ_NO_EMPTY_STRING = re.compile(
    r"\b(?:\w*IntegerField|\w*AutoField|FloatField|DecimalField|BooleanField|NullBooleanField|DateField"
    r"|DateTimeField|TimeField|DurationField|UUIDField|JSONField|GenericIPAddressField|ForeignKey"
    r"|OneToOneField|ArrayField|HStoreField|\w*RangeField)\s*\("
)
_DJ_FILLED = re.compile(
    r"ManyToManyField|GenericRelation|GeneratedField|\bnull\s*=\s*True|\b(?:db_)?default\s*=|\bauto_now(?:_add)?\s*=\s*True"
    r"|\bprimary_key\s*=\s*True"
)


def _django_fills_rows(field: str) -> bool:
    """Whether Django's AddField gives existing rows a value for ``field`` (the field's constructor text)."""
    if _DJ_FILLED.search(field):
        return True
    return re.search(r"\bblank\s*=\s*True", field) is not None and not _DJ_NO_EMPTY_STRING.search(field)


_AL_ADD_COLUMN = re.compile(r"\b(?:op|batch_op)\.add_column\s*\(")
_RB_ADD_COLUMN = re.compile(r"^\s*add_column\s+:(\w+)\s*,[^\n]*\bnull:\s*false\b")
_KNEX_NOT_NULL = re.compile(r"\.notNullable\s*\(\s*\)")


def _not_null(src: Source) -> Iterator[Hit]:
    for i, m in src.line_matches(_SQL_ADD_COLUMN):
        clause = src.lines[i][m.start() :]
        for j in src.code_lines(i, 1, 4):
            if re.search(r"[,;]\s*$", clause):
                break
            clause += "\n" + src.lines[j]
        clause = re.split(r",\s*(?:\n|$)|;", clause, maxsplit=1)[0]
        if not re.search(r"\bNOT\s+NULL\b", clause, re.I):
            continue
        if re.search(r"\bDEFAULT\b|\bGENERATED\b|\bSERIAL\b|\bIDENTITY\b", clause, re.I):
            continue
        table = _table_above(src, i)
        if table is None or not _created_here(src, table):
            yield Hit(i)
    if src.language == "python":
        initial = re.search(r"^\s*initial\s*=\s*True", src.text, re.M) is not None
        for i, m in src.line_matches(_DJ_ADDFIELD):
            text, end = src.statement(i, limit=30)
            args, _ = call_args(text, m)
            field = kwarg(args, "field") or ""
            model = (kwarg(args, "model_name") or "").strip("\"'")
            if initial or not field or _django_fills_rows(field):
                continue
            if model and re.search(
                rf"CreateModel\(\s*(?:name\s*=\s*)?[\"']{re.escape(model)}[\"']", src.text, re.I
            ):
                continue
            k = src.first_added(i, end, re.compile(r"\bfield\s*="))
            yield Hit(k if k is not None else i)
        for i, _ in src.line_matches(_AL_ADD_COLUMN):
            text, end = src.statement(i, limit=20)
            if re.search(r"\bnullable\s*=\s*False\b", text) and not re.search(r"\bserver_default\s*=", text):
                k = src.first_added(i, end, re.compile(r"\bnullable\s*=\s*False"))
                yield Hit(k if k is not None else i)
    for i, m in src.line_matches(_RB_ADD_COLUMN):
        if "default:" not in src.lines[i] and not _created_here(src, m.group(1)):
            yield Hit(i)
    for i, _ in src.line_matches(_KNEX_NOT_NULL):
        if ".defaultTo(" in src.lines[i]:
            continue
        for j in src.code_lines(i, -1, 39):
            t = src.lines[j]
            if "createTable(" in t:
                break
            if re.search(r"\b(?:alterTable|schema\.table)\s*\(", t):
                yield Hit(i)
                break


# -- index builds that lock writes ----------------------------------------------------------------------

_SQL_CREATE_INDEX = re.compile(r"\bCREATE\s+(?:UNIQUE\s+)?INDEX\b", re.I)
_AL_CREATE_INDEX = re.compile(r"\bop\.create_index\s*\(")
_RB_ADD_INDEX = re.compile(r"^\s*add_index\s+:(\w+)")


def _postgres_confidence(src: Source) -> float | None:
    """None on Postgres (the rule's own confidence), lower when the dialect is unknown, -1 elsewhere."""
    dialect = src.dialect
    if dialect == POSTGRES:
        return None
    return UNKNOWN_DIALECT_CONFIDENCE if dialect is None else -1.0


def _index(src: Source) -> Iterator[Hit]:
    conf = _postgres_confidence(src)
    if conf is not None and conf < 0:
        return  # CONCURRENTLY is Postgres syntax; MySQL builds InnoDB indexes online, SQLite has one writer
    for hit in _index_hits(src):
        yield replace(hit, confidence=conf)


def _index_hits(src: Source) -> Iterator[Hit]:
    for i, _ in src.line_matches(_SQL_CREATE_INDEX):
        if src.direction(i) == "down":
            continue
        text, _ = src.sql_statement(i)
        if re.search(r"\bCONCURRENTLY\b", text, re.I):
            continue
        on = re.search(r"\bON\s+(?:ONLY\s+)?([\w.\"]+)", text, re.I)
        if on is None or not _created_here(src, on.group(1)):
            yield Hit(i)
    for i, m in src.line_matches(_AL_CREATE_INDEX):
        if src.direction(i) == "down":
            continue
        text, _ = src.statement(i, limit=20)
        args, _ = call_args(text, m)
        if re.search(r"\bpostgresql_concurrently\s*=\s*True", text):
            continue
        table = args[1].strip("\"'") if len(args) > 1 else (kwarg(args, "table_name") or "").strip("\"'")
        if not table or not re.search(rf"\bop\.create_table\s*\(\s*[\"']{re.escape(table)}[\"']", src.text):
            yield Hit(i)
    for i, m in src.line_matches(_RB_ADD_INDEX):
        text, _ = src.statement(i, limit=5)
        if "algorithm: :concurrently" not in text and not _created_here(src, m.group(1)):
            yield Hit(i)


# -- foreign keys without an index ----------------------------------------------------------------------

_SQL_INLINE_FK = re.compile(
    r"^\s*(?:ALTER\s+TABLE\s+[\w.\"]+\s+)?(?:ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?)?\"?(\w+)\"?\s+\w+(?:\([^)]*\))?"
    r"[^,;\n]*?\bREFERENCES\b",
    re.I,
)
_SQL_FK_CONSTRAINT = re.compile(r"\bFOREIGN\s+KEY\s*\(\s*\"?(\w+)\"?\s*\)", re.I)
_SQL_INDEXED = re.compile(
    r"\bINDEX\b[^;]*?\bON\s+(?:ONLY\s+)?[\w.\"]+\s*(?:USING\s+\w+\s*)?\(\s*\"?(\w+)"
    r"|\bPRIMARY\s+KEY\s*\(\s*\"?(\w+)|\bUNIQUE\s*\(\s*\"?(\w+)",
    re.I,
)
_AL_FK_COLUMN = re.compile(r"\bsa\.Column\s*\(\s*[\"'](\w+)[\"'][^\n]*\b(?:sa\.)?ForeignKey\s*\(")
_AL_CREATE_FK = re.compile(r"\bop\.create_foreign_key\s*\(")


def _indexed_columns(src: Source) -> set[str]:
    cols = {next(g for g in m.groups() if g).lower() for m in _SQL_INDEXED.finditer(src.text)}
    for m in re.finditer(r"\bop\.create_index\s*\([^)]*?\[\s*[\"'](\w+)[\"']", src.text):
        cols.add(m.group(1).lower())
    return cols


def _fk_index(src: Source) -> Iterator[Hit]:
    # Only when the whole migration is in view: an index further down an existing file would be missed.
    if src.status != FileStatus.ADDED:
        return
    conf = _postgres_confidence(src)
    if conf is not None and conf < 0:
        return  # MySQL (InnoDB) indexes a foreign key's column itself
    for hit in _fk_index_hits(src):
        yield replace(hit, confidence=conf)


def _fk_index_hits(src: Source) -> Iterator[Hit]:
    indexed = _indexed_columns(src)
    for pattern in (_SQL_INLINE_FK, _SQL_FK_CONSTRAINT):
        for i, m in src.line_matches(pattern):
            line = src.lines[i]
            col = m.group(1).lower()
            if col in ("constraint", "foreign") or col in indexed:
                continue
            if re.search(r"\bPRIMARY\s+KEY\b|\bUNIQUE\b", line, re.I) and pattern is _SQL_INLINE_FK:
                continue
            if src.direction(i) != "down":
                yield Hit(i)
    if src.language == "python":
        for i, m in src.line_matches(_AL_FK_COLUMN):
            if m.group(1).lower() not in indexed and not re.search(
                r"\b(?:index|primary_key|unique)\s*=\s*True", src.lines[i]
            ):
                yield Hit(i)
        for i, m in src.line_matches(_AL_CREATE_FK):
            text, _ = src.statement(i)
            args, _ = call_args(text, m)
            local = re.match(r"\[\s*[\"'](\w+)[\"']", args[3]) if len(args) > 3 else None
            if local and local.group(1).lower() not in indexed:
                yield Hit(i)


_DEPLOY = " During a rolling deploy the previous release is still running against the new schema."

CHECKS = (
    Check(
        rule(
            "mig-drop",
            "Migration drops a column or table",
            Category.MIGRATION,
            Severity.HIGH,
            MIGRATION_LANGS,
            "Dropping deletes data irreversibly and breaks any code still reading it." + _DEPLOY,
            "Expand/contract: stop reading and writing it in one release, drop it in a later migration, and "
            "keep a backup of the data.",
            0.85,
            fixes={
                "sql": "Expand/contract: deploy code that no longer reads or writes it, then DROP it in a "
                "later migration, after a backup.",
                "python": "Expand/contract: remove it from the model first (Django: SeparateDatabaseAndState "
                "keeps the column), then drop it in a later migration, after a backup.",
                "ruby": "Expand/contract: add it to the model's self.ignored_columns and deploy, then "
                "remove_column in a later migration, after a backup.",
                "javascript": "Expand/contract: deploy code that no longer reads or writes it, then drop it "
                "in a later migration, after a backup.",
            },
        ),
        _drop,
        needles=("drop", "remove"),
        migrations_only=True,
    ),
    Check(
        rule(
            "mig-rename",
            "Migration renames a column or table",
            Category.MIGRATION,
            Severity.HIGH,
            MIGRATION_LANGS,
            "A rename is a drop plus an add for running code: queries using the old name fail until every "
            "instance is redeployed." + _DEPLOY,
            "Add the new column, write both, backfill, switch reads, then drop the old one in a later "
            "release.",
            0.85,
            fixes={
                "sql": "Don't rename in place: ADD the new column, write both, backfill with batched "
                "UPDATEs, switch reads, then DROP the old one in a later release.",
                "python": "Don't rename in place: add the new column (AddField / op.add_column), write both, "
                "backfill, switch reads, then drop the old one in a later release.",
                "ruby": "Don't rename in place: add_column the new one, write both, backfill, switch reads, "
                "then ignore and remove_column the old one in a later release.",
                "javascript": "Don't rename in place: add the new column, write both, backfill, switch "
                "reads, then drop the old one in a later migration.",
            },
        ),
        _rename,
        needles=("rename", "new_column_name"),
        migrations_only=True,
    ),
    Check(
        rule(
            "mig-not-null-no-default",
            "NOT NULL column added without a default",
            Category.MIGRATION,
            Severity.HIGH,
            MIGRATION_LANGS,
            "Adding a NOT NULL column with no default fails on a table that has rows, and inserts from the "
            "running release (which doesn't set it) fail too.",
            "Add it nullable or with a database default, backfill, then add the NOT NULL constraint in a "
            "later migration.",
            0.8,
            fixes={
                "sql": "Add it nullable or with a DEFAULT, backfill, then SET NOT NULL in a later migration.",
                "python": "Add it nullable or with a database default (Alembic server_default=, Django 5 "
                "db_default=), backfill, then make it NOT NULL in a later migration.",
                "ruby": "Add it with default: (or nullable), backfill, then change_column_null in a later "
                "migration.",
                "javascript": "Add it nullable or with .defaultTo(value), backfill, then make it "
                ".notNullable().alter() in a later migration.",
            },
        ),
        _not_null,
        needles=("add", "notnullable"),
        migrations_only=True,
    ),
    Check(
        rule(
            "mig-index-not-concurrent",
            "Index built without CONCURRENTLY",
            Category.MIGRATION,
            Severity.MEDIUM,
            MIGRATION_LANGS,
            "On PostgreSQL, CREATE INDEX takes a lock that blocks every write to the table for the whole "
            "build, minutes on a large table.",
            "Build it concurrently (CREATE INDEX CONCURRENTLY), outside a transaction.",
            0.7,
            fixes={
                "sql": "Use CREATE INDEX CONCURRENTLY, in a migration that does not run in a transaction.",
                "python": "Alembic: op.create_index(..., postgresql_concurrently=True) inside "
                "op.get_context().autocommit_block(); Django: AddIndexConcurrently with atomic = False.",
                "ruby": "Use add_index ..., algorithm: :concurrently, with disable_ddl_transaction! in the "
                "migration.",
                "javascript": "Run CREATE INDEX CONCURRENTLY in a migration with its transaction off (Knex: "
                "exports.config = { transaction: false }).",
            },
        ),
        _index,
        needles=("index",),
        migrations_only=True,
    ),
    Check(
        rule(
            "mig-fk-no-index",
            "Foreign key without an index",
            Category.DATABASE,
            Severity.MEDIUM,
            MIGRATION_LANGS,
            "PostgreSQL does not index the referencing column of a foreign key: joins on it, and "
            "every delete "
            "or key update in the parent table, scan the whole child table.",
            "Add an index on the referencing column in the same migration.",
            0.7,
            fixes={
                "sql": "Index the referencing column in the same migration: CREATE INDEX ... ON child "
                "(parent_id).",
                "python": "Index the referencing column in the same migration: sa.Column(..., "
                "sa.ForeignKey(...), index=True) or op.create_index(...).",
                "ruby": "Index the referencing column: t.references :parent, foreign_key: true (indexed by "
                "default) or add_index :children, :parent_id.",
                "javascript": "Index the referencing column in the same migration, e.g. "
                "table.index('parent_id') in Knex.",
            },
        ),
        _fk_index,
        needles=("references", "foreign"),
        migrations_only=True,
    ),
)


_IDS = frozenset(c.rule.id for c in CHECKS)


def one_per_file(findings: Sequence[Finding]) -> list[Finding]:
    """One comment per migration rule and file (path- and line-ordered input): ten indexes added in one
    migration are one decision for its author, so the first finding names the other lines."""
    out: list[Finding] = []
    first: dict[tuple[str, str], int] = {}
    more: dict[int, list[int]] = {}
    for f in findings:
        if f.source not in _IDS:
            out.append(f)
            continue
        key = (f.path, f.source)
        if key in first:
            more.setdefault(first[key], []).append(f.line)
            continue
        first[key] = len(out)
        out.append(f)
    for idx, lines in more.items():
        f = out[idx]
        listed = ", ".join(str(n) for n in lines[:20]) + (", …" if len(lines) > 20 else "")
        out[idx] = replace(
            f, body=f"{f.body} The same applies to line{'s' if len(lines) > 1 else ''} {listed}."
        )
    return out
