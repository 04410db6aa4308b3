"""P-01 for the offline reviewer: comments are PR text, so no comment changes what the rules report.

For every flagged case of the rules corpus (tests/rules/test_cases.py), in every language with comments,
the same findings (rule ids, and lines shifted by any inserted lines) come back when the code gets:
(a) a trailing comment on any line, (b) a comment-only line between any two lines, (c) block comments
(trailing, on a line of their own, spanning lines, and before the code), and all of those at once.
The comment texts hold quotes, brackets and code-looking text, which a line-based matcher trips on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from bot.rules import language_of
from bot.rules.comments import strip_comments
from tests.rules.test_cases import FLAG
from tests.rules.util import hits

LINE_MARK = {"python": "#", "ruby": "#", "sql": "--"}
BLOCK = {"javascript", "typescript", "go", "java", "sql"}
TEXTS = (
    "ok",
    "don't (see the ticket",
    'expected: "http://x" } ] )',
    "except Exception: pass; catch (e) {}",
)
# Lines ending inside these multi-line literals are string text, where a comment would not be one.
_MULTILINE_DELIMS = {"python": ('"""', "'''"), "javascript": ("`",), "typescript": ("`",), "go": ("`",)}

Variant = tuple[str, str, dict[int, int]]  # (name, code, old line -> new line)


def _open_string_after(lines: list[str], language: str) -> list[bool]:
    """For each line, whether a multi-line string literal is still open at its end."""
    out = []
    count = 0
    for line in lines:
        count += sum(line.count(d) for d in _MULTILINE_DELIMS.get(language, ()))
        out.append(count % 2 == 1)
    return out


def _shifted(n: int, inserted_after: dict[int, int]) -> dict[int, int]:
    """Line map when ``inserted_after[k]`` lines are inserted after old line k (k = 0: at the top)."""
    mapping = {}
    extra = inserted_after.get(0, 0)
    for old in range(1, n + 1):
        mapping[old] = old + extra
        extra += inserted_after.get(old, 0)
    return mapping


def _comment_lines(language: str, indent: str, text: str) -> Iterator[tuple[str, list[str]]]:
    if language in LINE_MARK:
        yield "line", [f"{indent}{LINE_MARK[language]} {text}"]
    else:
        yield "line", [f"{indent}// {text}"]
    if language in BLOCK:
        yield "block", [f"{indent}/* {text} */"]
        yield "block-span", [f"{indent}/*", f"{indent} * {text}", f"{indent} */"]
    if language == "ruby":
        yield "begin-end", ["=begin", text, "=end"]


def _trailing(language: str, text: str) -> Iterator[tuple[str, str]]:
    yield "trailing", f"  {LINE_MARK.get(language, '//')} {text}"
    if language in BLOCK:
        yield "trailing-block", f"  /* {text} */"


def variants(path: str, code: str) -> Iterator[Variant]:
    language = language_of(path)
    assert language is not None
    lines = code.split("\n")
    n = len(lines)
    open_after = _open_string_after(lines, language)
    identity = {k: k for k in range(1, n + 1)}
    for text in TEXTS:
        # (a) a trailing comment on each line, then on every line at once
        for kind, tail in _trailing(language, text):
            for k in range(n):
                if not open_after[k]:
                    new = [*lines[:k], lines[k] + tail, *lines[k + 1 :]]
                    yield f"{kind}@{k + 1}", "\n".join(new), identity
            yield (
                f"{kind}@all",
                "\n".join(t if o else t + tail for t, o in zip(lines, open_after, strict=True)),
                identity,
            )
        # (b, c) comment lines between lines (and at the top and the bottom)
        for k in range(n + 1):
            if k > 0 and open_after[k - 1]:
                continue
            indent = re.match(r"[ \t]*", lines[k] if k < n else lines[-1]).group(0)  # type: ignore[union-attr]
            for kind, block in _comment_lines(language, indent, text):
                new = lines[:k] + block + lines[k:]
                yield f"{kind}-before@{k + 1}", "\n".join(new), _shifted(n, {k: len(block)})
        # (c) a block comment before the code of each line
        if language in BLOCK:
            for k in range(n):
                if k == 0 or not open_after[k - 1]:
                    ind = re.match(r"[ \t]*", lines[k]).group(0)  # type: ignore[union-attr]
                    new = [*lines[:k], f"{ind}/* {text} */ {lines[k][len(ind) :]}", *lines[k + 1 :]]
                    yield f"block-prefix@{k + 1}", "\n".join(new), identity
    # everything at once: a comment after every line and a comment line between every two lines
    out: list[str] = []
    inserted: dict[int, int] = {}
    for k, line in enumerate(lines):
        out.append(line if open_after[k] else f"{line}  {LINE_MARK.get(language, '//')} {TEXTS[1]}")
        if k < n - 1 and not open_after[k]:
            block = list(next(_comment_lines(language, "", TEXTS[2]))[1])
            out.extend(block)
            inserted[k + 1] = len(block)
    yield "all-at-once", "\n".join(out), _shifted(n, inserted)


CASES = [c for c in FLAG if language_of(c[1]) is not None]


def _case_id(case: tuple[str, str, str, int]) -> str:
    return f"{case[0]}:{case[1]}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_p01_comments_never_change_findings(case: tuple[str, str, str, int]) -> None:
    rule_id, path, code, line = case
    original = hits(path, code)
    assert (rule_id, line) in original
    failures = []
    count = 0
    for name, new_code, line_map in variants(path, code):
        want = {(r, line_map[n]) for r, n in original}
        got = hits(path, new_code)
        count += 1
        if got != want:
            failures.append(f"{name}: lost {sorted(want - got)}, added {sorted(got - want)}\n{new_code}")
    assert count >= 8
    assert failures == []


def test_p01_every_flag_case_with_comment_syntax_is_covered() -> None:
    """Guard: only files without a comment syntax (README.md, .pem) are left out of the property, and
    .gitmodules, whose git-config comments the gitmodules rule reads as git does (its own clean cases)."""
    assert {c[1].rsplit(".", 1)[-1] for c in FLAG if c not in CASES} <= {"md", "pem", "gitmodules"}
    assert {language_of(c[1]) for c in CASES} == {
        "python",
        "javascript",
        "typescript",
        "go",
        "java",
        "ruby",
        "sql",
    }


def test_p01_the_variants_hold_the_comments_and_can_fail() -> None:
    """Control: the generator really adds comments, and a real code change does change the findings."""
    path, code = "app/jobs.py", "try:\n    run()\nexcept Exception:\n    pass"
    names = [name for name, new, _ in variants(path, code) if "don't (see the ticket" in new]
    assert any(n.startswith("trailing@") for n in names) and any(n.startswith("line-before@") for n in names)
    assert hits(path, code.replace("pass", "raise")) != hits(path, code)


# -- the lexer itself ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "code", "expected"),
    [
        ("python", 'x = "http://a#b"  # c', 'x = "http://a#b"'),
        ("python", "s = '''\n# in a string\n'''  # c", "s = '''\n# in a string\n'''"),
        ("javascript", 'u = "http://x"; // c', 'u = "http://x";'),
        ("javascript", "a = 1 /* b\nc */ + 2", "a = 1\n     + 2"),
        ("javascript", "r = /\\/\\//g; // c", "r = /\\/\\//g;"),
        ("typescript", "t = `a ${'//'} // b`; // c", "t = `a ${'//'} // b`;"),
        ("go", "s := `// raw` // c", "s := `// raw`"),
        ("java", " * javadoc, the hunk opened inside it\n */ int x = 1; // c", "\n    int x = 1;"),
        ("ruby", 'x = "#{a} # b" # c', 'x = "#{a} # b"'),
        ("ruby", 'x = "#{h["#"]}" # c', 'x = "#{h["#"]}"'),
        ("ruby", "=begin\nrescue nil\n=end\ny = 1", "\n\n\ny = 1"),
        (
            "ruby",
            "q = <<~SQL\n  # kept: heredoc text\nSQL\nz = 1 # c",
            "q = <<~SQL\n  # kept: heredoc text\nSQL\nz = 1",
        ),
        ("ruby", "w = %w(a # b) # c", "w = %w(a # b)"),
        ("ruby", "c = ?# ; d = 1 # e", "c = ?# ; d = 1"),
        ("ruby", "x = a ? b : c # d", "x = a ? b : c"),
        (
            "sql",
            "SELECT '--x', $$ -- y $$ -- c\nFROM t /* a\nb */ WHERE 1",
            "SELECT '--x', $$ -- y $$\nFROM t\n     WHERE 1",
        ),
    ],
)
def test_strip_comments_blanks_comments_and_keeps_strings(language: str, code: str, expected: str) -> None:
    lines = code.split("\n")
    stripped = strip_comments(lines, language)
    assert [len(s) for s in stripped] == [len(t) for t in lines]  # columns are kept
    assert "\n".join(s.rstrip() for s in stripped) == expected


def test_strip_comments_opens_in_a_block_comment_only_mid_file() -> None:
    lines = [" * a javadoc line, or code: x = a", " * eval(input)"]
    assert strip_comments(lines, "javascript")[1].strip() == ""
    assert strip_comments(lines, "javascript", mid_file=False) == lines  # line 1 is never in a comment


@pytest.mark.parametrize(
    ("language", "line"),
    [
        ("javascript", "( /[" * 50_000),  # regex literals that never close
        ("javascript", "/**/" * 50_000),  # many block comments on one line
        ("python", '"""' + '" ' * 100_000),
        ("ruby", "x = %w(" * 30_000),
        ("sql", "'' -" * 50_000),
    ],
)
def test_strip_comments_is_linear_on_hostile_lines(language: str, line: str) -> None:
    start = time.perf_counter()
    (out,) = strip_comments([line], language)
    assert len(out) == len(line)
    assert time.perf_counter() - start < 2.0  # quadratic work on 200k characters takes minutes


def test_strip_comments_leaves_unknown_languages_alone() -> None:
    assert strip_comments(["# title", "x // y"], None) == ["# title", "x // y"]
