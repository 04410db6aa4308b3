"""SQL built by formatting or concatenation and handed to a query call, per language.

Two signals must meet: a query-executing call, and a first argument (or a variable assigned just above)
whose text is string formatting/concatenation over SQL. Either alone is too noisy to report.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bot.models import Category, Severity
from bot.rules.base import GO, JAVA, JS, PY, RUBY, Check, Hit, Source, call_args, rule

_SQL_KW = re.compile(
    r"\bselect\b[\s\S]*?\bfrom\b|\binsert\s+into\b|\bupdate\s+[\w.\"`]+\s+set\b|\bdelete\s+from\b|\bwhere\b"
    r"|\border\s+by\b|\b(?:create|drop|alter|truncate)\s+table\b|\bvalues\s*\(",
    re.I,
)
# Continuations appended with += / << to a query variable.
_SQL_TAIL = re.compile(r"\b(?:AND|OR|WHERE|ORDER BY|GROUP BY|LIMIT|OFFSET|SET|VALUES|IN|LIKE)\b")
_CONSTANT = re.compile(r"^[A-Z_][A-Z0-9_.]*$")

_PY_STR = re.compile(
    r"(?<![\w])(?P<p>[rRbBuUfF]{0,2})(?P<s>\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*')"
)
_C_STR = re.compile(r"(?P<p>)(?P<s>`(?:[^`\\]|\\.)*`|\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*')")
_GO_STR = re.compile(r"(?P<p>)(?P<s>`[^`]*`|\"(?:[^\"\\\n]|\\.)*\")")
_RB_STR = re.compile(
    r"(?P<p>)(?P<s>\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|%Q?\{[^}\n]*\}|%Q?\([^)\n]*\))"
)

_PY_FIELD = re.compile(r"\{([^{}]+)\}")
_JS_FIELD = re.compile(r"\$\{([^}]+)\}")
_RB_FIELD = re.compile(r"#\{([^}]+)\}")
_AFTER_PLUS_VAR = re.compile(r"\s*\+\s*(?![rRbBuUfF]{0,2}[\"'`]|\d)[\w(]")
_BEFORE_PLUS_VAR = re.compile(r"(?<![\"'`])[\w)\]]\s*\+\s*$")


def _fields_unsafe(fields: list[str]) -> bool:
    """True unless every interpolated expression is a constant (an identifier, not input)."""
    return any(not _CONSTANT.match(f.split("!")[0].split(":")[0].strip()) for f in fields)


def _concat(expr: str, m: re.Match[str]) -> bool:
    return bool(_AFTER_PLUS_VAR.match(expr, m.end()) or _BEFORE_PLUS_VAR.search(expr[: m.start()]))


def _py_formatted(expr: str, keywords: re.Pattern[str]) -> bool:
    lits = list(_PY_STR.finditer(expr))
    if not lits or not keywords.search(" ".join(m.group("s") for m in lits)):
        return False
    for m in lits:
        body = m.group("s")
        if "f" in m.group("p").lower():
            fields = _PY_FIELD.findall(body.replace("{{", "").replace("}}", ""))
            if fields and _fields_unsafe(fields):
                return True
        rest = expr[m.end() :]
        if re.match(r"\s*%\s*[\w(\[{]", rest) or re.match(r"\s*\.format\s*\(", rest) or _concat(expr, m):
            return True
    return False


def _js_formatted(expr: str, keywords: re.Pattern[str]) -> bool:
    lits = list(_C_STR.finditer(expr))
    if not lits or not keywords.search(" ".join(m.group("s") for m in lits)):
        return False
    for m in lits:
        body = m.group("s")
        if body.startswith("`"):
            tagged = re.search(r"[\w$.]\s*$", expr[: m.start()]) is not None
            fields = _JS_FIELD.findall(body)
            if fields and not tagged and _fields_unsafe(fields):
                return True
        elif _concat(expr, m):
            return True
    return False


def _go_formatted(expr: str, keywords: re.Pattern[str]) -> bool:
    for m in _GO_STR.finditer(expr):
        body = m.group("s")
        if not keywords.search(body):
            continue
        if re.search(r"\bfmt\.Sprintf\s*\(\s*$", expr[: m.start()]) and re.search(
            r"%[-+# 0-9.]*[sdvqx]", body
        ):
            return True
        if _concat(expr, m):
            return True
    return False


def _java_formatted(expr: str, keywords: re.Pattern[str]) -> bool:
    for m in _C_STR.finditer(expr):
        body = m.group("s")
        if not keywords.search(body):
            continue
        if re.search(r"\bString\.format\s*\(\s*$", expr[: m.start()]) or re.match(
            r"\s*\.formatted\(", expr[m.end() :]
        ):
            return True
        if _concat(expr, m):
            return True
    return False


def _rb_formatted(expr: str, keywords: re.Pattern[str] | None) -> bool:
    for m in _RB_STR.finditer(expr):
        body = m.group("s")
        if keywords is not None and not keywords.search(body):
            continue
        if not body.startswith("'"):
            fields = _RB_FIELD.findall(body)
            safe = re.compile(
                r"^(?:[A-Z_][A-Z0-9_:]*|(?:self\.class\.|\w+\.)?(?:quoted_)?table_name|\w+\.quote\(.*\))$"
            )
            if fields and any(not safe.match(f.strip()) for f in fields):
                return True
        if _concat(expr, m):
            return True
    return False


@dataclass(frozen=True)
class _Lang:
    call: re.Pattern[str]
    formatted: Callable[[str, re.Pattern[str]], bool]
    assign: str  # template with {name}
    args_checked: int = 1


_LANGS = {
    "py-sql-format": _Lang(
        re.compile(
            r"(?:\.(?:execute|executemany|executescript|mogrify|exec_driver_sql|raw|read_sql|read_sql_query)"
            r"|(?<![\w.])(?:text|RawSQL|read_sql|read_sql_query)|\bsa\.text|\bsqlalchemy\.text)\s*\("
        ),
        _py_formatted,
        r"^\s*{name}\s*(\+?=)(?!=)",
    ),
    "js-sql-template": _Lang(
        re.compile(
            r"\.(?:query|execute|raw|\$queryRawUnsafe|\$executeRawUnsafe|unsafe|whereRaw|joinRaw)\s*\("
        ),
        _js_formatted,
        r"^\s*(?:(?:const|let|var)\s+)?{name}\s*(?::\s*[\w<>\[\]]+\s*)?(\+?=)(?!=)",
    ),
    "go-sql-format": _Lang(
        re.compile(
            r"\.(?:Query|QueryRow|QueryContext|QueryRowContext|Exec|ExecContext|Prepare|PrepareContext"
            r"|Queryx|QueryRowx|Select|Get|Raw|MustExec|NamedExec)\s*\("
        ),
        _go_formatted,
        r"^\s*(?:var\s+)?{name}\s*(?:string\s*)?(:=|\+?=)(?!=)",
        args_checked=2,
    ),
    "java-sql-concat": _Lang(
        re.compile(
            r"\.(?:executeQuery|executeUpdate|executeLargeUpdate|execute|addBatch|prepareStatement|prepareCall"
            r"|createQuery|createNativeQuery|createSQLQuery|queryForObject|queryForList|queryForMap"
            r"|queryForRowSet|query|update|batchUpdate)\s*\("
        ),
        _java_formatted,
        r"^\s*(?:final\s+)?(?:String\s+)?{name}\s*(\+?=)(?!=)",
    ),
}

# ActiveRecord methods whose string argument is an SQL fragment by contract.
_RB_FRAGMENT = re.compile(
    r"(?:\.|^\s*|\s)(?:where|having|order|reorder|group|joins|pluck|from|lock|delete_all|update_all|exists\?|"
    r"find_by|calculate|not)\s*\(\s*(?=[\"%])"
)
_RB_QUERY = re.compile(
    r"(?:\.|\b)(?:find_by_sql|count_by_sql|exec_query|execute|select_all|select_one|select_value|select_values"
    r"|select_rows|exec_update|exec_delete|exec_insert)\s*\(?"
)


def _tainted(src: Source, i: int, name: str, lang: _Lang, keywords: re.Pattern[str]) -> int | None:
    """Index of a line above ``i`` that assigns ``name`` formatted SQL, if one is visible."""
    assign = re.compile(lang.assign.format(name=re.escape(name)))
    for j in src.code_lines(i, -1, 60):
        m = assign.match(src.lines[j])
        if m is None:
            continue
        text, _ = src.statement(j)
        rhs = text[m.end() :]
        if lang.formatted(rhs, keywords) or (m.group(1) == "+=" and lang.formatted(rhs, _SQL_TAIL)):
            return j
        if m.group(1) in ("=", ":="):
            return None
    return None


_INTERP_LINE = re.compile(r"\{|%|\.format\(|\+|\$\{|#\{|Sprintf|String\.format")


def _generic(rule_id: str) -> Callable[[Source], Iterator[Hit]]:
    lang = _LANGS[rule_id]

    def run(src: Source) -> Iterator[Hit]:
        for i, _ in src.line_matches(lang.call):
            text, end = src.statement(i)
            for lm in lang.call.finditer(src.lines[i]):
                yield from _check_call(src, lang, i, text, end, lm)

    return run


def _check_call(src: Source, lang: _Lang, i: int, text: str, end: int, lm: re.Match[str]) -> Iterator[Hit]:
    """Hits for one query call: a formatted first argument, or a variable assigned formatted SQL."""
    args, _ = call_args(text, lm)
    for arg in args[: lang.args_checked]:
        if lang.formatted(arg, _SQL_KW):
            k = src.first_added(i, end, _INTERP_LINE)
            if k is not None:
                yield Hit(k)
            break
        if re.fullmatch(r"[A-Za-z_]\w*", arg):
            j = _tainted(src, i, arg, lang, _SQL_KW)
            if j is not None:
                _, jend = src.statement(j)
                k = src.first_added(j, jend, _INTERP_LINE)
                yield Hit(k if k is not None else i)
                break


def _ruby(src: Source) -> Iterator[Hit]:
    for i, m in src.line_matches(_RB_FRAGMENT):
        text, _ = src.statement(i)
        args, _ = call_args(text, m) if m.group(0).endswith("(") else ([text[m.end() :]], -1)
        if args and _rb_formatted(args[0], None):
            yield Hit(i)
    for i, m in src.line_matches(_RB_QUERY):
        text, _ = src.statement(i)
        rest = text[m.end() :]
        first = call_args(text, m)[0][:1] if m.group(0).endswith("(") else [rest]
        if first and _rb_formatted(first[0], _SQL_KW):
            yield Hit(i)


_MSG = "SQL text is assembled from values at runtime, so a crafted value changes the query (SQL injection)."

CHECKS = (
    Check(
        rule(
            "py-sql-format",
            "SQL built with string formatting",
            Category.DATABASE,
            Severity.CRITICAL,
            PY,
            _MSG,
            "Pass values as query parameters (cursor.execute(sql, params) / text(...).bindparams), never via "
            "f-strings, %, .format or +.",
            0.9,
        ),
        _generic("py-sql-format"),
        needles=("execute", "raw", "text(", "read_sql", "mogrify"),
    ),
    Check(
        rule(
            "js-sql-template",
            "SQL built with a template literal or concatenation",
            Category.DATABASE,
            Severity.CRITICAL,
            JS,
            _MSG,
            "Use placeholders ($1 / ?) with a values array, or a tagged sql`` template that parameterises.",
            0.85,
        ),
        _generic("js-sql-template"),
        needles=("query", "execute", "raw", "unsafe"),
    ),
    Check(
        rule(
            "go-sql-format",
            "SQL built with fmt.Sprintf or concatenation",
            Category.DATABASE,
            Severity.CRITICAL,
            GO,
            _MSG,
            "Use placeholders ($1 / ?) and pass the values as arguments to Query/Exec.",
            0.9,
        ),
        _generic("go-sql-format"),
        needles=("query", "exec", "prepare", "select(", "get(", "raw("),
    ),
    Check(
        rule(
            "java-sql-concat",
            "SQL built by string concatenation",
            Category.DATABASE,
            Severity.CRITICAL,
            JAVA,
            _MSG,
            "Use a PreparedStatement with ? placeholders (or named parameters) and bind the values.",
            0.85,
        ),
        _generic("java-sql-concat"),
        needles=("execute", "prepare", "query", "update(", "addbatch"),
    ),
    Check(
        rule(
            "rb-sql-interpolation",
            "SQL fragment built with string interpolation",
            Category.DATABASE,
            Severity.CRITICAL,
            RUBY,
            _MSG,
            'Use hash conditions or placeholders: where("name = ?", name) / where(name: name); '
            "sanitize_sql for raw SQL.",
            0.85,
        ),
        _ruby,
        needles=(
            "where",
            "having",
            "order",
            "group",
            "joins",
            "pluck",
            "from",
            "lock",
            "_all",
            "exists?",
            "find_by",
            "calculate",
            "not",
            "sql",
            "exec",
            "select",
        ),
    ),
)
