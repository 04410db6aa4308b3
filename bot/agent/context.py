"""The enclosing definitions of the changed hunks, for the model's first message (pure).

A hunk shows three lines around a change; the function or class it sits in is what a reviewer reads to
judge it (is the input validated above? is the query scoped? which decorator guards it?). From the head
file's syntax tree, each hunk's innermost enclosing function (else class) is added with line numbers,
once per definition, largest share to the files shown first, within the room the diff left in the
prompt budget. Definitions the hunk already shows whole, and files without a tree, add nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.diff import estimate_tokens
from bot.models import Changeset, FileStatus
from bot.rules.base import language_of
from bot.rules.structural import FileTexts
from bot.rules.syntax import MAX_TOTAL_PARSE_BYTES, Def, parse

MAX_DEF_LINES = 120  # a longer definition shows its head and the lines around the hunk only
TITLE = "## Enclosing definitions of the changed hunks (head revision; read the rest with view)\n"


def enclosing_definitions(
    changeset: Changeset, texts: Mapping[str, FileTexts], max_tokens: int, order: Sequence[str] = ()
) -> str:
    """The section text, or "" when nothing fits or nothing adds to the diff."""
    if max_tokens <= estimate_tokens(TITLE) + 20:
        return ""
    first = {p: i for i, p in enumerate(order)}
    files = sorted(
        (f for f in changeset.reviewable_files if f.status != FileStatus.DELETED and f.path in texts),
        key=lambda f: first.get(f.path, len(first)),
    )
    blocks: list[str] = []
    used = estimate_tokens(TITLE)
    parsed = 0
    for fd in files:
        head = texts[fd.path].head
        if head is None or parsed + len(head) > MAX_TOTAL_PARSE_BYTES:
            continue
        tree = parse(head, language_of(fd.path), fd.path)
        if tree is None:
            continue
        parsed += len(head)
        seen: set[int] = set()
        for h in fd.hunks:
            shown = range(h.new_start - 1, h.new_start - 1 + h.new_count)
            changed = [ln.new_no - 1 for ln in h.lines if ln.kind == "+" and ln.new_no is not None]
            anchor = changed[0] if changed else h.new_start - 1
            d = tree.enclosing(anchor, "function") or tree.enclosing(anchor, "class")
            if d is None or id(d) in seen or (d.start in shown and d.end in shown):
                continue
            seen.add(id(d))
            block = _block(fd.path, d, tree.lines, anchor)
            cost = estimate_tokens(block)
            if used + cost > max_tokens:
                continue  # a smaller definition further on may still fit
            blocks.append(block)
            used += cost
    return TITLE + "".join(blocks) if blocks else ""


def _block(path: str, d: Def, lines: Sequence[str], anchor: int) -> str:
    width = len(str(d.end + 1))
    keep = range(d.start, d.end + 1)
    if len(keep) > MAX_DEF_LINES:
        head = range(d.start, d.start + MAX_DEF_LINES // 3)
        lo = max(head.stop, anchor - MAX_DEF_LINES // 3)
        around = range(lo, min(d.end + 1, lo + 2 * MAX_DEF_LINES // 3))
        rows = [*head, -1, *around] if lo > head.stop else [*head, *around]
    else:
        rows = list(keep)
    body = "".join(
        "   …\n" if i < 0 else f"{str(i + 1).rjust(width)} {lines[i]}\n" for i in rows if i < len(lines)
    )
    return f"### {path}:{d.start + 1}-{d.end + 1} ({d.kind} {d.qualname})\n{body}"
