"""Comment blanking per language: code checks see the code, never the comments (P-01).

A comment in a PR is text the author controls, so it must change nothing a code check reports: not
by ending a line a pattern expects to end, not by sitting between the lines of a statement, not by
looking like code. :func:`strip_comments` replaces every comment character with a space and leaves all
other characters where they were (same line lengths, same columns), so positions found in the blanked
text are positions in the head file too. String literals are lexed, so ``"http://x"``, ``"#{x}"`` and
``'--'`` stay code. Lines without any comment or multi-line-string marker take a fast path.

A hunk shows only part of a file, so the lexer starts each hunk in code; a hunk that opens inside a
``/* … */`` block is recognised by its leading ``*`` lines (the javadoc shape), as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class _Quote:
    open: str
    close: str
    escapes: bool
    multiline: bool
    interp: str = ""  # opener of a nested code part ("${", "#{"), closed by the matching "}"
    nest: str = ""  # Ruby %-literal bracket that nests, e.g. "(" for %w(a (b) c)


_BLOCK = ("/*", "*/")
_DQ = _Quote('"', '"', True, False)
_SQ = _Quote("'", "'", True, False)


@dataclass(frozen=True)
class _Syntax:
    line: tuple[str, ...]
    block: tuple[str, str] | None
    quotes: tuple[_Quote, ...]  # longest opener first
    special: re.Pattern[str]  # characters where something may start, in code
    plain: re.Pattern[str]  # a run of code and whole one-line strings holding no such start (C-speed skip)
    triggers: re.Pattern[str]  # a line in code matching this nowhere is code as it stands
    regex: bool = False  # /…/ literals in operand position (JS, Ruby)
    ruby: bool = False  # heredocs, %-literals, =begin/=end
    dollar: bool = False  # SQL dollar quoting: $$…$$, $tag$…$tag$
    star_lead: bool = False  # a hunk may open inside a /* … */ block


@dataclass(slots=True)
class _Frame:
    kind: str  # "q" string, "i" code inside a string, "b" block comment, "h" heredoc body, "=begin"
    quote: _Quote = field(default_factory=lambda: _DQ)
    text: str = ""  # block comment closer, heredoc identifier
    depth: int = 0  # braces inside "i", nested brackets inside a Ruby %-literal


_SYNTAX: dict[str, _Syntax] = {
    "python": _Syntax(
        ("#",),
        None,
        (_Quote('"""', '"""', True, True), _Quote("'''", "'''", True, True), _DQ, _SQ),
        re.compile(r"[#'\"]"),
        re.compile(r"""(?:[^'"#]|"(?:[^"\\]|\\.)*+"(?!")|'(?:[^'\\]|\\.)*+'(?!'))*+"""),
        re.compile(r"#|\"\"\"|'''"),
    ),
    "javascript": _Syntax(
        ("//",),
        _BLOCK,
        (_Quote("`", "`", True, True, "${"), _DQ, _SQ),
        re.compile(r"[/'\"`{}]"),
        re.compile(r"""(?:[^'"`/]|"(?:[^"\\]|\\.)*+"|'(?:[^'\\]|\\.)*+')*+"""),
        re.compile(r"[/`]"),
        regex=True,
        star_lead=True,
    ),
    "go": _Syntax(
        ("//",),
        _BLOCK,
        (_Quote("`", "`", False, True), _DQ, _SQ),
        re.compile(r"[/'\"`]"),
        re.compile(r"""(?:[^'"`/]|"(?:[^"\\]|\\.)*+"|'(?:[^'\\]|\\.)*+')*+"""),
        re.compile(r"[/`]"),
        star_lead=True,
    ),
    "java": _Syntax(
        ("//",),
        _BLOCK,
        (_Quote('"""', '"""', True, True), _DQ, _SQ),
        re.compile(r"[/'\"]"),
        re.compile(r"""(?:[^'"/]|"(?:[^"\\]|\\.)*+"(?!")|'(?:[^'\\]|\\.)*+')*+"""),
        re.compile(r'/|"""'),
        star_lead=True,
    ),
    "ruby": _Syntax(
        ("#",),
        None,
        (
            _Quote('"', '"', True, True, "#{"),
            _Quote("'", "'", True, True),
            _Quote("`", "`", True, True, "#{"),
        ),
        re.compile(r"[#'\"`/%<{}?]"),
        re.compile(r"""(?:[^'"`#/%<?]|"(?:[^"\\#]|\\.|\#(?!\{))*+"|'(?:[^'\\]|\\.)*+')*+"""),
        re.compile(r"(?m)[#'\"`%/?]|<<|^=begin"),
        regex=True,
        ruby=True,
    ),
    "sql": _Syntax(
        ("--",),
        _BLOCK,
        (_Quote("'", "'", False, True), _Quote('"', '"', False, False)),
        re.compile(r"[-/'\"$]"),
        re.compile(r"""(?:[^-/'"$]|-(?!-)|/(?!\*)|'[^']*+'|"[^"]*+")*+"""),
        re.compile(r"--|/\*|['$]"),
        dollar=True,
    ),
}
_SYNTAX["typescript"] = _SYNTAX["javascript"]

# Before a "/" (or a Ruby "%"), these mean an operand comes next, so it opens a literal, not a division.
_OPERAND_BEFORE = frozenset("(,=:[!&|?{};+-*%<>~^")
_OPERAND_WORDS = frozenset(
    (
        "return",
        "typeof",
        "case",
        "in",
        "of",
        "void",
        "delete",
        "instanceof",
        "new",
        "yield",
        "await",
        "when",
        "if",
        "unless",
        "and",
        "or",
        "not",
        "then",
    )
)
_HEREDOC = re.compile(r"<<([~-]?)(['\"`]?)([A-Za-z_]\w*)\2")
_PERCENT = re.compile(r"%([qQwWiIrsx]?)([^\w\s])")
_DOLLAR = re.compile(r"\$(?:[A-Za-z_]\w*)?\$")
_STAR_LEAD = re.compile(r"\s*\*")
_PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}


def strip_comments(lines: Sequence[str], language: str | None, *, mid_file: bool = True) -> list[str]:
    """``lines`` (one contiguous stretch of a file) with every comment character replaced by a space.

    ``mid_file``: the stretch may start inside a block comment (it does not start at the file's top).
    """
    syn = _SYNTAX.get(language or "")
    if syn is None:
        return list(lines)
    text = "\n".join(lines)
    if syn.triggers.search(text) is None and not (syn.star_lead and mid_file and _STAR_LEAD.match(text)):
        return list(lines)
    return _Lexer(syn).run(lines, mid_file)


class _Lexer:
    def __init__(self, syn: _Syntax) -> None:
        self.syn = syn
        self.stack: list[_Frame] = []
        self.heredocs: list[str] = []  # Ruby heredocs opened on this line; their bodies start on the next
        self.regex_line: str | None = None  # the line on which a regex literal failed to close

    def run(self, lines: Sequence[str], mid_file: bool) -> list[str]:
        syn = self.syn
        out: list[str] = []
        leading = syn.star_lead and mid_file
        for line in lines:
            blanks: list[tuple[int, int]] = []
            start = 0
            if leading:
                s = line.lstrip()
                if s[:1] == "*" and (len(s) == 1 or s[1] in " \t/*"):
                    end = line.find("*/")
                    start = len(line) if end < 0 else end + 2
                    blanks.append((0, start))
                    leading = end < 0
                elif s:
                    leading = False
            if not self.stack and syn.triggers.search(line) is None:
                out.append(_blank(line, blanks))
                continue
            self._line(line, start, blanks)
            out.append(_blank(line, blanks))
        return out

    def _line(self, line: str, i: int, blanks: list[tuple[int, int]]) -> None:
        syn = self.syn
        stack = self.stack
        n = len(line)
        if stack and stack[-1].kind == "h":
            if line.strip() == stack[-1].text:
                stack.pop()
            return
        if stack and stack[-1].kind == "=begin":
            blanks.append((0, n))
            if line.startswith("=end"):
                stack.pop()
            return
        if syn.ruby and not stack and line.startswith("=begin"):
            blanks.append((0, n))
            stack.append(_Frame("=begin"))
            return
        while i < n:
            top = stack[-1] if stack else None
            if top is not None and top.kind == "b":
                end = line.find(top.text, i)
                if end < 0:
                    blanks.append((i, n))
                    break
                blanks.append((i, end + len(top.text)))
                stack.pop()
                i = end + len(top.text)
                continue
            if top is not None and top.kind == "q":
                i = self._in_quote(line, i, top)
                continue
            if top is None:
                m = syn.plain.match(line, i)
                assert m is not None  # the pattern matches the empty string
                i = m.end()
                if i >= n:
                    break
            else:
                found = syn.special.search(line, i)
                if found is None:
                    break
                i = found.start()
            c = line[i]
            if top is not None:  # code inside a string's ${…} / #{…}: no comments, only nesting
                if c in "'\"`":
                    i = self._open_quote(line, i)
                    continue
                if c == "{":
                    top.depth += 1
                elif c == "}":
                    if top.depth == 0:
                        stack.pop()
                    top.depth -= 1
                i += 1
                continue
            if any(line.startswith(mark, i) for mark in syn.line):
                blanks.append((i, n))
                break
            if syn.block is not None and line.startswith(syn.block[0], i):
                stack.append(_Frame("b", text=syn.block[1]))
                blanks_from = i
                i += len(syn.block[0])
                end = line.find(syn.block[1], i)
                if end < 0:
                    blanks.append((blanks_from, n))
                    break
                blanks.append((blanks_from, end + len(syn.block[1])))
                stack.pop()
                i = end + len(syn.block[1])
                continue
            i = self._code(line, i, c)
        while stack and stack[-1].kind == "q" and not stack[-1].quote.multiline:
            stack.pop()  # an unterminated one-line string: don't let it swallow the next lines
        if self.heredocs:
            stack.extend(_Frame("h", text=h) for h in reversed(self.heredocs))
            self.heredocs.clear()

    def _code(self, line: str, i: int, c: str) -> int:
        """Past the literal (or the single character) starting at ``i`` in code."""
        syn = self.syn
        if c in "'\"`":
            return self._open_quote(line, i)
        if c == "/" and syn.regex and self.regex_line is not line and _operand_next(line, i):
            end = _regex_end(line, i)
            if end < 0:
                self.regex_line = line  # no regex closes on this line: stop looking (keeps it linear)
            return end if end > 0 else i + 1
        if c == "?" and syn.ruby:  # a character literal: ?# ?" ?'
            after = line[i + 2 : i + 3]
            if (
                line[i + 1 : i + 2].strip()
                and not (after.isalnum() or after == "_")
                and _operand_next(line, i)
            ):
                return i + 2
        elif c == "%" and syn.ruby:
            m = _PERCENT.match(line, i)
            if m and (m.group(1) or m.group(2) in "([{<|!/^") and _operand_next(line, i):
                delim = m.group(2)
                interp = "#{" if m.group(1) in ("", "Q", "W", "I", "r", "x") else ""
                nest = delim if delim in _PAIRS else ""
                quote = _Quote(m.group(0), _PAIRS.get(delim, delim), True, True, interp, nest)
                self.stack.append(_Frame("q", quote))
                return m.end()
        elif c == "<" and syn.ruby:
            m = _HEREDOC.match(line, i)
            if m and (m.group(1) or m.group(2) or m.group(3).isupper()):
                self.heredocs.append(m.group(3))
                return m.end()
        elif c == "$" and syn.dollar:
            m = _DOLLAR.match(line, i)
            if m:
                self.stack.append(_Frame("q", _Quote(m.group(0), m.group(0), False, True)))
                return m.end()
        return i + 1

    def _open_quote(self, line: str, i: int) -> int:
        for q in self.syn.quotes:
            if line.startswith(q.open, i):
                self.stack.append(_Frame("q", q))
                return i + len(q.open)
        return i + 1

    def _in_quote(self, line: str, i: int, top: _Frame) -> int:
        q = top.quote
        n = len(line)
        while i < n:
            c = line[i]
            if c == "\\" and q.escapes:
                i += 2
                continue
            if q.interp and line.startswith(q.interp, i):
                self.stack.append(_Frame("i"))
                return i + len(q.interp)
            if q.nest and c == q.nest:
                top.depth += 1
            elif line.startswith(q.close, i):
                if top.depth:
                    top.depth -= 1
                else:
                    self.stack.pop()
                    return i + len(q.close)
            i += 1
        return n


def _operand_next(line: str, i: int) -> bool:
    """Whether the code before ``i`` ends where an operand (not an operator) is expected."""
    j = i - 1
    while j >= 0 and line[j] in " \t":
        j -= 1
    if j < 0 or line[j] in _OPERAND_BEFORE:
        return True
    k = j
    while k >= 0 and (line[k].isalnum() or line[k] == "_"):
        k -= 1
    return line[k + 1 : j + 1] in _OPERAND_WORDS


def _regex_end(line: str, i: int) -> int:
    """Index just past the regex literal opened at ``i``, or -1 when it does not close on this line."""
    j = i + 1
    n = len(line)
    in_class = False
    while j < n:
        c = line[j]
        if c == "\\":
            j += 2
            continue
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif c == "/" and not in_class:
            return j + 1
        j += 1
    return -1


def _blank(line: str, blanks: list[tuple[int, int]]) -> str:
    """``line`` with the (ordered, disjoint) ``blanks`` ranges replaced by spaces."""
    if not blanks:
        return line
    parts = []
    pos = 0
    for a, b in blanks:
        parts.append(line[pos:a])
        parts.append(" " * (b - a))
        pos = b
    parts.append(line[pos:])
    return "".join(parts)
