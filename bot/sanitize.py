"""Make untrusted markdown inert before anything is posted (pure; SECURITY.md O-01…O-05).

Everything the model, a rule or the PR wrote is rewritten, not filtered: the output is built from
escaped text, code spans and fences whose delimiters we choose, and links we re-emit only when
they point into the same repository. What the input *meant* never matters; only what we emit can
be markdown. The steps, in order:

1. our own secrets in the input block the send (:class:`~bot.errors.SecretLeak`, O-05 layer 1);
2. control, bidi and zero-width characters go (they hide text), HTML comments go (even unterminated
   ones, even inside code: a fake fingerprint marker must never survive), credential patterns are
   redacted (O-05 layer 2) — after the first two, so invisible characters cannot split a key;
3. fenced code is re-fenced at column 0 with a fence longer than any backtick run inside it;
4. every other line is escaped character by character: ``\\ [ ] ` < > &`` become literal, ``@``
   and ``#<digit>`` get a U+2060 WORD JOINER (no mention, no cross-reference), URLs become code
   spans unless they are same-repo GitHub links, images keep only their alt text, lines that start
   like a bot command get a leading U+2060;
5. the output is checked for our secrets again.

O-03 by construction: what bot/publish/ sends (through bot/github.py) is typed :data:`Sanitised`
(markdown) or :data:`SanitisedText` (plain text), and only this module creates those: from untrusted text
through the sanitisers, or from our own wording written as a literal in the source (:func:`fixed`,
:func:`compose`, :func:`join`; tests/test_o03_sanitised_types.py checks both rules). mypy rejects a ``str``
(a tool's error text, an f-string) where a publisher expects them.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
import urllib.parse
from collections.abc import Iterable
from typing import LiteralString, NewType

from bot.errors import SecretLeak
from bot.redact import SecretSet, redact_patterns

Sanitised = NewType("Sanitised", str)
"""Markdown safe to post on GitHub; created only by this module."""
SanitisedText = NewType("SanitisedText", str)
"""One line of plain text safe to post where GitHub shows text as it is (check-run titles, annotations,
workflow-command annotations); created only by this module."""

WJ = "\u2060"  # WORD JOINER: invisible, and breaks GitHub's @mention, #ref and command matching

# Invisible code points outside the Cc/Cf/Cs/Zl/Zp categories that can still hide or smuggle text.
_INVISIBLE_RANGES = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # hangul fillers
    (0x3164, 0x3164),
    (0xFFA0, 0xFFA0),
    (0xFE00, 0xFE0F),  # variation selectors (used to smuggle bytes)
    (0xE0100, 0xE01EF),
)

_COMMENT_OPEN = "<!--"
# Inline markdown metacharacters, escaped in plain text (`<`, `>`, `&`, `@`, `#<digit>` have their own rules).
_PLAIN_ESCAPE = frozenset("`*_~[]|$\\#")
_LINE_START_ESCAPE = frozenset("-+=/!:")
_LINK_SCAN = 600  # how far a link destination may reach (bounds the scan on "[a]([a]([a](…")

# A URL candidate: any scheme://, a few schemes browsers act on without //, www., or host.tld/path.
_URL = re.compile(
    r"""(?ix)
    (?:
        [a-z][a-z0-9+.\-]{0,31}://
      | (?:mailto|javascript|data|vbscript|xmpp|tel|file|sms|callto|news|irc):(?=[^\s])
      | www\.(?=[^\s])
      | (?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}(?::\d{1,5})?/
    )
    [^\s<>`|\\{}"'\[\]]*
    """
)
_TRAILING_PUNCT = ".,:;!?'\")*_~"

_ALLOWED_LINK = re.compile(
    r"https://github\.com/(?P<owner>[A-Za-z0-9\-]+)/(?P<name>[A-Za-z0-9._\-]+)/"
    r"(?:blob|pull|commit|issues)/(?P<rest>[A-Za-z0-9._~/#%:=?&+,\-]*)"
)

_FENCE_OPEN = re.compile(r"^(?P<ind>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_INFO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+.\-#]{0,31}")
# GitHub renders these fence languages as something other than code (a committable suggestion,
# diagrams, maps, 3D models): untrusted text never gets them.
_ACTIVE_INFO = frozenset({"suggestion", "mermaid", "geojson", "topojson", "stl", "math"})

_TABLE_DELIM = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")

# The markdown container prefix of a line: blockquote markers, then a list marker and task box.
_LINE_PREFIX = re.compile(r"^[ \t]*(?:>[ \t]*)*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?)?")
# Words bots act on at the start of a line (the `/` and `!` prefixes are caught separately).
_BOT_VERB = re.compile(
    r"(?i)@?(?:bors|homu|dependabot|renovate|mergify|mergifyio|k8s-ci-robot|copilot|coderabbitai|"
    r"sourcery-ai|codecov|pr-agent|backend-review|lgtm|approve|approved|merge|rebase|retest|"
    r"ok-to-test|hold|r\+|r=)(?![A-Za-z0-9_])"
)
_CLOSING = re.compile(
    r"(?i)(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?):?[ \t]+(?=#|GH-|https?://|[\w.\-]+/[\w.\-]+#)"
)


def _invisible(ch: str) -> bool:
    if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp", "Co", "Cn") and ch not in "\n\t":
        return True
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _INVISIBLE_RANGES)


def strip_invisible(text: str) -> str:
    """Normalise newlines and drop control, bidi, zero-width and other invisible characters."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    if text.isascii():
        return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", text)
    return "".join(ch for ch in text if not _invisible(ch))


def _drop_html_comments(text: str) -> str:
    # Loop: removing one comment can join the halves of another (`<!<!-- -->-- x -->`).
    while (i := text.find(_COMMENT_OPEN)) >= 0:
        j = text.find("-->", i + len(_COMMENT_OPEN))
        text = text[:i] + ("" if j < 0 else text[j + 3 :])
    return text


def clean_text(text: str, *, secrets: SecretSet | None = None) -> str:
    """Untrusted plain text made safe to store or print: no secrets, credentials or invisible characters."""
    _check_secrets(text, secrets)
    out = redact_patterns(strip_invisible(text))
    _check_secrets(out, secrets)
    return out


def _check_secrets(text: str, secrets: SecretSet | None) -> None:
    if secrets is not None and secrets.find(text):
        raise SecretLeak("outgoing text contains one of our secrets; the send is blocked")


def is_allowed_link(url: str, repo: str | None) -> bool:
    """True only for ``https://github.com/<repo>/(blob|pull|commit|issues)/…`` of the same repository."""
    if not repo or "/" not in repo:
        return False
    m = _ALLOWED_LINK.fullmatch(url)
    if m is None:
        return False
    owner, name = repo.lower().split("/", 1)
    if (m["owner"].lower(), m["name"].lower()) != (owner, name):
        return False
    # Browsers resolve dot segments (also percent-encoded ones) and could walk out of the repo.
    path = urllib.parse.unquote(re.split(r"[?#]", m["rest"], maxsplit=1)[0])
    return "\\" not in path and not any(seg in (".", "..") for seg in path.split("/"))


def code_span(text: str, *, table: bool = False) -> Sanitised:
    """``text`` as one inline code span whose delimiters nothing inside can close."""
    text = " ".join(strip_invisible(text).split("\n"))
    if table:  # GFM splits table cells before it parses code spans; `\|` is the escape it honours
        text = text.replace("|", "\\|")
    if not text:
        return Sanitised("")
    longest = max((len(r) for r in re.findall(r"`+", text)), default=0)
    delim = "`" * (longest + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return Sanitised(f"{delim}{pad}{text}{pad}{delim}")


def code_block(content: str, info: LiteralString = "") -> Sanitised:
    """A fenced block at column 0 whose fence is longer than any backtick run in ``content``.

    The content loses invisible characters, HTML comments (a forged marker) and credential patterns;
    the caller checks our own secrets first (:func:`clean_text`)."""
    return Sanitised(_fence(redact_patterns(_drop_html_comments(strip_invisible(content))), info))


def neutralize_command(line: str) -> str:
    """Prefix a U+2060 to a line whose content starts like a bot command (``/x``, ``!x``, ``bors r+``)."""
    prefix = _LINE_PREFIX.match(line)
    cut = prefix.end() if prefix else 0
    rest = line[cut:]
    return line[:cut] + WJ + rest if _is_command(rest) else line


def _is_command(rest: str) -> bool:
    return rest[:1] in ("/", "!") or _BOT_VERB.match(rest) is not None


def _strip_trailing(url: str) -> str:
    while url and url[-1] in _TRAILING_PUNCT:
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def _bracket_pairs(s: str) -> dict[int, int]:
    """Index of the ``]`` closing each ``[`` (nesting, backslash escapes), in one pass over ``s``."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    j = 0
    while j < len(s):
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == "[":
            stack.append(j)
        elif c == "]" and stack:
            pairs[stack.pop()] = j
        j += 1
    return pairs


def _parse_destination(s: str, i: int) -> tuple[str, int] | None:
    """Parse ``(dest "title")`` starting at ``s[i] == "("``: (dest, index after ``)``) or None."""
    j = i + 1
    n = min(len(s), i + _LINK_SCAN)
    while j < n and s[j] in " \t":
        j += 1
    if j < n and s[j] == "<":
        k = s.find(">", j, n)
        if k < 0 or k >= n:
            return None
        dest, j = s[j + 1 : k], k + 1
    else:
        start, depth = j, 0
        while j < n and s[j] not in " \t":
            if s[j] == "(":
                depth += 1
            elif s[j] == ")":
                if depth == 0:
                    break
                depth -= 1
            j += 1
        dest = s[start:j]
    while j < n and s[j] in " \t":
        j += 1
    if j < n and s[j] in "\"'(":
        close = ")" if s[j] == "(" else s[j]
        k = s.find(close, j + 1, n)
        if k < 0 or k >= n:
            return None
        j = k + 1
        while j < n and s[j] in " \t":
            j += 1
    if j < n and s[j] == ")":
        return dest, j + 1
    return None


def _join(pieces: list[str]) -> str:
    """Concatenate, keeping adjacent backtick runs apart: two touching code spans would merge."""
    out: list[str] = []
    for p in pieces:
        if out and p.startswith("`") and out[-1].endswith("`"):
            out.append(WJ)
        out.append(p)
    return "".join(out)


class _BacktickRuns:
    """The backtick runs of a line, indexed so pairing code spans stays O(k log k) on hostile input."""

    def __init__(self, s: str) -> None:
        self._at: dict[int, int] = {}
        self._by_len: dict[int, list[int]] = {}
        for m in re.finditer(r"`+", s):
            self._at[m.start()] = len(m[0])
            self._by_len.setdefault(len(m[0]), []).append(m.start())

    def length_at(self, i: int) -> int:
        return self._at.get(i, 1)  # 1: a backtick inside a run we already passed (never a span opener)

    def next_closing(self, i: int, length: int) -> int:
        if i not in self._at:
            return -1
        starts = self._by_len.get(length, [])
        k = bisect.bisect_right(starts, i)
        return starts[k] if k < len(starts) else -1


class _Inline:
    """Escapes one line of text; see the module docstring, step 4."""

    def __init__(self, repo: str | None, *, table: bool, plain: bool = False) -> None:
        self.repo = repo
        self.table = table
        self.plain = plain  # no markdown at all: every ASCII punctuation character escaped

    def url(self, url: str) -> str:
        if not self.plain and is_allowed_link(url, self.repo):
            return f"<{url}>"
        return code_span(url, table=self.table)

    def run(self, s: str, *, links: bool = True) -> str:
        out: list[str] = []
        i, n = 0, len(s)
        runs = _BacktickRuns(s)
        pairs = _bracket_pairs(s)
        while i < n:
            c = s[i]
            prev_alnum = i > 0 and s[i - 1].isalnum()
            # GitHub's autolinker rewinds from `://` over ASCII letters only: `1https://x` and `éhttps://x`
            # are live links, so only a preceding ASCII letter (already tried with its run) skips the test
            after_letter = prev_alnum and s[i - 1].isascii() and s[i - 1].isalpha()
            if not after_letter and (m := _URL.match(s, i)) is not None and (url := _strip_trailing(m[0])):
                out.append(self.url(url))
                i += len(url)
                continue
            if not prev_alnum and (m := _CLOSING.match(s, i)) is not None:
                out.append(m[0][0] + WJ + m[0][1:])
                i = m.end()
                continue
            if c == "`" and not self.plain:
                run_len = runs.length_at(i)
                close = runs.next_closing(i, run_len)
                if close >= 0:
                    out.append(code_span(s[i + run_len : close], table=self.table))
                    i = close + run_len
                else:
                    out.append("\\`" * run_len)
                    i += run_len
                continue
            if c == "!" and i + 1 < n and s[i + 1] == "[" and not self.plain:
                consumed = self._image(s, i, out, pairs)
                if consumed:
                    i = consumed
                    continue
            if c == "[" and not self.plain:
                consumed = self._link(s, i, out, pairs, links=links)
                if consumed:
                    i = consumed
                    continue
            out.append(self._char(c, s[i + 1 : i + 2]))
            i += 1
        return _join(out)

    def _char(self, c: str, nxt: str) -> str:
        if c == "@":
            return "@" + WJ
        if c == "#" and nxt.isdigit():
            return ("\\#" if self.plain else "#") + WJ
        if c == "<":
            return "&lt;"
        if c == ">":
            return "&gt;"
        if c == "&":
            return "&amp;"
        if c in "\\[]`":
            return "\\" + c
        if self.plain and c in _PLAIN_ESCAPE:
            return "\\" + c
        return c

    def _image(self, s: str, i: int, out: list[str], pairs: dict[int, int]) -> int:
        """An image keeps only its (escaped) alt text; its URL is never emitted. 0 if not an image."""
        close = pairs.get(i + 1, -1)
        if close < 0:
            return 0
        alt = self.run(s[i + 2 : close], links=False)
        if close + 1 < len(s) and s[close + 1] == "(":
            parsed = _parse_destination(s, close + 1)
            if parsed is not None:
                out.append(alt)
                return parsed[1]
        if close + 1 < len(s) and s[close + 1] == "[":
            ref_close = pairs.get(close + 1, -1)
            if ref_close > 0:
                out.append(alt)
                return ref_close + 1
        out.append(alt)
        return close + 1

    def _link(self, s: str, i: int, out: list[str], pairs: dict[int, int], *, links: bool) -> int:
        """An inline link: live if same-repo, else its text plus the URL as code. 0 if not a link."""
        close = pairs.get(i, -1)
        if close < 0 or close + 1 >= len(s) or s[close + 1] != "(":
            return 0
        parsed = _parse_destination(s, close + 1)
        if parsed is None:
            return 0
        dest, end = parsed
        text = self.run(s[i + 1 : close], links=False)
        if links and is_allowed_link(dest, self.repo):
            out.append(f"[{text}]({dest})" if text.strip() else f"<{dest}>")
        elif dest:
            out.append(f"{text} ({code_span(dest, table=self.table)})" if text.strip() else code_span(dest))
        else:
            out.append(text)
        return end


def _render_text_line(line: str, inline: _Inline) -> str:
    prefix = _LINE_PREFIX.match(line)
    cut = prefix.end() if prefix else 0
    # the prefix is only spaces, `>`, a list marker and a task box: kept as markdown structure
    rest = line[cut:]
    return line[:cut] + (WJ if _is_command(rest) else "") + inline.run(rest)


def sanitize_markdown(text: str, *, repo: str | None, secrets: SecretSet | None = None) -> Sanitised:
    """Rewrite untrusted markdown so it renders as text, code and same-repo links only."""
    _check_secrets(text, secrets)
    text = redact_patterns(_drop_html_comments(strip_invisible(text)))
    lines = text.split("\n")
    inline = _Inline(repo, table=any(_TABLE_DELIM.match(ln) and "|" in ln for ln in lines))
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        if m is None or (m["fence"][0] == "`" and "`" in m["info"]):
            out.append(_render_text_line(lines[i], inline))
            i += 1
            continue
        char, width, indent = m["fence"][0], len(m["fence"]), len(m["ind"])
        closing = re.compile(rf"^[ \t]*{re.escape(char)}{{{width},}}[ \t]*$")
        body: list[str] = []
        i += 1
        while i < len(lines) and not closing.match(lines[i]):
            body.append(_dedent(lines[i], indent))
            i += 1
        i += 1  # the closing fence (or past the end: an unterminated block is closed by us)
        info = _INFO.match(m["info"].strip())
        lang = info[0] if info and info[0].lower() not in _ACTIVE_INFO else ""
        out.append(_fence("\n".join(body), lang))
    result = "\n".join(out).strip("\n")
    _check_secrets(result, secrets)
    return Sanitised(result)


def _fence(content: str, info: str) -> str:
    longest = max((len(r) for r in re.findall(r"`+", content)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{content}\n{fence}" if content else f"{fence}{info}\n{fence}"


def _dedent(line: str, width: int) -> str:
    k = 0
    while k < width and k < len(line) and line[k] == " ":
        k += 1
    return line[k:]


def inert_plain(text: str, *, secrets: SecretSet | None = None) -> Sanitised:
    """One line of untrusted text (a title, a path, a note) with no markdown meaning at all.

    Inline metacharacters are escaped everywhere; block syntax (``- x``, ``1. x``, ``= x``) only
    means something at the start of a line, so only the start is escaped for it.
    """
    text = " ".join(clean_text(_drop_html_comments(text), secrets=secrets).split())
    out = _Inline(None, table=True, plain=True).run(text)
    if out[:1] in _LINE_START_ESCAPE:
        out = "\\" + out
    out = re.sub(r"^(\d+)([.)])", r"\1\\\2", out)
    return Sanitised(WJ + out if _BOT_VERB.match(text) else out)


def plain_text(text: str, *, limit: int = 255, secrets: SecretSet | None = None) -> SanitisedText:
    """Untrusted text as one line of plain text: no secrets, credentials, controls, invisible
    characters or HTML comments, at most ``limit`` characters."""
    one = " ".join(clean_text(_drop_html_comments(text), secrets=secrets).split())
    return SanitisedText(one[: max(0, limit - 1)] + "…" if len(one) > limit else one)


# --- our own wording ------------------------------------------------------------------------------
# Literals only: the architecture test fails on a call whose first argument is not a string literal.


def fixed(text: LiteralString) -> Sanitised:
    """Markdown we wrote, as a literal in the source."""
    return Sanitised(text)


def compose(template: LiteralString, /, *parts: Sanitised | int | float) -> Sanitised:
    """Our literal ``template`` with sanitised pieces and numbers in its ``{}`` fields."""
    return Sanitised(template.format(*parts))


def join(sep: LiteralString, parts: Iterable[Sanitised]) -> Sanitised:
    """Sanitised pieces joined by our literal separator (touching code spans are kept apart)."""
    return Sanitised(_join(list(parts)) if not sep else sep.join(parts))


_MARKER_FIELDS = re.compile(r"[A-Za-z0-9][A-Za-z0-9=,.:_ \-]{0,4000}")


def hidden_marker(fields: str) -> Sanitised:
    """``<!-- backend-review FIELDS -->``, the only HTML comment a posted body holds (O-04); ``fields``
    must be plain tokens, so nothing can close the comment early or smuggle markup."""
    if not _MARKER_FIELDS.fullmatch(fields) or "--" in fields:
        raise ValueError("a marker holds plain tokens only")
    return Sanitised(f"<!-- backend-review {fields} -->")


def truncate(text: Sanitised, limit: int) -> Sanitised:
    """At most ``limit`` characters, cut at a line boundary: a cut inside a line could open a code
    span and turn the URL it holds into a live autolink. A block cut open stays code to the end."""
    if len(text) <= limit:
        return text
    note = "…(truncated)"
    cut = text.rfind("\n", 0, max(0, limit - len(note) - 1))
    return Sanitised(f"{text[:cut]}\n{note}" if cut > 0 else note)


__all__ = [
    "WJ",
    "Sanitised",
    "SanitisedText",
    "clean_text",
    "code_block",
    "code_span",
    "compose",
    "fixed",
    "hidden_marker",
    "inert_plain",
    "is_allowed_link",
    "join",
    "neutralize_command",
    "plain_text",
    "sanitize_markdown",
    "strip_invisible",
    "truncate",
]
