"""Publishing for the local command: the report in one of the formats of :mod:`bot.formats`, written to
a file or to standard output."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from bot import __version__
from bot.errors import UsageError
from bot.formats import to_codeclimate, to_json, to_markdown, to_sarif, to_text
from bot.pipeline import ReviewOutcome
from bot.publish.base import Published
from bot.terminal import ReportFooter


def render(
    outcome: ReviewOutcome,
    fmt: str,
    *,
    color: bool = False,
    width: int = 100,
    footer: ReportFooter | None = None,
) -> str:
    draft = outcome.draft
    if fmt == "json":
        return to_json(draft, outcome.changeset)
    if fmt == "sarif":
        return to_sarif(draft, tool_version=__version__)
    if fmt == "codeclimate":
        return to_codeclimate(draft)
    if fmt == "markdown":
        return to_markdown(draft)
    return to_text(draft, color=color, changeset=outcome.changeset, width=width, footer=footer)


def check_output(output: str | None) -> None:
    """Refuse an --output that cannot be written before the review runs, not after."""
    if not output:
        return
    target = Path(output)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UsageError(f"--output {output}: is a directory")
    if not parent.is_dir():
        raise UsageError(f"--output {output}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise UsageError(f"--output {output}: permission denied")


def emit(text: str, output: str | None, stream: TextIO | None = None) -> None:
    """``text`` as one file (``output``) or on ``stream`` (standard output by default)."""
    text = text if text.endswith("\n") else text + "\n"
    if not output:
        (stream or sys.stdout).write(text)
        return
    try:
        Path(output).write_text(text)
    except OSError as exc:
        raise UsageError(f"--output {output}: {exc.strerror or type(exc).__name__}") from None


class LocalPublisher:
    """The report in ``fmt`` to ``output`` (a file) or standard output."""

    def __init__(
        self,
        fmt: str,
        output: str | None,
        *,
        color: bool = False,
        width: int = 100,
        footer: ReportFooter | None = None,
    ) -> None:
        self.fmt = fmt
        self.output = output
        self.color = color
        self.width = width
        self.footer = footer

    async def publish(self, outcome: ReviewOutcome) -> Published:
        report = render(outcome, self.fmt, color=self.color, width=self.width, footer=self.footer)
        emit(report, self.output)
        return Published()


__all__ = ["LocalPublisher", "check_output", "emit", "render"]
