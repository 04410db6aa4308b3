"""O-07: workflow commands built from untrusted text, and fencing of free text in the Actions log."""

from __future__ import annotations

import re

import pytest

from bot.workflow_commands import (
    annotation,
    escape_data,
    escape_property,
    fenced,
    neutralise,
    new_token,
    strip_controls,
)


def test_o07_escape_data_follows_githubs_rules_percent_first() -> None:
    assert escape_data("100%\nnext\r\nend") == "100%25%0Anext%0Aend"
    assert escape_data("%0A") == "%250A"  # an already-escaped sequence is not decoded by the runner


def test_o07_escape_property_also_escapes_colon_and_comma() -> None:
    assert escape_property("a:b,c%\nd") == "a%3Ab%2Cc%25%0Ad"


def test_o07_annotation_keeps_untrusted_text_in_its_field() -> None:
    line = annotation(
        "error",
        "msg\n::error title=pwn::owned",
        file="app/x,line=1:y.py",
        line=3,
        end_line=4,
        title="t::warning::z",
    )
    assert "\n" not in line
    assert line == (
        "::error file=app/x%2Cline=1%3Ay.py,line=3,endLine=4,title=t%3A%3Awarning%3A%3Az"
        "::msg%0A::error title=pwn::owned"
    )
    # parsed the way the runner does: the command, its properties split on ",", the message after "::"
    head, _, message = line[2:].partition("::")
    command, _, props = head.partition(" ")
    assert command == "error"
    assert [p.split("=", 1)[0] for p in props.split(",")] == ["file", "line", "endLine", "title"]
    assert message.startswith("msg%0A")


def test_o07_annotation_rejects_unknown_levels_and_needs_no_properties() -> None:
    assert annotation("notice", "hi") == "::notice::hi"
    with pytest.raises(ValueError):
        annotation("add-mask", "x")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b]8;;https://evil.example\x07click\x1b]8;;\x07", "click"),
        ("\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\", "click"),
        ("\x9b31mred", "red"),
        ("bell\x07 back\x08 nul\x00 del\x7f", "bell back nul del"),
        ("bidi\u202eevil\u2066", "bidievil"),
        ("tab\tnewline\n", "tab\tnewline\n"),
    ],
)
def test_o07_strip_controls_removes_escapes_and_invisible_characters(raw: str, clean: str) -> None:
    assert strip_controls(raw) == clean


def test_o07_fenced_text_cannot_issue_or_escape_the_fence() -> None:
    token = new_token()
    assert re.fullmatch(r"[0-9a-f]{32}", token) and token != new_token()
    hostile = (
        f"ok\n::error title=pwn::owned\n  ::warning::x\n::{token}::\n::endgroup::\r::set-output name=a::b"
    )
    out = fenced(hostile, token)
    lines = out.splitlines()
    assert lines[0].startswith("::stop-commands::") and lines[-1] == f"::{lines[0].split('::')[2]}::"
    inner = lines[1:-1]
    assert all(line.startswith("| ") for line in inner)
    # the caller's token appeared in the text, so a fresh one closes the fence instead
    closing = lines[-1].strip(":")
    assert closing != token and closing not in hostile
    assert sum(1 for line in lines if line.strip() == f"::{closing}::") == 1


def test_o07_neutralise_prefixes_every_line() -> None:
    assert neutralise("::error::a\n\n\x1b[1mb") == ["| ::error::a", "| ", "| b"]
