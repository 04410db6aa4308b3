"""Reliability and performance: missing timeouts, swallowed errors, N+1 queries, blocking async code."""

from __future__ import annotations

import re
from collections.abc import Iterator

from bot.models import Category, Severity
from bot.rules.base import (
    GO,
    JAVA,
    JS,
    PY,
    RUBY,
    Check,
    Hit,
    Source,
    call_args,
    kwarg,
    rule,
    same_line_call_suggestion,
)

# -- outbound calls without a timeout ------------------------------------------------------------------

_REQUESTS = re.compile(r"\brequests\.(?:get|post|put|patch|delete|head|options|request)\s*\(")
_URLOPEN = re.compile(r"(?<![\w])(?:urllib\.request\.)?urlopen\s*\(")
_HTTPX_NO_TIMEOUT = re.compile(
    r"\bhttpx\.(?:get|post|put|patch|delete|head|options|request|stream|Client|AsyncClient)\s*\("
)


def _py_timeout(src: Source) -> Iterator[Hit]:
    for i, m in src.line_matches(_REQUESTS):
        text, _ = src.statement(i)
        args, close = call_args(text, m)
        if close < 0 or any(a.startswith("**") for a in args):
            continue
        timeout = kwarg(args, "timeout")
        if timeout is None:
            yield Hit(i, same_line_call_suggestion(src, i, m, "timeout=10"))
        elif timeout == "None":
            yield Hit(i)
    for i, m in src.line_matches(_URLOPEN):
        text, _ = src.statement(i)
        args, close = call_args(text, m)
        if (
            close >= 0
            and kwarg(args, "timeout") is None
            and len(args) < 3
            and not any(a.startswith("**") for a in args)
        ):
            yield Hit(i, same_line_call_suggestion(src, i, m, "timeout=10"))
    for i, m in src.line_matches(_HTTPX_NO_TIMEOUT):
        text, _ = src.statement(i)
        args, _ = call_args(text, m)
        if kwarg(args, "timeout") == "None":
            yield Hit(i)


_GO_DEFAULT_CLIENT = re.compile(
    r"\bhttp\.(?:Get|Post|PostForm|Head)\s*\(|\bhttp\.DefaultClient\.\w+\s*\(|\bnew\(\s*http\.Client\s*\)"
)
_GO_CLIENT_LIT = re.compile(r"\bhttp\.Client\s*\{")


def _go_timeout(src: Source) -> Iterator[Hit]:
    for i, _ in src.line_matches(_GO_DEFAULT_CLIENT):
        yield Hit(i)
    for i, m in src.line_matches(_GO_CLIENT_LIT):
        text, end = src.statement(i)
        body = text[m.end() :]
        if re.search(r"\bTimeout\s*:", body):
            continue
        after = "\n".join(src.lines[k] for k in src.code_lines(end, 1, 5))
        if re.search(r"\.Timeout\s*=", after):
            continue
        yield Hit(i)


# -- swallowed errors ------------------------------------------------------------------------------------

_PY_EXCEPT = re.compile(
    r"^(?P<ind>\s*)except\s*(?:\(?\s*(?:Exception|BaseException)(?:\s*,\s*[\w.]+)*\s*\)?(?:\s+as\s+\w+)?)?\s*:(?P<rest>.*)$"
)
_PY_SUPPRESS = re.compile(r"\b(?:contextlib\.)?suppress\s*\(\s*(?:Exception|BaseException)\s*\)")


def _py_swallow(src: Source) -> Iterator[Hit]:
    for i in range(len(src.lines)):
        line = src.lines[i]
        if "except" not in line:
            continue
        m = _PY_EXCEPT.match(line)
        if m is None:
            continue
        rest = m.group("rest").strip()
        if rest:
            if rest in ("pass", "...") and src.added[i]:
                yield Hit(i)
            continue
        j = src.next_code(i)
        if j is None or src.indent(j) <= len(m.group("ind")):
            continue
        if src.lines[j].strip() not in ("pass", "..."):
            continue  # a comment or real handling: deliberate
        k = src.next_code(j)
        if k is not None and src.indent(k) == src.indent(j):
            continue
        if src.added[i]:
            yield Hit(i)
        elif src.added[j]:
            yield Hit(j)
    for i, _ in src.line_matches(_PY_SUPPRESS):
        yield Hit(i, confidence=0.5)  # an explicit suppress() is a visible, deliberate choice: a hint


