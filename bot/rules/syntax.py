"""Syntax trees of the changed files (tree-sitter through ast-grep-py): parse, index definitions, locate.

Pure: text in, trees out. The grammars are bundled in the ``ast_grep_py`` wheel, imported on first use so
``backend-review --help`` never pays for it. Comments are their own nodes and string contents are leaves,
so a structural rule neither sees a call written in a comment nor misses one followed by a comment (P-01).

What is parsed is capped: only changed files, at most :data:`MAX_PARSE_BYTES` each, and never a file whose
lines are mostly minified-length (tree-sitter is fast, but a 20 MB one-line bundle is not backend code).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ast_grep_py import SgNode

MAX_PARSE_BYTES = 500_000  # per file
MAX_TOTAL_PARSE_BYTES = 3_000_000  # per review: past it, the remaining files get the line rules only
MAX_AVG_LINE = 400  # longer average lines: minified or generated, not hand-written backend code

GRAMMARS = {
    "python": "python",
    "javascript": "javascript",
    "typescript": "typescript",
    "go": "go",
    "java": "java",
    "ruby": "ruby",
}

# Function-like and class-like node kinds per grammar.
_FUNCTIONS = {
    "python": ("function_definition",),
    "javascript": ("function_declaration", "method_definition", "arrow_function", "function_expression",
                   "generator_function_declaration", "function"),
    "go": ("function_declaration", "method_declaration", "func_literal"),
    "java": ("method_declaration", "constructor_declaration"),
    "ruby": ("method", "singleton_method"),
}  # fmt: skip
_FUNCTIONS["typescript"] = _FUNCTIONS["javascript"]
_CLASSES = {
    "python": ("class_definition",),
    "javascript": ("class_declaration", "class"),
    "typescript": ("class_declaration", "class", "abstract_class_declaration"),
    "go": (),
    "java": ("class_declaration", "interface_declaration"),
    "ruby": ("class", "module"),
}


def grammar_for(language: str | None, path: str = "") -> str | None:
    if language == "typescript" and path.endswith(".tsx"):
        return "tsx"
    return GRAMMARS.get(language or "")


def parseable(text: str) -> bool:
    if not text or len(text) > MAX_PARSE_BYTES:
        return False
    return len(text) <= MAX_AVG_LINE * (text.count("\n") + 1)


@dataclass(frozen=True, eq=False)
class Def:
    """A function, method or class: its name, the names of its enclosing classes, and its line span."""

    name: str
    kind: str  # "function" | "class"
    qualname: str  # Outer.inner, stable between base and head
    start: int  # 0-based first line, decorators/annotations included
    end: int  # 0-based last line
    body_start: int  # 0-based line of the def/func keyword itself
    node: SgNode = field(repr=False)
    parent: Def | None = field(default=None, repr=False)

    def contains(self, line: int) -> bool:
        return self.start <= line <= self.end


class Tree:
    """One parsed file: its root node and an index of its definitions."""

    def __init__(self, text: str, language: str, grammar: str) -> None:
        quiet_native_errors()
        from ast_grep_py import SgRoot  # lazy: a native extension with every grammar in it

        self.language = language
        self.text = text
        self.lines = text.split("\n")
        self.root = SgRoot(text, grammar).root()

    @cached_property
    def defs(self) -> tuple[Def, ...]:
        """Every function and class, outermost first (a parent precedes its children)."""
        lang = self.language
        funcs = _FUNCTIONS.get(lang, ())
        classes = _CLASSES.get(lang, ())
        kinds = funcs + classes
        if not kinds:
            return ()
        nodes = find_all(self.root, *kinds)
        nodes.sort(key=lambda n: (n.range().start.index, -n.range().end.index))
        out: list[Def] = []
        stack: list[Def] = []
        for n in nodes:
            r = n.range()
            while stack and not (stack[-1].node.range().start.index <= r.start.index
                                 and r.end.index <= stack[-1].node.range().end.index):  # fmt: skip
                stack.pop()
            parent = stack[-1] if stack else None
            name = def_name(n, lang)
            kind = "class" if n.kind() in classes else "function"
            qual = f"{parent.qualname}.{name}" if parent else name
            start = r.start.line
            outer = n.parent()
            if lang == "python" and outer is not None and outer.kind() == "decorated_definition":
                start = outer.range().start.line
            d = Def(name, kind, qual, start, r.end.line, r.start.line, n, parent)
            out.append(d)
            stack.append(d)
        return tuple(out)

    def enclosing(self, line: int, kind: str | None = "function") -> Def | None:
        """The innermost definition (of ``kind``, or any) holding 0-based ``line``."""
        best = None
        for d in self.defs:
            if d.contains(line) and (kind is None or d.kind == kind):
                best = d
        return best

    def by_qualname(self) -> dict[str, Def]:
        out: dict[str, Def] = {}
        for d in self.defs:
            out.setdefault(d.qualname, d)
        return out

    @cached_property
    def code_lines(self) -> list[str]:
        """The file's lines with comments blanked (same lengths): what a rule reading text may read."""
        return _blank(self.text, find_all(self.root, "comment")).split("\n")

    @cached_property
    def bare_lines(self) -> list[str]:
        """The file's lines with comments and string contents blanked: identifiers and operators only."""
        spans = find_all(self.root, "comment", *STRING_KINDS)
        return _blank(self.text, spans).split("\n")


