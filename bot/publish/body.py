"""GitHub's body limits and the bodies built to fit them (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.models import InlineComment
from bot.sanitize import Sanitised, code_span, compose, truncate

MAX_BODY = 65_536  # a review body, a comment, a check run's summary
MAX_OUTPUT_TEXT = 65_535  # a check run's output.summary and output.text


def marked(body: Sanitised, marker: Sanitised) -> Sanitised:
    """``body`` with ``marker`` as its last line, cut so the marker itself is never cut off."""
    return compose("{}\n\n{}", truncate(body, MAX_BODY - len(marker) - 2), marker)


def fold_comments(body: Sanitised, comments: Sequence[InlineComment]) -> Sanitised:
    """The review body with inline comments appended as sections (the 422 fallback: GitHub would not
    place an anchor), kept within the body limit by leaving out whole comments (never cutting one,
    which could break a marker or a fence)."""
    out = body
    omitted = 0
    for c in comments:
        where = f"{c.path}:{c.start_line}-{c.line}" if c.start_line else f"{c.path}:{c.line}"
        section = compose("\n\n---\n\n**{}**\n\n{}", code_span(where), c.body)
        if omitted or len(out) + len(section) > MAX_BODY - 200:
            omitted += 1
            continue
        out = compose("{}{}", out, section)
    if omitted:
        out = compose("{}\n\n_{} more comment(s) left out to fit GitHub's size limit._", out, omitted)
    return truncate(out, MAX_BODY)


__all__ = ["MAX_BODY", "MAX_OUTPUT_TEXT", "fold_comments", "marked"]
