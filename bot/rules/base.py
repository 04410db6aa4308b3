"""Building blocks of the offline reviewer: the rule record, a per-file view of the diff, text helpers.

Checks look only at what a change adds. A :class:`Source` holds the RIGHT side of every hunk (added and
context lines, in file order) so a check can read a few lines around an added line, but the engine only
ever reports on added lines.

Checks read the code with its comments blanked (:mod:`bot.rules.comments`), so no comment, trailing or on
lines of its own, changes what they report (P-01); windows and statement limits count code lines only.
The head file's text stays in :attr:`Source.raw` for evidence and for checks that read comments too.
"""

from __future__ import annotations

import bisect
import copy
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import MappingProxyType

from bot.models import Category, FileDiff, Severity
from bot.rules.comments import strip_comments
from bot.rules.dialect import UNKNOWN_PROJECT, ProjectDialects, dialect_of


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    category: Category
    severity: Severity
    languages: frozenset[str]  # empty: any file, whatever its language
    message: str
    fix: str  # generic remedy: the fallback for a language without its own entry in ``fixes``
    confidence: float
    # language -> the remedy in that language's own API, so a finding names the fix for the code at hand
    fixes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def fix_for(self, language: str | None) -> str:
        return self.fixes.get(language or "", self.fix)


@dataclass(frozen=True, slots=True)
class Hit:
    index: int  # index into Source.lines
    suggestion: str | None = None
    detail: str | None = None  # what this occurrence is, between the rule's message and its fix
    confidence: float | None = None  # overrides the rule's, e.g. lower when a premise is unknown


@dataclass(frozen=True)
class Check:
    rule: Rule
    run: Callable[[Source], Iterable[Hit]]
    skip_tests: bool = True  # test code legitimately hard-codes secrets, skips timeouts, etc.
    # Lower-case substrings at least one of which every line the check can flag contains: a C-speed
    # prefilter, so the regexes run only on candidate lines.
    needles: tuple[str, ...] = ()
    in_comments: bool = False  # reads the raw text: a leaked key is a leak even in a comment
    migrations_only: bool = False


def rule(
    id: str,
    title: str,
    category: Category,
    severity: Severity,
    languages: Iterable[str],
    message: str,
    fix: str,
    confidence: float = 0.8,
    fixes: Mapping[str, str] | None = None,
) -> Rule:
    by_lang = dict(fixes or {})
    if "javascript" in by_lang:
        by_lang.setdefault("typescript", by_lang["javascript"])  # same libraries and APIs
    langs = frozenset(languages)
    return Rule(id, title, category, severity, langs, message, fix, confidence, MappingProxyType(by_lang))


PY = frozenset({"python"})
JS = frozenset({"javascript", "typescript"})
GO = frozenset({"go"})
JAVA = frozenset({"java"})
RUBY = frozenset({"ruby"})
SQL = frozenset({"sql"})
CODE = PY | JS | GO | JAVA | RUBY
MIGRATION_LANGS = SQL | PY | RUBY | JS

_EXTENSIONS = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".go": "go",
    ".java": "java",
    ".rb": "ruby",
    ".rake": "ruby",
    ".sql": "sql",
}


def language_of(path: str) -> str | None:
    """The language a path is checked as, from its extension; None for everything else."""
    p = PurePosixPath(path)
    if p.name in ("Rakefile", "Gemfile"):
        return "ruby"
    return _EXTENSIONS.get(p.suffix.lower())