STRING_KINDS = ("string", "template_string", "interpreted_string_literal", "raw_string_literal",
                "string_literal", "text_block", "heredoc_body")  # fmt: skip


def _blank(text: str, nodes: list[SgNode]) -> str:
    if not nodes:
        return text
    spans = sorted((n.range().start.index, n.range().end.index) for n in nodes)
    parts = []
    pos = 0
    for a, b in spans:
        if b <= pos:
            continue
        a = max(a, pos)
        parts.append(text[pos:a])
        parts.append("".join("\n" if ch == "\n" else " " for ch in text[a:b]))
        pos = b
    parts.append(text[pos:])
    return "".join(parts)


def def_name(n: SgNode, language: str) -> str:
    name = n.field("name")
    if name is not None:
        return name.text()
    if language in ("javascript", "typescript"):
        # const handler = async (req, res) => {...}; router.get(path, function (req, res) {...})
        p = n.parent()
        if p is not None and p.kind() == "variable_declarator":
            nm = p.field("name")
            if nm is not None:
                return nm.text()
        if p is not None and p.kind() == "pair":
            k = p.field("key")
            if k is not None:
                return k.text()
    return f"<anonymous@{n.range().start.line + 1}>"


def parse(text: str | None, language: str | None, path: str = "") -> Tree | None:
    grammar = grammar_for(language, path)
    if text is None or grammar is None or language is None or not parseable(text):
        return None
    return Tree(text, language, grammar)


def quiet_native_errors() -> None:
    """ast-grep reports a kind its grammar lacks as an error, which we expect and skip. With
    RUST_BACKTRACE=1 in the environment (common on developer machines and CI) every such error also
    captures a backtrace, ~80 ms each: a review of a few files took 23 s instead of 1.6 s.
    RUST_LIB_BACKTRACE governs library errors only (panics keep RUST_BACKTRACE); an explicit setting wins."""
    os.environ.setdefault("RUST_LIB_BACKTRACE", "0")


def find_all(node: SgNode, *kinds: str) -> list[SgNode]:
    """Descendants of any of ``kinds``; a kind the node's grammar does not have matches nothing."""
    out: list[SgNode] = []
    for k in kinds:
        try:
            out.extend(node.find_all(kind=k))
        except RuntimeError:  # "Kind `x` is invalid" for this grammar
            continue
    return out


def has(node: SgNode, *kinds: str) -> bool:
    for k in kinds:
        try:
            if node.find(kind=k) is not None:
                return True
        except RuntimeError:
            continue
    return False


def callee(call: SgNode) -> str:
    """The called name's text (``cur.execute``, ``db.Query``, ``User.where``) of a call node."""
    lang_fields = ("function", "method", "name")
    for f in lang_fields:
        c = call.field(f)
        if c is not None:
            if call.kind() == "method_invocation" or (call.kind() == "call" and f == "method"):
                obj = call.field("object") or call.field("receiver")
                return (obj.text() + "." if obj is not None else "") + c.text()
            return c.text()
    return ""


def last_name(dotted: str) -> str:
    return dotted.rsplit(".", 1)[-1].rsplit("::", 1)[-1].strip()


def line_of(node: SgNode) -> int:
    """0-based line where a node starts."""
    return node.range().start.line