_JS_EMPTY_CATCH = re.compile(
    r"\bcatch\s*(?:\(\s*[\w$]*\s*(?::\s*\w+\s*)?\))?\s*\{\s*\}|\.catch\s*\(\s*(?:\(\s*[\w$]*\s*\)|[\w$]+)\s*=>\s*\{\s*\}\s*\)"
)
_JS_CATCH_OPEN = re.compile(r"\bcatch\s*(?:\(\s*[\w$]*\s*(?::\s*\w+\s*)?\))?\s*\{\s*$")


def _empty_block(src: Source, open_re: re.Pattern[str], one_line: re.Pattern[str]) -> Iterator[Hit]:
    for i, _ in src.line_matches(one_line):
        yield Hit(i)
    for i, _ in src.line_matches(open_re):
        j = src.next_code(i)
        if j is not None and src.lines[j].strip().startswith("}"):
            yield Hit(i)


def _js_catch(src: Source) -> Iterator[Hit]:
    return _empty_block(src, _JS_CATCH_OPEN, _JS_EMPTY_CATCH)


_JAVA_CATCH = (
    r"\bcatch\s*\(\s*(?:final\s+)?[\w.]+(?:\s*\|\s*[\w.]+)*\s+"
    r"(?!ignored\b|ignore\b|expected\b|_\b)\w+\s*\)\s*\{"
)
_JAVA_EMPTY_CATCH = re.compile(_JAVA_CATCH + r"\s*\}")
_JAVA_CATCH_OPEN = re.compile(_JAVA_CATCH + r"\s*$")


def _java_catch(src: Source) -> Iterator[Hit]:
    return _empty_block(src, _JAVA_CATCH_OPEN, _JAVA_EMPTY_CATCH)


_GO_IGNORED = re.compile(
    r"^\s*_\s*=\s*err\s*$"
    r"|^\s*\w+\s*,\s*_\s*:?=\s*(?:strconv\.\w+|json\.Marshal\w*|io\.ReadAll|ioutil\.Read\w+|os\.(?:ReadFile|Open\w*|Create)"
    r"|http\.NewRequest\w*|url\.Parse\w*|time\.Parse\w*|uuid\.Parse|[\w.]+\.(?:Exec|ExecContext|Begin|BeginTx))\s*\("
    r"|^\s*_\s*=\s*(?:json\.Unmarshal|[\w.]+\.(?:Commit|Exec|ExecContext|Scan|Ping|Unmarshal))\s*\("
    r"|^\s*(?:json\.Unmarshal|[\w.]+\.(?:Exec|ExecContext|Commit|Scan))\s*\("
)


def _go_ignored(src: Source) -> Iterator[Hit]:
    for i, _ in src.line_matches(_GO_IGNORED):
        yield Hit(i)


_RB_RESCUE_NIL = re.compile(r"\S\s+rescue\s+nil\b")
_RB_RESCUE_OPEN = re.compile(r"^\s*rescue(?:\s+(?:Exception|StandardError))?(?:\s*=>\s*\w+)?\s*$")


def _rb_rescue(src: Source) -> Iterator[Hit]:
    for i, _ in src.line_matches(_RB_RESCUE_NIL):
        yield Hit(i)
    for i, _ in src.line_matches(_RB_RESCUE_OPEN):
        j = src.next_code(i)
        if j is None:
            continue
        body = src.lines[j].strip()
        if body == "end":
            yield Hit(i)
        elif body == "nil":
            k = src.next_code(j)
            if k is not None and src.lines[k].strip() == "end":
                yield Hit(i)


# -- queries in loops ------------------------------------------------------------------------------------