_TEST_PATH = re.compile(
    r"(?:^|/)(?:tests?|spec|specs|__tests__|__mocks__|testdata|fixtures?|testing|e2e|cypress|playwright"
    r"|test[_-]?(?:utils?|helpers?|support|fixtures)|testutils?|testhelpers?|mocks?|fakes?|stubs?)/"
    r"|(?:^|/)test_[^/]*\.py$|_test\.(?:py|go|rb)$|_spec\.rb$|\.(?:spec|test|e2e|cy)\.[cm]?[jt]sx?$"
    r"|(?:Test|Tests|IT)\.java$|(?:^|/)(?:conftest\.py|test_helper\.rb|spec_helper\.rb|rails_helper\.rb)$"
    r"|(?:^|/|_)(?:testutils?|testhelpers?|test_?utils?|test_?helpers?|mocks?|fakes?)\.\w+$",
    re.I,
)
# Support code for tests outside test paths (a Go helper in the package itself, a shared test utility):
# it imports a test framework. Read on the visible code, comments blanked.
_TEST_IMPORT = re.compile(
    r"^\s*(?:import\s+)?\"(?:testing|net/http/httptest|github\.com/stretchr/testify/\w+)\"\s*$"
    r"|^\s*(?:import|from)\s+(?:pytest|unittest|factory|faker)\b"
    r"|\bfrom\s+['\"](?:vitest|@jest/globals|@playwright/test|cypress|supertest|@testing-library/\w+)['\"]"
    r"|\brequire\(\s*['\"](?:supertest|chai|sinon)['\"]\s*\)"
    r"|^\s*require\s+['\"](?:rspec|minitest|rails_helper|spec_helper|test_helper)\b"
    r"|^\s*import\s+(?:static\s+)?org\.(?:junit|mockito|testng)\.",
    re.M,
)


def is_test_path(path: str) -> bool:
    return _TEST_PATH.search(path) is not None


_MIGRATION_PATH = re.compile(
    r"(?:^|/)(?:migrations?|migrate|alembic|flyway|db/changelog|schema_migrations)/"
    r"|(?:^|/)[VUR]\d+(?:[._]\d+)*__\w[^/]*\.sql$"
    r"|(?:^|/)\d+_[^/]*\.(?:up|down)\.sql$",
    re.IGNORECASE,
)
_DOWN_FILE = re.compile(
    r"(?:\.down\.sql|_down\.sql|(?:^|/)down\.sql|(?:^|/)U\d+(?:[._]\d+)*__\w[^/]*\.sql)$", re.I
)


def is_migration_path(path: str) -> bool:
    if PurePosixPath(path).name == "__init__.py":
        return False
    return _MIGRATION_PATH.search(path) is not None


_DIRECTION = re.compile(
    r"^\s*(?:def\s+(?P<d1>up|upgrade\w*|change|down|downgrade\w*|rollback)\b"
    r"|(?:export\s+)?(?:async\s+)?function\s+(?P<d2>up|down)\b"
    r"|exports\.(?P<d3>up|down)\b"
    r"|(?:async\s+)?(?P<d4>up|down)\s*(?:\(|:\s*(?:async\s*)?(?:function|\())"
    r"|--\s*\+?(?:goose\s+|migrate[:\s]\s*)(?P<d5>up|down)\b)",
    re.IGNORECASE,
)
# goose / golang-migrate sections are SQL comments that the migration tool executes by: read them raw.
_SQL_DIRECTIVE = re.compile(r"^\s*--\s*\+?(?:goose\s+|migrate[:\s]\s*)(?:up|down)\b", re.I)


MAX_CODE_LINE = 10_000  # chars: longer lines are machine-made; the checks read them as blank


def _blank_long(line: str) -> str:
    return "" if len(line) > MAX_CODE_LINE else line


