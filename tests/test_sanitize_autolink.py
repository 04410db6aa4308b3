"""O-03: GitHub's autolinker (cmark-gfm ``url_match``) rewinds from ``://`` over ASCII letters only and
never looks at the character before them, so ``1https://host`` or ``éhttps://host`` is a live link."""

from __future__ import annotations

import re

import pytest

from bot.sanitize import inert_plain, sanitize_markdown

_LIVE = re.compile(r"(?i)https?://[a-z0-9]")  # a scheme URL outside a code span (cmark-gfm would link it)


def _outside_code(text: str) -> str:
    return re.sub(r"(`+).*?\1", "", text)


@pytest.mark.parametrize(
    "text",
    [
        "see 1https://attacker.example?d=DATA",
        "1https://attacker.example",
        "éhttps://attacker.example#x",
        "9http://127.0.0.1:8080?d=1",
        "见https://attacker.example?d=1",
    ],
)
def test_o03_scheme_url_after_digit_or_non_ascii_letter_is_not_live(text: str) -> None:
    for out in (sanitize_markdown(text, repo="o/r"), inert_plain(text)):
        assert not _LIVE.search(_outside_code(out)), out
        assert "attacker.example" in out or "127.0.0.1" in out