_PY_DB_CALL = re.compile(
    r"\.objects\.(?:get|filter|exclude|create|get_or_create|update_or_create|count|exists|first|last|aggregate"
    r"|values|values_list|raw)\s*\(|\b(?:db\.)?session\.(?:query|get|execute|scalar|scalars)\s*\("
    r"|\.query\.(?:get|filter|filter_by|get_or_404|first_or_404)\s*\("
    r"|\b(?:cursor|cur|conn|connection|db)\.(?:execute|fetch|fetchrow|fetchval)\s*\("
)
_PY_LOOP = re.compile(r"^(?:async\s+)?for\s+.+\s+in\s+.+:")
# A loop over a literal or a module constant (an UPPER_CASE name, its .items()/.keys()/.values(), a small
# range) runs a fixed, small number of times: one query per entry is not an N+1 (data migrations do this).
_PY_BOUNDED_LOOP = re.compile(
    r"^(?:async\s+)?for\s+.+\s+in\s+(?:(?:\[[^()\[\]]*\]|\([^()]*\)|\{[^(){}]*\})(?:\.(?:items|keys|values)\(\))?|[A-Z][A-Z0-9_]*(?:\.(?:items|keys|values)\(\))?"
    r"|range\(\s*\d{1,2}\s*\)|(?:sorted|enumerate)\(\s*[A-Z][A-Z0-9_]*(?:\.(?:items|keys|values)\(\))?\s*\))\s*:$"
)
# One bulk UPDATE/DELETE per key of an in-memory mapping (old → new values in a data migration) is a
# statement per key, not a query per row.
_PY_MAPPING_LOOP = re.compile(r"^(?:async\s+)?for\s+.+\s+in\s+[\w.]+\.(?:items|keys|values)\(\)\s*:$")
_PY_BULK_WRITE = re.compile(r"\.objects\.(?:filter|exclude)\(.*\)\.(?:update|delete)\(")
_PY_COMPREHENSION = re.compile(r"\bfor\s+[\w, ()]+\s+in\s+")


def _py_loop_query(src: Source) -> Iterator[Hit]:
    for i, m in src.line_matches(_PY_DB_CALL):
        if _PY_COMPREHENSION.search(src.lines[i], m.end()):
            yield Hit(i)
            continue
        for header in src.py_blocks(i):
            if _PY_LOOP.match(header):
                bulk_per_key = _PY_MAPPING_LOOP.match(header) and _PY_BULK_WRITE.search(src.lines[i])
                if not _PY_BOUNDED_LOOP.match(header) and not bulk_per_key:
                    yield Hit(i)
                break
            if header.startswith(("def ", "async def ", "class ", "while ")):
                break


_JS_DB_CALL = re.compile(
    r"\bawait\s+(?:this\.)?(?:db|knex|pool|client|conn|connection|sequelize|prisma\.\w+|\w*[Rr]epo(?:sitory)?|[A-Z]\w*)"
    r"\.(?:query|findOne|findUnique|findFirst|findById|findByPk|findAll|findMany|count|execute|raw|select|insert"
    r"|update|upsert|create|save|delete|destroy|where)\s*\("
)
_JS_LOOP = re.compile(r"\bfor\s*(?:await\s*)?\(|\bwhile\s*\(|\.(?:forEach|map|flatMap)\s*\(")
_JS_FUNC = re.compile(r"\bfunction\b|=>|^\s*(?:async\s+)?[\w$]+\s*\([^)]*\)\s*\{")


def _js_loop_query(src: Source) -> Iterator[Hit]:
    for i, m in src.line_matches(_JS_DB_CALL):
        if _JS_LOOP.search(src.lines[i][: m.start()]):
            yield Hit(i)
            continue
        level = 0
        for j in src.code_lines(i, -1, 60):
            t = src.lines[j]
            level += t.count("}") - t.count("{")
            if level < 0:
                above = next(src.code_lines(j, -1, 1), None) if t.strip() == "{" else None
                header = t if above is None else src.lines[above] + t
                if _JS_LOOP.search(header):
                    yield Hit(i)
                    break
                if _JS_FUNC.search(header):
                    break
                level = 0


_BLOCKING = re.compile(
    r"\btime\.sleep\s*\(|\brequests\.(?:get|post|put|patch|delete|head|options|request)\s*\(|\burllib\.request\.urlopen\s*\("
)


def _py_blocking(src: Source) -> Iterator[Hit]:
    for i, _ in src.line_matches(_BLOCKING):
        for header in src.py_blocks(i):
            if header.startswith("async def "):
                yield Hit(i)
                break
            if header.startswith(("def ", "class ")):
                break