class Source:
    """The RIGHT side of one file's hunks, with helpers to read statements around an added line."""

    def __init__(
        self, fd: FileDiff, language: str | None, project: ProjectDialects = UNKNOWN_PROJECT
    ) -> None:
        self.path = fd.path
        self.project = project
        self._dialect: tuple[str | None] | None = None
        self.language = language
        self.status = fd.status
        self.is_test = is_test_path(fd.path)
        self.is_migration = is_migration_path(fd.path)
        self.is_down_file = _DOWN_FILE.search(fd.path) is not None
        lines: list[str] = []
        nos: list[int] = []
        added: list[bool] = []
        hunk_of: list[int] = []
        code: list[str] = []
        self.sections = tuple(h.section for h in fd.hunks)
        for hid, h in enumerate(fd.hunks):
            first = len(lines)
            for ln in h.lines:
                if ln.kind == "-" or ln.new_no is None:
                    continue
                lines.append(ln.text)
                nos.append(ln.new_no)
                added.append(ln.kind == "+")
                hunk_of.append(hid)
            # Each hunk is lexed on its own: what lies between hunks is unknown.
            code.extend(strip_comments(lines[first:], language, mid_file=h.new_start > 1))
        # A machine-made line (bundle, data dump, one-line generated file) is not code anyone reads: it is
        # blanked in both views, so no check scans megabytes of it (a 20 MB one-line file took 20 s).
        long_lines = any(len(t) > MAX_CODE_LINE for t in lines)
        if long_lines:
            code = [_blank_long(c) for c in code]
        self._readable_raw = [_blank_long(t) for t in lines] if long_lines else lines
        self.raw = lines  # the head file's lines: evidence, and what in_comments checks read
        # Comments blanked, same lengths (but for blanked long lines), so columns agree with raw; the raw
        # list itself when there is neither.
        self.lines = lines if code == lines else code
        self.nos = nos
        self.added = added
        self.hunk_of = hunk_of
        self.text = "\n".join(code)
        self.is_test = self.is_test or _TEST_IMPORT.search(self.text) is not None
        starts = []
        pos = 0
        for t in code:  # the views' line lengths: raw but for blanked machine-made lines
            starts.append(pos)
            pos += len(t) + 1
        self._starts = starts
        self._lower: str | None = None
        self._code_idx: list[int] | None = None
        self._raw_view: Source | None = None
        self.candidates: list[int] | None = None

    @property
    def dialect(self) -> str | None:
        """The SQL dialect this (migration) file runs on, None when unknown (:mod:`bot.rules.dialect`)."""
        if self._dialect is None:
            self._dialect = (dialect_of(self.path, self.text, self.project),)
        return self._dialect[0]

    def raw_view(self) -> Source:
        """This view with the comments left in (for checks that look for secrets in any text)."""
        if self._readable_raw is self.lines:
            return self
        if self._raw_view is None:
            view = copy.copy(self)
            view.lines = self._readable_raw
            view.text = "\n".join(self._readable_raw)
            view._lower = None
            view._code_idx = None
            view.candidates = None
            self._raw_view = view
        return self._raw_view

    def focus(self, needles: tuple[str, ...]) -> bool:
        """Restrict :meth:`line_matches` to added lines holding a needle; False when there are none."""
        if not needles:
            self.candidates = None
            return True
        if self._lower is None:
            self._lower = self.text.lower()
        lower = self._lower
        found: set[int] = set()
        for needle in needles:
            pos = lower.find(needle)
            while pos >= 0:
                i = bisect.bisect_right(self._starts, pos) - 1
                if self.added[i]:
                    found.add(i)
                pos = lower.find(needle, self._starts[i + 1] if i + 1 < len(self._starts) else len(lower))
        self.candidates = sorted(found)
        return bool(found)

    # -- locating -------------------------------------------------------------------------------------

    def matches(self, pattern: re.Pattern[str]) -> Iterator[tuple[int, re.Match[str]]]:
        """Every match of ``pattern`` over the view that starts on an added line: (line index, match)."""
        text = self.text
        for m in _multiline(pattern).finditer(text):
            pos = m.start()
            while pos < m.end() and text[pos] in " \t\r\n":
                pos += 1  # a leading \s* may have started on a blank line above
            i = bisect.bisect_right(self._starts, pos if pos < m.end() else m.start()) - 1
            if self.added[i]:
                yield i, m

    def line_matches(self, pattern: re.Pattern[str]) -> Iterator[tuple[int, re.Match[str]]]:
        """Like :meth:`matches` but at most once per line, and the match is re-run on that line alone."""
        if self.candidates is not None:
            for i in self.candidates:
                m = pattern.search(self.lines[i])
                if m is not None:
                    yield i, m
            return
        last = -1
        for i, _ in self.matches(pattern):
            if i == last:
                continue
            last = i
            m = pattern.search(self.lines[i])
            if m is not None:
                yield i, m

    def contains(self, pattern: re.Pattern[str]) -> bool:
        return pattern.search(self.text) is not None

    def indent(self, i: int) -> int:
        t = self.lines[i]
        return len(t) - len(t.lstrip())

    def span(self, i: int, before: int, after: int) -> range:
        """From the ``before``-th code line above ``i`` through the ``after``-th code line below it."""
        if self._code_idx is None:
            self._code_idx = [k for k, t in enumerate(self.lines) if t.strip()]
        idx = self._code_idx
        lo = bisect.bisect_left(idx, i)
        hi = bisect.bisect_right(idx, i)
        start = idx[lo - before] if lo - before >= 0 else 0
        stop = idx[hi + after - 1] + 1 if hi + after - 1 < len(idx) else len(self.lines)
        return range(min(start, i), max(stop, i + 1))

    def window(self, i: int, before: int, after: int) -> str:
        r = self.span(i, before, after)
        return "\n".join(self.lines[r.start : r.stop])

    def next_code(self, i: int) -> int | None:
        """Index of the next code line after ``i`` in the same hunk."""
        return next(self.code_lines(i, 1, 1), None)

    def code_lines(self, i: int, step: int, count: int) -> Iterator[int]:
        """Up to ``count`` code lines after (step 1) or before (step -1) line ``i``, in the same hunk."""
        j = i + step
        hunk = self.hunk_of[i]
        while count > 0 and 0 <= j < len(self.lines) and self.hunk_of[j] == hunk:
            if self.lines[j].strip():
                yield j
                count -= 1
            j += step

    # -- statements -----------------------------------------------------------------------------------

    def statement(self, i: int, limit: int = 15) -> tuple[str, int]:
        """Lines from ``i`` until brackets and multi-line strings close: (joined text, last index)."""
        depth = 0
        quote: str | None = None
        j = i
        for nxt in self.code_lines(i, 1, limit - 1):
            depth, quote = scan(self.lines[j], depth, quote)
            if depth <= 0 and quote is None:
                break
            j = nxt
        return "\n".join(self.lines[i : j + 1]), j

    def sql_statement(self, i: int, limit: int = 12) -> tuple[str, int]:
        """Lines from ``i`` through the one holding the terminating ``;``."""
        j = i
        for nxt in self.code_lines(i, 1, limit - 1):
            if ";" in self.lines[j]:
                break
            j = nxt
        return "\n".join(self.lines[i : j + 1]), j

    def first_added(self, start: int, end: int, pattern: re.Pattern[str] | None = None) -> int | None:
        """The first added line in [start, end] matching ``pattern`` (else the first added code line)."""
        fallback = None
        for k in range(start, end + 1):
            if not self.added[k] or not self.lines[k].strip():
                continue
            if pattern is None or pattern.search(self.lines[k]):
                return k
            if fallback is None:
                fallback = k
        return fallback

    # -- enclosing blocks -----------------------------------------------------------------------------

    def py_blocks(self, i: int, limit: int = 200) -> Iterator[str]:
        """Stripped headers of the Python blocks around line ``i``, innermost first, as far as visible."""
        ind = self.indent(i)
        hunk = self.hunk_of[i]
        j = i - 1
        seen = 0  # code lines: comment lines and blank lines don't count towards the limit
        while ind > 0 and j >= 0 and seen < limit and self.hunk_of[j] == hunk:
            t = self.lines[j]
            s = t.strip()
            if s:
                seen += 1
                k = len(t) - len(t.lstrip())
                if k < ind:
                    yield s
                    ind = k
            j -= 1
        if ind > 0:
            section = self.sections[self.hunk_of[i]].strip()
            if section:
                yield section

    def direction(self, i: int, limit: int = 3000) -> str:
        """ "down" inside a migration's down/downgrade/rollback part, else "up"."""
        if self.is_down_file:
            return "down"
        j = i
        hunk = self.hunk_of[i]
        seen = 0
        while j >= 0 and seen <= limit:
            if self.hunk_of[j] != hunk:
                found = _direction_of(self.sections[hunk])
                if found:
                    return found
                hunk = self.hunk_of[j]
            line = self.lines[j]
            if line.strip():
                seen += 1
                found = _direction_of(line)
                if found:
                    return found
            elif self.language == "sql" and _SQL_DIRECTIVE.match(self.raw[j]):
                return _direction_of(self.raw[j]) or "up"
            j -= 1
        return _direction_of(self.sections[hunk]) or "up"


