"""S-02: a ``.gitmodules`` entry that would attack a client which initialises submodules.

backend-review never initialises submodules, and it lets git's ``.gitmodules`` fsck checks pass so that
such a pull request is still reviewed (an author must not be able to opt out of review). The entry is
reported instead: anyone who clones the repository with ``--recurse-submodules`` is exposed to it.

The checks mirror git's own ``gitmodules*`` fsck messages (``gitmodulesUrl``, ``gitmodulesPath``,
``gitmodulesName``, ``gitmodulesUpdate``) plus the transports git refuses for submodules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from urllib.parse import unquote

from bot.models import Category, Severity
from bot.rules.base import Check, Hit, Source, rule

_SECTION = re.compile(r'^\s*\[\s*submodule\s+"(?P<name>(?:[^"\\]|\\.)*)"\s*\]', re.IGNORECASE)
_ENTRY = re.compile(r"^\s*(?P<key>url|path|update|branch)\s*=\s*(?P<value>.*)$", re.IGNORECASE)
# transports that run a command or read the local disk (git blocks them for submodules by default)
_UNSAFE_SCHEME = re.compile(r"^(?:ext|fd)::|^file:", re.IGNORECASE)
_SCHEME_HOST = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?P<rest>.*)$", re.DOTALL)


def _value(raw: str) -> str:
    """A git-config value: surrounding quotes removed, an unquoted trailing ``#``/``;`` comment cut."""
    out: list[str] = []
    quoted = False
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            out.append({"n": "\n", "t": "\t", "b": "\b"}.get(raw[i + 1], raw[i + 1]))
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c in "#;" and not quoted:
            break
        else:
            out.append(c)
        i += 1
    return "".join(out).strip()


def _climbs(path: str) -> bool:
    parts = PurePosixPath(path.replace("\\", "/")).parts
    return path.startswith(("/", "\\")) or ".." in parts or any(p.lower() == ".git" for p in parts)


def _hostile_url(url: str) -> bool:
    if url.startswith("-") or _UNSAFE_SCHEME.match(url):
        return True
    decoded = unquote(url)
    if any(ord(c) < 0x20 for c in decoded):  # a newline smuggled into a credential helper request
        return True
    m = _SCHEME_HOST.match(url)
    if m and m["rest"].lstrip("[").startswith("-"):  # ssh://-oProxyCommand=…: the host becomes an option
        return True
    # a relative URL whose remainder is itself a URL or an option (git's own check: relative then absolute)
    stripped = re.sub(r"^(?:\.{1,2}/)+", "", url)
    return stripped != url and (stripped.startswith("-") or _SCHEME_HOST.match(stripped) is not None)


def _hostile(key: str, value: str) -> bool:
    key = key.lower()
    if value.startswith("-"):
        return True
    if key == "url":
        return _hostile_url(value)
    if key == "path":
        return _climbs(value)
    if key == "update":
        return value.startswith("!")  # runs an arbitrary command on `git submodule update`
    return False


def _gitmodules(src: Source) -> Iterator[Hit]:
    if PurePosixPath(src.path).name.lower() != ".gitmodules":
        return
    for i, line in enumerate(src.raw):
        section = _SECTION.match(line)
        if section is not None:
            name = section["name"]
            if name.startswith("-") or _climbs(name):
                yield Hit(i)
            continue
        entry = _ENTRY.match(line)
        if entry is not None and _hostile(entry["key"], _value(entry["value"])):
            yield Hit(i)


CHECKS = (
    Check(
        rule(
            "gitmodules-hostile",
            "Hostile submodule entry in .gitmodules",
            Category.SECURITY,
            Severity.HIGH,
            (),
            "This .gitmodules entry attacks whoever clones with submodules: an option-like or "
            "command-running URL (`-oProxyCommand=…`, `ext::`, `ssh://-o…`), a path or name that climbs "
            "out of the work tree or into `.git`, or an `update = !command`. git refuses such entries "
            "(fsck gitmodules checks; CVE-2017-1000117, CVE-2018-11235).",
            "Point the submodule at a plain https URL and give it a path inside the repository.",
            0.9,
        ),
        _gitmodules,
        skip_tests=False,
        in_comments=True,
    ),
)
