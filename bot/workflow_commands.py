"""Pure: GitHub Actions workflow commands, built so untrusted text can never issue one (O-07).

The runner treats any log line starting with ``::`` as a command (``::error``, ``::add-mask``,
``::stop-commands``…). Pull-request text (titles, paths, finding bodies) is attacker-controlled, so:

- a command we emit escapes its message (``%``, CR, LF) and its properties (also ``:`` and ``,``), so
  untrusted text stays on the command's one line and inside its own field;
- free text is printed inside ``::stop-commands::<random token>`` … ``::<token>::``, where the runner
  ignores commands; every line of it is also prefixed, so no line starts with ``::`` even if the fence
  were bypassed, and ANSI/OSC-8 escapes and other control characters are removed first.
"""

from __future__ import annotations

import re
import secrets

from bot.sanitize import SanitisedText, strip_invisible

LEVELS = frozenset({"error", "warning", "notice"})
LINE_PREFIX = "| "

# CSI (colours, cursor moves), OSC (titles, OSC-8 hyperlinks; ended by BEL or ST), other ESC sequences,
# and C1 CSI/OSC introducers.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x9d[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[@-Z\\-_]?"
)


def strip_controls(text: str) -> str:
    """Remove terminal escape sequences, then every control/invisible character except newline and tab."""
    return strip_invisible(_ESCAPES.sub("", text))


def escape_data(text: str) -> str:
    """A command's message: GitHub's escaping (``%`` first), so it stays on one line."""
    return strip_controls(text).replace("%", "%25").replace("\n", "%0A").replace("\r", "%0D")


def escape_property(text: str) -> str:
    """A command property value (``file=``, ``title=``): data escaping plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(
    level: str,
    message: SanitisedText,
    *,
    file: str | None = None,
    line: int | None = None,
    end_line: int | None = None,
    title: SanitisedText | None = None,
) -> str:
    """One ``::error``/``::warning``/``::notice`` line with every untrusted part escaped. The message
    and title GitHub shows are sanitised plain text (O-03) before they are escaped for the runner."""
    if level not in LEVELS:
        raise ValueError(f"annotation level must be one of {sorted(LEVELS)}")
    props: list[str] = []
    if file:
        props.append(f"file={escape_property(file)}")
    if line is not None:
        props.append(f"line={int(line)}")
    if end_line is not None:
        props.append(f"endLine={int(end_line)}")
    if title:
        props.append(f"title={escape_property(title)}")
    head = f"::{level} {','.join(props)}" if props else f"::{level}"
    return f"{head}::{escape_data(message)}"


def new_token() -> str:
    """A fresh stop-commands token: unguessable, so untrusted text cannot close the fence early."""
    return secrets.token_hex(16)


def neutralise(text: str) -> list[str]:
    """Untrusted text as log lines: controls removed, each line prefixed so none starts with ``::``."""
    return [LINE_PREFIX + line.replace("\t", "    ") for line in strip_controls(text).split("\n")]


def fenced(text: str, token: str | None = None) -> str:
    """``text`` between ``::stop-commands::<token>`` and ``::<token>::``, neutralised line by line."""
    token = token or new_token()
    lines = neutralise(text)
    while any(token in line for line in lines):  # only with a caller-chosen token
        token = new_token()
    return "\n".join([f"::stop-commands::{token}", *lines, f"::{token}::"]) + "\n"


__all__ = [
    "LEVELS",
    "annotation",
    "escape_data",
    "escape_property",
    "fenced",
    "neutralise",
    "new_token",
    "strip_controls",
]