_MULTILINE: dict[re.Pattern[str], re.Pattern[str]] = {}


def _multiline(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """``pattern`` with ^ and $ at line boundaries, so a whole-view search agrees with a per-line one."""
    if pattern.flags & re.M:
        return pattern
    found = _MULTILINE.get(pattern)
    if found is None:
        found = _MULTILINE[pattern] = re.compile(pattern.pattern, pattern.flags | re.M)
    return found


def _direction_of(line: str) -> str | None:
    m = _DIRECTION.match(line)
    if m is None:
        return None
    word = next(g for g in m.groups() if g).lower()
    return "down" if word.startswith(("down", "rollback")) else "up"


def scan(line: str, depth: int, quote: str | None) -> tuple[int, str | None]:
    """Advance a (bracket depth, open multi-line string) state over one line of code (comments blanked)."""
    i = 0
    n = len(line)
    while i < n:
        c = line[i]
        if quote is not None:
            if c == "\\":
                i += 2
                continue
            if line.startswith(quote, i):
                i += len(quote)
                quote = None
                continue
            i += 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c in "\"'`":
            if c != "`" and line.startswith(c * 3, i):
                quote = c * 3
                i += 3
                continue
            quote = c
        i += 1
    if quote in ('"', "'"):
        quote = None  # an unterminated one-line string: don't let it swallow the next lines
    return depth, quote


def split_args(text: str, open_idx: int) -> tuple[list[str], int]:
    """Top-level arguments of the call whose ``(`` is at ``open_idx``: (args, index of ``)`` or -1)."""
    args: list[str] = []
    depth = 0
    quote: str | None = None
    start = open_idx + 1
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if quote is not None:
            if c == "\\":
                i += 2
                continue
            if text.startswith(quote, i):
                i += len(quote)
                quote = None
                continue
            i += 1
            continue
        if c in "\"'`":
            quote = c * 3 if c != "`" and text.startswith(c * 3, i) else c
            i += len(quote)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                tail = text[start:i].strip()
                if tail or args:
                    args.append(tail)
                return args, i
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    tail = text[start:].strip()
    if tail:
        args.append(tail)
    return args, -1


def call_args(text: str, m: re.Match[str]) -> tuple[list[str], int]:
    """Arguments of the call matched by ``m``, whose match must end just after the ``(``."""
    return split_args(text, m.end() - 1)


def kwarg(args: list[str], name: str) -> str | None:
    """The value text of keyword argument ``name`` (``name=`` or ``name:``), else None."""
    pat = re.compile(rf"^{re.escape(name)}\s*(?:=(?!=)|:)\s*(.*)$", re.S)
    for a in args:
        m = pat.match(a)
        if m:
            return m.group(1).strip()
    return None


def positional(args: list[str]) -> list[str]:
    return [a for a in args if not re.match(r"^\*{1,2}|^\w+\s*=(?!=)", a)]


def same_line_call_suggestion(src: Source, i: int, m: re.Match[str], extra: str) -> str | None:
    """Line ``i`` with ``extra`` added as the last argument of the call ``m`` matched, if it closes there.

    The call is parsed in the code and the edit made in the raw line (same columns), so comments stay.
    """
    code, raw = src.lines[i], src.raw[i]
    args, close = split_args(code, m.end() - 1)
    if close < 0:
        return None
    inner = code[m.end() : close]
    if inner.rstrip().endswith(","):
        return raw[: len(inner.rstrip()) + m.end()] + " " + extra + raw[close:]
    sep = ", " if args else ""
    return raw[:close] + sep + extra + raw[close:]
