"""Hidden characters in changed files: bidi controls ("Trojan Source", CVE-2021-42574) and invisible text.

A bidi control reorders what a reader sees without changing what the compiler reads, so a comment can
appear to close before code that is really inside it, or the other way round; an invisible character
makes two identifiers look the same, or hides text from the reviewer but not from a model (P-03). Both
are reported with every hidden character written out (``<U+202E>``), so the finding itself shows what the
diff hides. They are read from the raw text: inside a comment or a string literal is exactly where the
attack sits, so comment-blanking must not hide them. Test files are checked too.

Legitimate uses are left alone: a byte order mark at the very start of a file, zero-width (non-)joiners
and directional marks between two non-ASCII characters (Persian, Indic scripts, Hebrew, emoji
sequences), the tag characters of a subdivision flag emoji and ideographic variation selectors after a
non-ASCII character.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

from bot.models import Category, Severity
from bot.rules.base import Check, Hit, Source, rule

# Explicit embeddings, overrides and isolates, and the Arabic letter mark: they reorder text.
BIDI = frozenset([*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x061C])
# Zero-width, word-joining, invisible-operator, deprecated-format, filler and tag characters.
INVISIBLE = frozenset(
    [
        0x0085, 0x2028, 0x2029,  # line separators git does not split on: editors show a break, or nothing
        0x00AD,  # soft hyphen
        0x034F,  # combining grapheme joiner
        0x115F, 0x1160, 0x3164, 0xFFA0,  # hangul fillers: "invisible" identifiers in JS
        0x17B4, 0x17B5,  # khmer inherent vowels
        0x180E,  # mongolian vowel separator
        *range(0x200B, 0x2010),  # zero-width space, (non-)joiner, LRM, RLM
        *range(0x2060, 0x2066),  # word joiner, invisible operators
        *range(0x206A, 0x2070),  # deprecated format characters
        0xFEFF,  # zero-width no-break space (a BOM only at the very start of a file)
        *range(0xFFF9, 0xFFFC),  # interlinear annotation
        *range(0x1D173, 0x1D17B),  # musical formatting
        *range(0xE0000, 0xE0080),  # tag characters: ASCII that does not render
        *range(0xE0100, 0xE01F0),  # variation selectors 17–256: smuggle bytes after ASCII
    ]
)  # fmt: skip
# Fine between two non-ASCII characters: they join or order letters of scripts that need them.
_CONTEXTUAL = frozenset((0x200C, 0x200D, 0x200E, 0x200F))
_BLACK_FLAG = "\U0001f3f4"
MAX_SHOWN = 160  # characters of the line quoted in the finding


def _allowed(line: str, k: int, first_line: bool) -> bool:
    cp = ord(line[k])
    if cp == 0xFEFF:
        return first_line and k == 0
    if cp in _CONTEXTUAL:
        return 0 < k < len(line) - 1 and not line[k - 1].isascii() and not line[k + 1].isascii()
    if 0xE0020 <= cp <= 0xE007F:  # 🏴 + tag letters + cancel tag: a subdivision flag
        j = k
        while j > 0 and 0xE0020 <= ord(line[j - 1]) <= 0xE007E:
            j -= 1
        return j > 0 and line[j - 1] == _BLACK_FLAG
    if 0xE0100 <= cp <= 0xE01EF:
        return k > 0 and not line[k - 1].isascii() and not 0xE0100 <= ord(line[k - 1]) <= 0xE01EF
    return False


def _ranges(cps: frozenset[int]) -> str:
    """A regex character class matching exactly ``cps``."""
    runs: list[list[int]] = []
    for cp in sorted(cps):
        if runs and cp == runs[-1][-1] + 1:
            runs[-1].append(cp)
        else:
            runs.append([cp])
    parts = (re.escape(chr(r[0])) + (f"-{re.escape(chr(r[-1]))}" if len(r) > 1 else "") for r in runs)
    return f"[{''.join(parts)}]"


_HIDDEN = re.compile(_ranges(BIDI | INVISIBLE))


def hidden_characters(line: str, *, first_line: bool = False) -> list[int]:
    """Indices of the bidi controls and invisible characters in ``line`` that are not legitimate there."""
    if line.isascii():
        return []
    return [m.start() for m in _HIDDEN.finditer(line) if not _allowed(line, m.start(), first_line)]


def visible(ch: str) -> str:
    return f"<U+{ord(ch):04X}>"


def _describe(line: str, found: list[int]) -> str:
    """The line with each hidden character written out, and the characters' names."""
    start = 0 if len(line) <= MAX_SHOWN else max(0, found[0] - MAX_SHOWN // 4)
    shown = "".join(
        visible(ch) if k in found else ch for k, ch in enumerate(line[start : start + MAX_SHOWN], start)
    )
    if start:
        shown = "…" + shown
    if start + MAX_SHOWN < len(line):
        shown += "…"
    names: dict[str, None] = {}
    for k in found:
        names[f"{visible(line[k])} {unicodedata.name(line[k], 'unnamed')}"] = None
    shown = shown.strip()
    # a code span whose delimiter is longer than any backtick run in the line (JS template literals)
    delim = "`" * (max((len(r) for r in re.findall(r"`+", shown)), default=0) + 1)
    pad = " " if shown[:1] == "`" or shown[-1:] == "`" else ""
    span = f"{delim}{pad}{shown}{pad}{delim}"
    return f"The line as the compiler reads it: {span} — hidden: {', '.join(names)}."


# Translation catalogs carry right-to-left languages, whose text legitimately holds bidi marks and
# joiners; nothing compiles them as code, so Trojan Source does not apply there.
_TRANSLATION = re.compile(
    r"(?i)(\.(po|pot|xlf|xliff|strings|stringsdict|arb|resx|ftl)$"
    r"|(^|/)(locales?|i18n|l10n|translations)/.*\.(json|ya?ml|properties|ini|toml)$)"
)


def _scan(src: Source, *, bidi: bool) -> Iterator[Hit]:
    """Lines with hidden characters: those holding a bidi control (``bidi``) or only invisible ones, so a
    line is reported once, by the check that matters most."""
    if _TRANSLATION.search(src.path):
        return
    for i, line in enumerate(src.raw):
        if not src.added[i] or line.isascii():
            continue
        found = hidden_characters(line, first_line=src.nos[i] == 1)
        if found and any(ord(line[k]) in BIDI for k in found) == bidi:
            yield Hit(i, detail=_describe(line, found))


def _bidi(src: Source) -> Iterator[Hit]:
    return _scan(src, bidi=True)


def _invisible(src: Source) -> Iterator[Hit]:
    return _scan(src, bidi=False)


CHECKS: tuple[Check, ...] = (
    Check(
        rule(
            "bidi-control",
            "Bidirectional control character (Trojan Source)",
            Category.SECURITY,
            Severity.HIGH,
            (),
            "This line holds Unicode bidirectional control characters, which reorder how it is displayed "
            "without changing what the compiler reads (Trojan Source, CVE-2021-42574): code can look "
            "commented out, or a string can look closed, when it is not.",
            "Remove the control characters; if right-to-left text is really needed, write it as escape "
            "sequences in a string literal.",
            confidence=0.95,
        ),
        _bidi,
        skip_tests=False,
        in_comments=True,
    ),
    Check(
        rule(
            "invisible-character",
            "Invisible character in a changed line",
            Category.SECURITY,
            Severity.MEDIUM,
            (),
            "This line holds characters that do not render: they can make two identifiers look the same "
            "or hide text from reviewers that tools and models still read.",
            "Remove them, or write them as escape sequences if they are really meant.",
            confidence=0.9,
        ),
        _invisible,
        skip_tests=False,
        in_comments=True,
    ),
)

__all__ = ["BIDI", "CHECKS", "INVISIBLE", "hidden_characters", "visible"]
