"""P-03 / Trojan Source (CVE-2021-42574): hidden characters in changed files are reported, visibly."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from bot.local import review_repository
from bot.models import Changeset, Severity
from bot.review import ReviewContext, build_review
from bot.rules.unicode import BIDI, INVISIBLE, hidden_characters
from tests.rules.util import changeset, file_diff, findings
from tests.support.gitrepo import init_repo

RLO, LRI, PDI, ZWSP = "\u202e", "\u2066", "\u2069", "\u200b"
# The Trojan Source paper's "commenting-out" example: the return looks commented out and is not.
TROJAN_PY = f'if access_level != "none{RLO}{LRI}": # Check if admin{PDI}{LRI}\n    return True'

# (rule id, path, code, 1-based line that must be flagged), for tests/rules/test_cases.py
FLAG: list[tuple[str, str, str, int]] = [
    ("bidi-control", "app/auth.py", TROJAN_PY, 1),
    ("bidi-control", "src/admin.js", f"/*{RLO} }} {LRI}if (isAdmin){PDI} {LRI} begin admins only */", 1),
    (
        "bidi-control",
        "cmd/main.go",
        f'fmt.Println("hello")\naccessLevel := "user{RLO} {LRI}// admin{PDI}"',
        2,
    ),
    ("bidi-control", "docs/README.md", "Run `make \u202bdeploy\u202c` to ship.", 1),
    ("bidi-control", "tests/test_auth.py", f"# {RLO}reversed comment", 1),  # tests are attack surface too
    ("invisible-character", "app/auth.py", f"is_admin{ZWSP} = False\nis_admin = True", 1),
    ("invisible-character", "src/a.js", "const { timeout, \u3164 } = req.query;", 1),  # hangul filler
    ("invisible-character", "app/x.py", "x = 1\nname = 'a\ufeffb'", 2),  # BOM mid-file
    (
        "invisible-character",
        "AGENTS.md",
        "Be nice.\U000e0049\U000e0067\U000e006e\U000e006f\U000e0072\U000e0065",
        1,
    ),
    ("invisible-character", "app/x.py", "token = 'abc\u2060def'", 1),
    ("invisible-character", "app/x.py", "if user\u200d == admin: pass", 1),  # joiner between ASCII
    ("invisible-character", "app/x.py", "s = 'a\U000e0101\U000e0102'", 1),  # variation-selector smuggling
]

# (rule id, path, code) that must not be flagged
CLEAN: list[tuple[str, str, str]] = [
    ("bidi-control", "app/auth.py", 'if access_level != "none":  # Check if admin\n    return True'),
    ("bidi-control", "app/i18n.py", 'GREETING = "\\u202eescaped in source is fine"'),
    ("bidi-control", "app/i18n.py", 'HE = "שלום עולם"  # right-to-left text itself is fine'),
    ("invisible-character", "app/x.py", "\ufeffimport os"),  # a BOM at the start of the file
    ("invisible-character", "app/i18n.py", 'FA = "می\u200cخواهم"'),  # Persian zero-width non-joiner
    ("invisible-character", "app/i18n.py", 'FAMILY = "👨\u200d👩\u200d👧"'),  # emoji ZWJ sequence
    ("invisible-character", "app/i18n.py", 'HE = "שלום\u200fעולם"'),  # RLM inside Hebrew
    (
        "invisible-character",
        "app/i18n.py",
        'FLAG = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"',
    ),
    ("invisible-character", "app/i18n.py", 'KANJI = "葛\U000e0100"'),  # ideographic variation sequence
    ("invisible-character", "app/x.py", 'SOFT = "\\u00ad"  # escaped'),
]


def test_p03_every_listed_character_is_caught_between_ascii() -> None:
    for cp in sorted(BIDI | INVISIBLE):
        line = f"a{chr(cp)}b"
        assert hidden_characters(line) == [1], hex(cp)
    assert hidden_characters("plain ascii") == []


@pytest.mark.parametrize("cp", [0x202E, 0x2066, 0x200B, 0xE0041])
def test_p03_inside_a_comment_or_string_is_still_reported(cp: int) -> None:
    """Comment-blanking must not hide them: a comment or a string literal is where the attack sits."""
    for code in (f"x = 1  # a{chr(cp)}b", f"x = 'a{chr(cp)}b'", f'"""\na{chr(cp)}b\n"""'):
        found = findings("app/x.py", code)
        assert [f.source for f in found] in (["bidi-control"], ["invisible-character"]), code


def test_p03_finding_shows_every_hidden_character_visibly() -> None:
    (f,) = findings("app/auth.py", TROJAN_PY)
    assert f.source == "bidi-control" and f.severity == Severity.HIGH and f.line == 1
    assert f.evidence == TROJAN_PY.split("\n")[0]  # verifiable against the head file as it is
    assert "<U+202E>" in f.body and "<U+2066>" in f.body and "<U+2069>" in f.body
    assert "RIGHT-TO-LEFT OVERRIDE" in f.body and "POP DIRECTIONAL ISOLATE" in f.body
    assert not any(ord(c) in BIDI for c in f.body)
    # the written-out line is in the body, so a reader sees what the compiler reads
    assert '"none<U+202E><U+2066>": # Check if admin<U+2069><U+2066>' in f.body


def test_p03_o03_posted_comment_shows_the_characters_after_the_sanitiser() -> None:
    """The posted text keeps `<U+202E>` readable (escaped or in code), and holds no hidden character."""
    fd = file_diff("app/auth.py", TROJAN_PY)
    cs: Changeset = changeset(fd)
    head = TROJAN_PY.split("\n")
    draft = build_review(
        findings("app/auth.py", TROJAN_PY), cs, lambda _p: head, ReviewContext("o/r", "c" * 40)
    )
    (comment,) = draft.comments
    posted = [comment.body, draft.body, draft.check_summary]
    for text in posted:
        assert not any(ord(c) in BIDI or ord(c) in INVISIBLE - {0x2060} for c in text)
    # inside the code span the characters are written out verbatim; outside it they are HTML-escaped
    assert re.search(r"`[^`]*<U\+202E><U\+2066>[^`]*`", comment.body)
    assert "&lt;U+2069&gt; POP DIRECTIONAL ISOLATE" in comment.body
    # a line with backticks of its own (a JS template literal) still shows whole, in one code span
    js = f"const q = `SELECT * FROM t WHERE role = '${{role}}{RLO}'`;"
    (f,) = findings("src/q.js", js)
    assert "``const q = `SELECT * FROM t WHERE role = '${role}<U+202E>'`;``" in f.body
    assert "Trojan Source" in comment.body and "Trojan Source" in draft.body


def test_p03_real_git_review_reports_them_on_the_right_lines(tmp_path: Path) -> None:
    """Through real git and the local review: U+2028 and a form feed do not shift line numbers."""
    repo = init_repo(tmp_path / "r")
    repo.commit("base", {"README.md": "x\n"})
    base = repo.git("rev-parse", "HEAD")
    code = f"import os\n\f\nlabel = 'a\u2028b'\n{TROJAN_PY}\nname{ZWSP} = 1\n"
    repo.commit("trojan", {"app/auth.py": code})
    outcome = asyncio.run(review_repository(repo.path, base=base, head="HEAD", model="none", environ={}))
    got = sorted((r.finding.source, r.finding.line, r.placement) for r in outcome.draft.findings)
    assert got == [
        ("bidi-control", 4, "inline"),
        ("invisible-character", 3, "inline"),
        ("invisible-character", 6, "inline"),
    ]
    assert outcome.draft.dropped == 0


AR_PO = 'msgid "Sign In"\nmsgstr "\u200fتسجيل الدخول\u202b (Google)\u202c"'


@pytest.mark.parametrize(
    "path",
    ["allauth/locale/ar/LC_MESSAGES/django.po", "i18n/he.pot", "app/locales/fa.json", "ios/ar.strings"],
)
def test_p03_translation_catalogs_of_rtl_languages_are_not_flagged(path: str) -> None:
    """Right-to-left translations legitimately hold bidi marks; nothing compiles a catalog as code."""
    assert findings(path, AR_PO) == []


@pytest.mark.parametrize("path", ["django/conf/locale/ar/formats.py", "app/i18n.py", "src/locales/index.ts"])
def test_p03_code_inside_locale_directories_is_still_read(path: str) -> None:
    assert [f.source for f in findings(path, "x = 1  # a\u202eb")] == ["bidi-control"]
