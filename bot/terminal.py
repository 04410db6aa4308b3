"""The terminal report: what `backend-review review` prints for a person at a terminal.

Pure: it gets the draft, the changeset (whose hunks hold the head lines shown in each code frame),
the width and whether to colour, and returns the text. Like linters people know (ruff, rustc), each
finding shows its location, a few numbered head lines with the flagged ones marked, the explanation
wrapped to the window, and the suggestion as a small diff; a summary line closes the report.

Every piece of untrusted text (titles, bodies, code, paths) passes :func:`strip_invisible` first, so
a finding cannot move the cursor, recolour the terminal or plant links (O-07); the only escape
sequences in the output are our own, and only when ``color`` is set.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from bot.models import Changeset, FileDiff, Finding, RankedFinding, ReviewDraft, Severity
from bot.sanitize import strip_invisible

_SEVERITY_STYLE = {
    Severity.CRITICAL: "1;31",
    Severity.HIGH: "31",
    Severity.MEDIUM: "33",
    Severity.LOW: "34",
    Severity.NIT: "2",
}
_DIM, _BOLD, _RED, _GREEN = "2", "1", "31", "32"
CONTEXT_LINES = 2
MAX_FRAME_LINES = 12


@dataclass(frozen=True, slots=True)
class ReportFooter:
    """Facts for the closing summary that the draft does not hold."""

    seconds: float | None = None
    reviewer: str = "offline checks only (no model)"


@dataclass(frozen=True, slots=True)
class _Painter:
    color: bool

    def __call__(self, style: str, text: str) -> str:
        return f"\x1b[{style}m{text}\x1b[0m" if self.color and text else text


def plain(text: str) -> str:
    """Untrusted text for a terminal: no control characters at all (tabs become spaces)."""
    return strip_invisible(text).replace("\t", "    ")


def render_report(
    draft: ReviewDraft,
    changeset: Changeset | None,
    *,
    color: bool = False,
    width: int = 100,
    footer: ReportFooter | None = None,
) -> str:
    paint = _Painter(color)
    width = max(40, width)
    out: list[str] = []
    for ranked in draft.findings:
        out.extend(_finding_block(ranked, changeset, paint, width))
        out.append("")
    out.extend(_summary(draft, changeset, footer, paint, width))
    return "\n".join(out) + "\n"


def _finding_block(
    ranked: RankedFinding, changeset: Changeset | None, paint: _Painter, width: int
) -> list[str]:
    f = ranked.finding
    style = _SEVERITY_STYLE[f.severity]
    label = f.severity.value.upper()
    title = _clip(" ".join(plain(f.title).split()), width - len(label) - 1)
    lines = [f"{paint(style, label)} {paint(_BOLD, title)}"]
    where = _clip(plain(_location(f)), width - len(f.category.value) - 10)
    lines.append(f"  {paint(_DIM, '-->')} {where}  {paint(_DIM, '[' + f.category.value + ']')}")
    file = changeset.file(f.path) if changeset is not None else None
    head_lines = _head_lines(file) if file is not None else {}
    frame = _frame(f, head_lines)
    gutter = max((len(str(n)) for n, _ in frame), default=1)
    if frame:
        lines.append(" " * (gutter + 1) + paint(_DIM, "|"))
        for number, text in frame:
            flagged = f.line <= number <= (f.end_line or f.line)
            mark = paint(style, ">") if flagged else " "
            code = _clip(plain(text), width - gutter - 5)
            lines.append(f"{paint(_DIM, str(number).rjust(gutter))} {paint(_DIM, '|')}{mark} {code}")
        lines.append(" " * (gutter + 1) + paint(_DIM, "|"))
    indent = " " * (gutter + 1) + "= "
    for paragraph in plain(f.body).strip().split("\n\n"):
        text = " ".join(paragraph.split())
        if text:
            lines.extend(
                textwrap.wrap(
                    text,
                    width=width,
                    initial_indent=indent,
                    subsequent_indent=" " * len(indent),
                    break_long_words=True,
                    break_on_hyphens=False,
                )
            )
    if f.suggestion is not None:
        lines.append(f"{indent}{paint(_BOLD, 'suggestion:')}")
        pad = " " * len(indent)
        old = [head_lines.get(n) for n in range(f.line, (f.end_line or f.line) + 1)]
        for removed in old:
            if removed is not None:
                lines.append(pad + paint(_RED, _clip("- " + plain(removed), width - len(pad))))
        for added in f.suggestion.splitlines() or [""]:
            lines.append(pad + paint(_GREEN, _clip("+ " + plain(added), width - len(pad))))
    meta = f"{plain(f.source)} · confidence {f.confidence:.2f} · {ranked.placement}"
    lines.append(" " * (gutter + 3) + paint(_DIM, _clip(meta, width - gutter - 3)))
    return lines


def _summary(
    draft: ReviewDraft, changeset: Changeset | None, footer: ReportFooter | None, paint: _Painter, width: int
) -> list[str]:
    counts = [
        paint(_SEVERITY_STYLE[s], f"{n} {s.value}")
        for s in Severity
        if (n := sum(1 for r in draft.findings if r.finding.severity == s))
    ]
    sha = plain(draft.head_sha[:7])
    total = len(draft.findings)
    if total:
        found = f"{total} finding{'s' if total != 1 else ''} in {sha} ({', '.join(counts)})"
    else:
        found = f"no issues in {sha}"
    facts: list[str] = []
    skipped: Sequence[FileDiff] = ()
    if changeset is not None:
        reviewed = len(changeset.reviewable_files)
        skipped = changeset.skipped_files
        facts.append(f"{reviewed} file{'s' if reviewed != 1 else ''} reviewed, {len(skipped)} skipped")
    if draft.dropped:
        facts.append(f"{draft.dropped} unverifiable finding{'s' if draft.dropped != 1 else ''} dropped")
    if footer is not None:
        if footer.seconds is not None:
            facts.append(f"{footer.seconds:.1f} s")
        facts.append(footer.reviewer)
    plain_found = _without_sgr(found)
    if len("backend-review: " + plain_found) <= width:
        lines = [paint(_BOLD, "backend-review:") + " " + found]
    else:
        lines = textwrap.wrap("backend-review: " + plain_found, width=width, subsequent_indent="  ")
    if facts:
        lines.extend(paint(_DIM, ln) for ln in textwrap.wrap(" · ".join(facts), width=width))
    if skipped:
        lines.append(paint(_DIM, "skipped:"))
        shown = skipped[:10]
        for f in shown:
            lines.append(
                paint(_DIM, _clip(f"  {plain(f.path)} ({plain(f.skip_reason or 'skipped')})", width))
            )
        if len(skipped) > len(shown):
            lines.append(paint(_DIM, f"  … and {len(skipped) - len(shown)} more"))
    return lines


def _without_sgr(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _location(f: Finding) -> str:
    return f"{f.path}:{f.line}" + (f"-{f.end_line}" if f.end_line else "")


def _head_lines(file: FileDiff) -> dict[int, str]:
    """Head-file lines the diff shows (added and context), by line number."""
    return {
        ln.new_no: ln.text for h in file.hunks for ln in h.lines if ln.new_no is not None and ln.kind != "-"
    }


def _frame(f: Finding, head: dict[int, str]) -> list[tuple[int, str]]:
    """The flagged lines with a little context, as far as the diff shows them contiguously."""
    last = f.end_line or f.line
    if f.line not in head:
        return []
    if last - f.line + 1 > MAX_FRAME_LINES:
        last = f.line + MAX_FRAME_LINES - 1
    start = f.line
    while start - 1 in head and f.line - start < CONTEXT_LINES:
        start -= 1
    end = last
    while end + 1 in head and end - last < CONTEXT_LINES:
        end += 1
    return [(n, head[n]) for n in range(start, end + 1) if n in head]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


__all__ = ["ReportFooter", "plain", "render_report"]