CHECKS = (
    Check(
        rule(
            "py-http-no-timeout",
            "Outbound HTTP call without a timeout",
            Category.PERFORMANCE,
            Severity.MEDIUM,
            PY,
            "requests and urllib wait forever by default: one slow or dead upstream pins the worker (and "
            "under load every worker), turning a partner's outage into yours.",
            "Pass a timeout, e.g. timeout=10 (or a (connect, read) tuple).",
            0.55,  # calibrated: most such calls in working code are long-standing, not this PR's defect
        ),
        _py_timeout,
        needles=("requests.", "urlopen", "httpx."),
    ),
    Check(
        rule(
            "go-http-no-timeout",
            "HTTP client without a timeout",
            Category.PERFORMANCE,
            Severity.MEDIUM,
            GO,
            "http.Get/Post and a zero http.Client{} have no timeout, so a stalled server holds the goroutine "
            "and its connection forever.",
            "Use a client with a timeout: &http.Client{Timeout: 10 * time.Second}, or a context deadline per "
            "request.",
            0.55,  # calibrated: most such calls in working code are long-standing, not this PR's defect
        ),
        _go_timeout,
        needles=("http.",),
    ),
    Check(
        rule(
            "py-swallowed-exception",
            "Exception swallowed",
            Category.ERRORS,
            Severity.MEDIUM,
            PY,
            "A broad except that only passes hides every failure, including bugs, so the system goes wrong "
            "silently and nothing is logged to debug it.",
            "Catch the specific exception you expect, and log or re-raise anything else.",
            0.8,
        ),
        _py_swallow,
        needles=("except", "suppress"),
        skip_tests=False,
    ),
    Check(
        rule(
            "js-empty-catch",
            "Empty catch block",
            Category.ERRORS,
            Severity.MEDIUM,
            JS,
            "An empty catch discards the error, so failures (including rejected promises) disappear "
            "without a "
            "trace.",
            "Handle the error, log it, or rethrow it; a comment does not make an empty catch safe.",
            0.8,
        ),
        _js_catch,
        needles=("catch",),
        skip_tests=False,
    ),
    Check(
        rule(
            "go-ignored-error",
            "Error ignored",
            Category.ERRORS,
            Severity.MEDIUM,
            GO,
            "The error from this call is discarded, so a failed parse, query or commit continues as if it "
            "succeeded, with zero values.",
            'Check it: if err != nil { return fmt.Errorf("...: %w", err) }.',
            0.75,
        ),
        _go_ignored,
        needles=("_ ", "_=", "unmarshal", "exec", "commit", "scan"),
    ),
    Check(
        rule(
            "java-empty-catch",
            "Empty catch block",
            Category.ERRORS,
            Severity.MEDIUM,
            JAVA,
            "An empty catch discards the exception, so failures disappear without a trace.",
            "Handle, log or rethrow it; if ignoring it is deliberate, name the variable `ignored`.",
            0.8,
        ),
        _java_catch,
        needles=("catch",),
        skip_tests=False,
    ),
    Check(
        rule(
            "rb-rescue-nil",
            "Exception swallowed with rescue",
            Category.ERRORS,
            Severity.MEDIUM,
            RUBY,
            "`rescue nil` / an empty rescue hides every StandardError, bugs included, and returns nil to "
            "callers that don't expect it.",
            "Rescue the specific exception class you expect, and log or re-raise the rest.",
            0.8,
        ),
        _rb_rescue,
        needles=("rescue",),
        skip_tests=False,
    ),
    Check(
        rule(
            "py-query-in-loop",
            "Database query inside a loop (N+1)",
            Category.PERFORMANCE,
            Severity.MEDIUM,
            PY,
            "A query per iteration makes one round trip per row: fine in tests, slow and load-amplifying "
            "with production data.",
            "Fetch in one query before the loop (filter(id__in=...), select_related/prefetch_related, "
            "selectinload, a JOIN) or batch writes (bulk_create, executemany).",
            0.65,
        ),
        _py_loop_query,
        needles=("objects.", "session.", "query.", "execute", "fetch"),
    ),
    Check(
        rule(
            "js-query-in-loop",
            "Database query awaited inside a loop (N+1)",
            Category.PERFORMANCE,
            Severity.MEDIUM,
            JS,
            "Awaiting a query per iteration makes one sequential round trip per item, slow and "
            "load-amplifying with production data.",
            "Load all rows in one query (WHERE id IN (...), include/joins) or batch the writes.",
            0.65,
        ),
        _js_loop_query,
        needles=("await",),
    ),
    Check(
        rule(
            "py-blocking-in-async",
            "Blocking call inside async function",
            Category.PERFORMANCE,
            Severity.HIGH,
            PY,
            "time.sleep / requests / urlopen block the event loop, stalling every other request on this "
            "worker until they return.",
            "Use the async equivalent (await asyncio.sleep, httpx.AsyncClient, aiohttp) or run it in "
            "a thread "
            "(await asyncio.to_thread(...)).",
            0.85,
        ),
        _py_blocking,
        needles=("sleep", "requests.", "urlopen"),
    ),
)
