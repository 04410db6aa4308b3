"""The structural layer of the offline reviewer: rules over syntax trees of the head and base files.

Pure: text in, findings out. A :class:`Unit` is one changed file with its head and base trees (parsed lazily,
capped in size by :mod:`bot.rules.syntax`); a :class:`StructCheck` yields hits on head lines. Most checks
report only on lines the change adds; diff-aware ones (removed safeguards) compare base and head and anchor
on the nearest right-side line of the hunk that removed something.

When the caller has no full texts (unit tests, or a file too large to read), the texts are rebuilt from the
diff's hunks with the unseen lines left blank, so line numbers still agree with the head file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from bot.models import FileDiff, FileStatus
from bot.rules.base import Rule, is_migration_path, is_test_path
from bot.rules.syntax import (
    MAX_PARSE_BYTES,
    MAX_TOTAL_PARSE_BYTES,
    Def,
    Tree,
    find_all,
    has,
    parse,
    parseable,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ast_grep_py import SgNode


@dataclass(frozen=True, slots=True)
class FileTexts:
    """The full head and base text of one changed file, when the caller could read them."""

    head: str | None = None
    base: str | None = None


@dataclass(frozen=True, slots=True)
class SHit:
    line: int  # 0-based head line
    confidence: float | None = None  # None: the rule's own
    detail: str = ""  # said after the rule's message: what exactly was seen


@dataclass(frozen=True)
class StructCheck:
    rule: Rule
    run: Callable[[Unit], Iterable[SHit]]
    skip_tests: bool = True
    any_line: bool = False  # may anchor on a context line of a hunk (diff-aware findings)
    # Lower-case substrings one of which the added (or, with ``on_removed``, removed) lines must hold for
    # the check to run at all: most changed files are never parsed.
    needles: tuple[str, ...] = ()
    on_removed: bool = False
    same_as: tuple[str, ...] = ()  # line rules that report the same defect: one finding per line, theirs


def _rebuild(fd: FileDiff, side: str) -> str:
    """The head ("+") or base ("-") side of the hunks, unseen lines blank, at their real line numbers."""
    out: list[str] = []
    for h in fd.hunks:
        for ln in h.lines:
            no = ln.new_no if side == "+" else ln.old_no
            if no is None or ln.kind not in (" ", side):
                continue
            while len(out) < no - 1:
                out.append("")
            if len(out) == no - 1:
                out.append(ln.text)
    return "\n".join(out)


class ParseBudget:
    """Characters the syntax trees of one review may still cover (head and base together)."""

    def __init__(self, limit: int = MAX_TOTAL_PARSE_BYTES) -> None:
        self.left = limit

    def take(self, text: str | None) -> bool:
        if text is None or len(text) > self.left:
            return False
        self.left -= len(text)
        return True


class Unit:
    """One changed file as the structural checks see it."""

    def __init__(
        self,
        fd: FileDiff,
        language: str,
        texts: FileTexts | None,
        added_elsewhere: Container[object] = (),
        budget: ParseBudget | None = None,
    ) -> None:
        self.budget = budget or ParseBudget()
        self.fd = fd
        self.path = fd.path
        self.language = language
        # Django's tests.py convention too: the structural rules judge handlers, not test scaffolding
        self.is_test = is_test_path(fd.path) or fd.path.rsplit("/", 1)[-1] in ("tests.py", "test.py")
        self.is_migration = is_migration_path(fd.path)
        self._texts = texts or FileTexts()
        self.added_elsewhere = added_elsewhere  # `x in it`: x is added in another file (moved, not removed)
        self.added: set[int] = set()
        self.removed: list[tuple[int, int]] = []  # (base line, hunk index), 0-based
        added_text: list[str] = []
        removed_text: list[str] = []
        for hid, h in enumerate(fd.hunks):
            for ln in h.lines:
                if ln.kind == "+" and ln.new_no is not None:
                    self.added.add(ln.new_no - 1)
                    added_text.append(ln.text)
                elif ln.kind == "-" and ln.old_no is not None:
                    self.removed.append((ln.old_no - 1, hid))
                    removed_text.append(ln.text)
        self.added_lower = "\n".join(added_text).lower()
        self.removed_lower = "\n".join(removed_text).lower()

    @cached_property
    def head(self) -> Tree | None:
        text = self._texts.head if self._texts.head is not None else _rebuild(self.fd, "+")
        if not parseable(text) or not self.budget.take(text):
            return None
        return parse(text, self.language, self.path)

    @cached_property
    def base(self) -> Tree | None:
        if self.fd.status == FileStatus.ADDED or (not self.removed and self._texts.base is None):
            return None
        text = self._texts.base if self._texts.base is not None else _rebuild(self.fd, "-")
        if not parseable(text) or not self.budget.take(text):
            return None
        return parse(text, self.language, self.path)

    def head_line(self, i: int) -> str:
        t = self.head
        return t.lines[i] if t is not None and 0 <= i < len(t.lines) else ""

    def added_in(self, node: SgNode) -> int | None:
        """The first added line inside ``node``, else None."""
        r = node.range()
        for i in range(r.start.line, r.end.line + 1):
            if i in self.added and self.head_line(i).strip():
                return i
        return None

    def changed(self, d: Def) -> bool:
        return any(d.start <= i <= d.end for i in self.added)

    def anchor_for_removed(self, base_line: int) -> int | None:
        """The nearest right-side line of the hunk that removed ``base_line`` (next one, else previous)."""
        for bl, hid in self.removed:
            if bl != base_line:
                continue
            h = self.fd.hunks[hid]
            before: int | None = None
            seen = False
            for ln in h.lines:
                if ln.kind == "-" and ln.old_no == base_line + 1:
                    seen = True
                    continue
                if ln.new_no is None or ln.kind == "-":
                    continue
                if not ln.text.strip():
                    continue
                if seen:
                    return ln.new_no - 1
                before = ln.new_no - 1
            return before
        return None


# --- shared structural helpers ----------------------------------------------------------------------

CALL_KINDS = {
    "python": ("call",),
    "javascript": ("call_expression",),
    "typescript": ("call_expression",),
    "go": ("call_expression",),
    "java": ("method_invocation",),
    "ruby": ("call",),
}


def calls(node: SgNode, language: str) -> Iterator[SgNode]:
    yield from find_all(node, *CALL_KINDS.get(language, ()))


def call_name(call: SgNode, language: str) -> tuple[str, str]:
    """(receiver text, method name) of a call; receiver "" for a bare function call."""
    if language == "java":
        name = call.field("name")
        obj = call.field("object")
        return (obj.text() if obj else ""), (name.text() if name else "")
    if language == "ruby":
        m = call.field("method")
        r = call.field("receiver")
        return (r.text() if r else ""), (m.text() if m else "")
    fn = call.field("function")
    if fn is None:
        return "", ""
    if fn.kind() in ("attribute", "member_expression", "selector_expression"):
        obj = fn.field("object") or fn.field("operand")
        attr = fn.field("attribute") or fn.field("property") or fn.field("field")
        return (obj.text() if obj else ""), (attr.text() if attr else "")
    return "", fn.text()


def arguments(call: SgNode) -> list[SgNode]:
    args = call.field("arguments")
    if args is None:
        return []
    return [c for c in args.children() if c.is_named() and c.kind() != "comment"]


def keyword_args(call: SgNode, language: str) -> dict[str, SgNode]:
    """Keyword arguments (Python ``k=v``, Ruby ``k: v``); the value nodes by name."""
    out: dict[str, SgNode] = {}
    for a in arguments(call):
        if language == "python" and a.kind() == "keyword_argument":
            n, v = a.field("name"), a.field("value")
        elif language == "ruby" and a.kind() == "pair":
            n, v = a.field("key"), a.field("value")
        else:
            continue
        if n is not None and v is not None:
            out[n.text().rstrip(":").lstrip(":")] = v
    return out


def positional_args(call: SgNode, language: str) -> list[SgNode]:
    skip = {"keyword_argument", "list_splat", "dictionary_splat", "pair", "block_argument", "splat_argument",
            "hash_splat_argument"}  # fmt: skip
    return [a for a in arguments(call) if a.kind() not in skip]


def is_literal_string(node: SgNode, language: str) -> bool:
    """A string with no interpolation (or a concatenation of such strings)."""
    k = node.kind()
    if k in ("string", "string_literal", "interpreted_string_literal", "raw_string_literal", "text_block"):
        return not has(node, _INTERPOLATION.get(language, "interpolation"))
    if k == "template_string":
        return not has(node, "template_substitution")
    if k == "concatenated_string":
        return all(is_literal_string(c, language) for c in node.children() if c.is_named())
    if k in ("binary_expression", "binary_operator"):
        kids = [c for c in node.children() if c.is_named()]
        op = node.field("operator")
        return (op is None or op.text() == "+") and all(is_literal_string(c, language) for c in kids)
    if k == "parenthesized_expression":
        kids = [c for c in node.children() if c.is_named()]
        return len(kids) == 1 and is_literal_string(kids[0], language)
    return False


_INTERPOLATION = {"python": "interpolation", "ruby": "interpolation", "javascript": "template_substitution",
                  "typescript": "template_substitution"}  # fmt: skip
_STRING_KINDS = ("string", "string_literal", "interpreted_string_literal", "raw_string_literal",
                 "template_string", "string_content", "string_fragment", "text_block")  # fmt: skip


def literal_text(node: SgNode) -> str:
    """The literal (non-interpolated) string text inside ``node``."""
    parts: list[str] = []
    kinds = ("string_content", "string_fragment", "escape_sequence")
    for k in kinds:
        parts.extend(n.text() for n in find_all(node, k))
    if node.kind() in kinds:
        parts.append(node.text())
    if not parts:  # Go and Java string literals have no content child
        for k in ("interpreted_string_literal", "raw_string_literal", "string_literal", "text_block"):
            parts.extend(n.text() for n in find_all(node, k))
            if node.kind() == k:
                parts.append(node.text())
    return " ".join(parts)


def dynamic_parts(node: SgNode, language: str) -> list[SgNode] | None:
    """The non-literal pieces a string expression is built from, or None when it is not built at all.

    Built means: an f-string / template / Ruby interpolation with substitutions, ``+`` concatenation
    with a non-literal, ``%`` formatting, ``.format(...)``, ``fmt.Sprintf``, ``String.format``.
    """
    k = node.kind()
    if k == "parenthesized_expression":
        kids = [c for c in node.children() if c.is_named()]
        return dynamic_parts(kids[0], language) if len(kids) == 1 else None
    if k in ("string", "template_string"):
        sub = _INTERPOLATION.get(language)
        if sub is None:
            return None
        found = [
            x
            for s in find_all(node, sub)
            for x in s.children()
            if x.is_named() and x.kind() not in ("format_specifier", "type_conversion", "comment")
        ]
        return found or None
    if k in ("binary_operator", "binary_expression"):
        op = node.field("operator")
        opt = op.text() if op is not None else ""
        left, right = node.field("left"), node.field("right")
        if left is None or right is None:
            return None
        if opt == "%" and language == "python" and _stringy(left, language):
            if right.kind() == "tuple":
                return [c for c in right.children() if c.is_named()]
            return [right]
        if opt == "+":
            parts: list[SgNode] = []
            stringy = False
            for side in (left, right):
                if _stringy(side, language):
                    stringy = True
                    inner = dynamic_parts(side, language)
                    parts.extend(inner or [])
                else:
                    parts.append(side)
            return parts if stringy and parts else None
        return None
    if k in ("call", "call_expression", "method_invocation"):
        recv, name = call_name(node, language)
        if name == "format" and language == "python" and recv and recv[:1] in "\"'fFrRbBuU":
            return positional_args(node, language) + list(keyword_args(node, language).values()) or None
        if (recv, name) in (("fmt", "Sprintf"), ("String", "format")) or name == "formatted":
            args = positional_args(node, language)
            if args and _stringy(args[0], language):
                verbs = re.findall(r"%[-+# 0-9.]*[a-zA-Z]", literal_text(args[0]))
                if verbs and all(v.endswith("d") for v in verbs):
                    return None  # numbers only: cannot carry SQL
                return args[1:] or None
        return None
    return None


def _stringy(node: SgNode, language: str) -> bool:
    k = node.kind()
    if k in _STRING_KINDS or k == "concatenated_string":
        return True
    if k in ("binary_operator", "binary_expression", "parenthesized_expression"):
        return any(_stringy(c, language) for c in node.children() if c.is_named())
    return False


_CONSTANT = re.compile(
    r"^(?:[A-Z][A-Z0-9_]*|\d+(?:\.\d+)?|True|False|None|nil|null|true|false|self\.[A-Z_]+)$"
)
_SAFE_PIECE = re.compile(
    r"placeholder|\bquote_name\b|\bquote_ident\b|\bsql\.Identifier\b|\bIdentifier\(|\bquoteIdentifier|"
    r"\bconnection\.ops\.|\b(?:int|len|float|count)\s*\(|\.length\b|\.size\b|\bstrconv\.Itoa\b|\bInteger\.|"
    r"[\"'](?:\?|%s|\$\d*)[\"']|\bparam_?(?:index|count|num)\b|\bbindvars?\b|\bcolumns?_sql\b",
    re.I,
)


def unsafe_pieces(parts: list[SgNode]) -> list[SgNode]:
    return [p for p in parts if not _CONSTANT.match(p.text().strip()) and not _SAFE_PIECE.search(p.text())]


def assignments_to(scope: SgNode, name: str, language: str, before_line: int) -> list[SgNode]:
    """Right-hand sides assigned to the plain variable ``name`` in ``scope`` before ``before_line``."""
    out: list[SgNode] = []
    kinds = {
        "python": ("assignment", "augmented_assignment"),
        "javascript": ("variable_declarator", "assignment_expression", "augmented_assignment_expression"),
        "go": ("short_var_declaration", "assignment_statement", "var_spec"),
        "java": ("variable_declarator", "assignment_expression"),
        "ruby": ("assignment", "operator_assignment"),
    }
    kinds["typescript"] = kinds["javascript"]
    for k in kinds.get(language, ()):
        for a in find_all(scope, k):
            if a.range().start.line > before_line:
                continue
            left = a.field("left") or a.field("name")
            right = a.field("right") or a.field("value")
            if left is None or right is None:
                continue
            lt = left.text().strip()
            if lt != name and not (language == "go" and name in [x.strip() for x in lt.split(",")]):
                continue
            if language == "go" and right.kind() == "expression_list":
                kids = [c for c in right.children() if c.is_named()]
                right = kids[0] if kids else right
            if k.startswith("augmented") or k == "operator_assignment":
                out.append(a)  # x += "..." + y: treat the whole statement as a string build
            else:
                out.append(right)
    return out


def scope_of(tree: Tree, node: SgNode) -> SgNode:
    d = tree.enclosing(node.range().start.line)
    return d.node if d is not None else tree.root


@lru_cache(maxsize=128)
def _needle_pattern(needles: tuple[str, ...]) -> re.Pattern[str]:
    """One alternation per needle set: a single C-speed scan of the changed text."""
    return re.compile("|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True)))


def first(*lines: int | None) -> int:
    """The first of ``lines`` that is set (line 0 is a line, not a missing one)."""
    return next(x for x in lines if x is not None)


def run_structural(
    fd: FileDiff,
    language: str,
    texts: FileTexts | None,
    checks: Iterable[StructCheck],
    added_elsewhere: Container[object] = (),
    budget: ParseBudget | None = None,
) -> Iterator[tuple[StructCheck, SHit, Unit]]:
    if (texts is not None and texts.head is not None and not parseable(texts.head)) or sum(
        len(ln.text) + 1 for h in fd.hunks for ln in h.lines if ln.kind != "-"
    ) > MAX_PARSE_BYTES:
        return  # no tree would be built: do not even read the lines (a 20 MB minified bundle)
    unit = Unit(fd, language, texts, added_elsewhere, budget)
    for check in checks:
        if check.skip_tests and unit.is_test:
            continue
        if check.rule.languages and language not in check.rule.languages:
            continue
        text = unit.removed_lower if check.on_removed else unit.added_lower
        if check.needles and not _needle_pattern(check.needles).search(text):
            continue
        if unit.head is None:
            return
        seen: set[int] = set()
        for hit in check.run(unit):
            if hit.line in seen:
                continue
            if not check.any_line and hit.line not in unit.added:
                continue
            if not unit.head_line(hit.line).strip():
                continue
            seen.add(hit.line)
            yield check, hit, unit


TextsFor = Mapping[str, FileTexts]
