"""Structural SQL injection: queries, fragments, identifiers and sort clauses built from non-constant text.

Beyond formatting values into a query string (bot.rules.sql): a string built by interpolation,
concatenation or formatting reaching an execute/query call directly or through a variable of the same
function; request input passed as a raw fragment (``order``/``where`` in ActiveRecord and GORM, ``extra``,
``RawSQL``, ``text``, ``literal_column``, knex ``*Raw``, ``sequelize.literal``, Prisma ``*Unsafe``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.models import Category, Severity
from bot.rules.base import CODE, rule
from bot.rules.structural import (
    SHit,
    StructCheck,
    Unit,
    arguments,
    assignments_to,
    call_name,
    calls,
    dynamic_parts,
    first,
    literal_text,
    positional_args,
    scope_of,
    unsafe_pieces,
)
from bot.rules.syntax import find_all

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ast_grep_py import SgNode

_SQL_WORDS = re.compile(
    r"\b(?:select\s.+\sfrom|insert\s+into|update\s+\w[\w.\"`]*\s+set|delete\s+from|order\s+by|group\s+by|"
    r"where\s|having\s|join\s|limit\s|offset\s|like\s|ilike\s|regexp|similar\s+to|values\s*\(|returning\s|"
    r"->>|#>>|jsonb?_\w+\()",
    re.I | re.S,
)

# Calls that run a whole statement: flagged when their SQL argument is built and reads like SQL.
_STATEMENT_SINKS = {
    "python": {"execute", "executemany", "executescript", "raw", "mogrify", "text", "RawSQL", "read_sql",
               "read_sql_query", "fetch", "fetchrow", "fetchval", "fetchall", "exec_driver_sql"},
    "javascript": {"query", "execute", "raw", "$queryRawUnsafe", "$executeRawUnsafe", "literal", "whereRaw",
                   "orderByRaw", "havingRaw", "joinRaw", "selectRaw", "groupByRaw", "fromRaw", "exec", "all",
                   "get", "run", "prepare", "unsafe"},
    "go": {"Query", "QueryRow", "QueryContext", "QueryRowContext", "Exec", "ExecContext", "Prepare",
           "PrepareContext", "Raw", "Select", "Get", "MustExec", "Queryx", "QueryRowx", "NamedExec"},
    "java": {"executeQuery", "executeUpdate", "execute", "prepareStatement", "createQuery",
             "createNativeQuery",
             "createSQLQuery", "query", "queryForObject", "queryForList", "queryForMap", "queryForRowSet",
             "update", "batchUpdate", "addBatch", "prepareCall"},
    "ruby": {"execute", "exec_query", "find_by_sql", "select_all", "select_one", "select_value",
             "select_values", "select_rows", "exec_update", "exec_delete", "exec_insert", "query"},
}  # fmt: skip
_STATEMENT_SINKS["typescript"] = _STATEMENT_SINKS["javascript"]

# Calls whose argument is a raw SQL fragment (a condition, an ORDER BY, a column): a built string or request
# input straight into them is injection even without SQL keywords in the literal part.
_FRAGMENT_SINKS = {
    "python": {"extra", "RawSQL", "text", "literal_column", "literal", "order_by_raw"},
    "javascript": {"raw", "whereRaw", "orderByRaw", "havingRaw", "joinRaw", "selectRaw", "groupByRaw",
                   "fromRaw", "literal", "$queryRawUnsafe", "$executeRawUnsafe", "unsafe"},
    "go": {"Order", "Where", "Raw", "Exec", "Select", "Group", "Having", "Joins", "Not", "Or", "Pluck"},
    "java": {"createQuery", "createNativeQuery"},
    "ruby": {"order", "reorder", "where", "group", "having", "joins", "from", "select", "pluck", "lock",
             "find_by_sql", "exists?", "calculate", "not", "update_all", "delete_all", "destroy_all",
             "rewhere", "in_order_of"},
}  # fmt: skip
_FRAGMENT_SINKS["typescript"] = _FRAGMENT_SINKS["javascript"]

# Request input, by framework: what reaching a fragment sink unbuilt is already injection.
_REQUEST = re.compile(
    r"\brequest\.(?:GET|POST|args|form|values|json|data|query_params|params|get_json|cookies|headers)\b"
    r"|\breq\.(?:query|body|params|headers|cookies)\b|\bctx\.(?:query|request|params)\b"
    r"|\bparams\[|\bparams\.(?:fetch|require|permit|dig)\b|\bc\.(?:Query|Param|PostForm|DefaultQuery|GetQuery)\("
    r"|\br\.(?:URL|Form|PostForm|FormValue|PathValue)\b|\bFormValue\(|\bURLParam\(|\bmux\.Vars\("
    r"|\bgetParameter\(|\bquery_params\b|\bsearchParams\b|\b(?:sort|order|sort_by|order_by|sortBy|orderBy|"
    r"sort_field|sortField|direction|dir|column|field)\b",
)
_JAVA_REQUEST_PARAMS = re.compile(
    r"@(?:RequestParam|PathVariable|RequestBody|RequestHeader|QueryParam|PathParam)"
)

_SQLI = rule(
    "sql-built-query",
    "SQL built from non-constant text",
    Category.DATABASE,
    Severity.CRITICAL,
    CODE,
    "This query text (or a raw SQL fragment: a condition, sort clause, identifier, LIKE/regex pattern or "
    "JSON path) is built from values at run time, so whoever controls them can change the statement.",
    "Pass values as bound parameters; for identifiers and sort keys, map the input onto an allow-list of "
    "known columns and directions instead of splicing it in.",
    confidence=0.8,
    fixes={
        "python": "Use parameters (`cursor.execute(sql, params)`, `text(...).bindparams(...)`); pick "
        "identifiers and ORDER BY columns from an allow-list (or `psycopg.sql.Identifier`).",
        "javascript": "Use placeholders (`knex.raw('... ?', [v])`, `sequelize.query(sql, { replacements })`, "
        "`$queryRaw` tagged templates); allow-list sort columns.",
        "go": 'Use placeholders (`db.Query("... WHERE id = $1", id)`, `db.Where("name = ?", n)`); '
        "allow-list ORDER BY columns.",
        "java": "Use a `PreparedStatement` / named parameters (`setParameter`); allow-list sort columns.",
        "ruby": 'Use placeholders (`where("name = ?", n)`, `sanitize_sql_array`); pass `order` a hash '
        "built from an allow-list.",
    },
)


def _sql_arg(call_args: list[SgNode], name: str, language: str) -> list[SgNode]:
    if not call_args:
        return []
    if language == "go" and (name.endswith("Context") or name in ("Select", "Get")):
        return call_args[1:2]  # QueryContext(ctx, q, ...) / sqlx Select(&dest, q, ...)
    return call_args[:1]


def _resolve(unit: Unit, node: SgNode, language: str, depth: int = 0) -> tuple[list[SgNode] | None, str]:
    """(dynamic parts, literal SQL text) of an argument, following plain variables in the same function."""
    tree = unit.head
    assert tree is not None
    parts = dynamic_parts(node, language)
    if parts is not None:
        return parts, literal_text(node)
    if node.kind() in ("identifier",) and depth < 2:
        scope = scope_of(tree, node)
        found: list[SgNode] = []
        lits: list[str] = []
        for rhs in assignments_to(scope, node.text(), language, node.range().start.line):
            sub_parts, sub_lit = _resolve(unit, rhs, language, depth + 1)
            if rhs.kind().startswith(("augmented", "operator_assignment")):
                value = rhs.field("right") or rhs.field("value")
                if value is not None:
                    inner = dynamic_parts(value, language)
                    if inner is None and not _literal_like(value):
                        inner = [value]
                    sub_parts = inner or []
                    sub_lit = literal_text(value)
            if sub_parts:
                found.extend(sub_parts)
            lits.append(sub_lit)
        return (found or None), " ".join(lits)
    return None, literal_text(node)


def _leaves(node: SgNode) -> list[SgNode]:
    """The string expressions inside an ``extra()`` argument (lists, dicts and keyword values opened)."""
    k = node.kind()
    if k == "keyword_argument":
        v = node.field("value")
        return _leaves(v) if v is not None else []
    if k in ("list", "tuple", "dictionary", "pair"):
        if k == "pair":
            v = node.field("value")
            return _leaves(v) if v is not None else []
        return [x for c in node.children() if c.is_named() for x in _leaves(c)]
    return [node]


def _literal_like(node: SgNode) -> bool:
    return node.kind() in ("string", "template_string", "interpreted_string_literal", "string_literal")


def _request_derived(text: str, unit: Unit, node: SgNode) -> bool:
    if _REQUEST.search(text):
        return True
    if unit.language == "java" and unit.head is not None:
        d = unit.head.enclosing(node.range().start.line)
        if d is not None:
            params = d.node.field("parameters")
            if params is not None and _JAVA_REQUEST_PARAMS.search(params.text()):
                names = {
                    nm.text()
                    for p in find_all(params, "formal_parameter")
                    if (nm := p.field("name")) is not None and _JAVA_REQUEST_PARAMS.search(p.text())
                }
                return any(re.search(rf"\b{re.escape(n)}\b", text) for n in names)
    return False


def _sqli(unit: Unit) -> Iterator[SHit]:
    tree = unit.head
    assert tree is not None
    lang = unit.language
    stmt = _STATEMENT_SINKS.get(lang, set())
    frag = _FRAGMENT_SINKS.get(lang, set())
    for call in calls(tree.root, lang):
        recv, name = call_name(call, lang)
        if name not in stmt and name not in frag:
            continue
        line = unit.added_in(call)
        if (
            lang in ("javascript", "typescript")
            and name in ("all", "get", "run", "exec", "prepare")
            and not re.search(r"db|stmt|sql|conn", recv, re.I)
        ):
            continue  # Express app.get(...), Promise.all(...), regex.exec(...)
        args = positional_args(call, lang)
        targets = _sql_arg(args, name, lang)
        if name == "extra" and lang == "python":  # extra(where=[...], select={...}, order_by=[...])
            targets = [v for a in arguments(call) for v in _leaves(a)]
        for arg in targets:
            parts, lit = _resolve(unit, arg, lang)
            if line is None:  # the call is unchanged: report where the change built its query, if it did
                line = next((x for p in parts or () if (x := unit.added_in(p)) is not None), None)
                if line is None:
                    continue
            if parts is None:
                if name in frag and not _literal_like(arg) and _request_derived(arg.text(), unit, arg):
                    if lang == "python" and name in ("text", "literal"):
                        continue  # text(var) with a plain variable: only flagged when built
                    yield SHit(
                        first(unit.added_in(arg), line), 0.8, f"`{name}` receives request input unescaped."
                    )
                continue
            unsafe = unsafe_pieces(parts)
            if not unsafe:
                continue
            reads_sql = bool(_SQL_WORDS.search(lit))
            if name not in frag and not reads_sql:
                continue
            tainted = any(_request_derived(p.text(), unit, p) for p in unsafe)
            conf = 0.9 if tainted else (0.8 if reads_sql else 0.7)
            built_at = next((x for p in unsafe if (x := unit.added_in(p)) is not None), None)
            yield SHit(built_at if built_at is not None else line, conf)


_NEEDLES = (
    *("execute", "query", "raw", "sql", "select", "where", "order", "text(", "extra(", "literal", "exec"),
    *("prepare", "from", "group", "having", "join", "pluck", "fetch", "unsafe", "delete", "update", "insert"),
)
_LINE_RULES = ("py-sql-format", "js-sql-template", "go-sql-format", "java-sql-concat", "rb-sql-interpolation")
CHECKS = (StructCheck(_SQLI, _sqli, needles=_NEEDLES, same_as=_LINE_RULES),)
