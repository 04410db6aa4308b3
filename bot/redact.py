"""Secret handling for everything that leaves the process (pure; O-05, K-03, K-06).

Two layers:

1. :class:`SecretSet` holds *our own* secrets (App private key, installation tokens, model key,
   webhook secret). :meth:`SecretSet.find` detects them exactly and in encoded or partial forms:
   base64, hex, URL-encoding, reversed, with separators between characters, or any run of at least
   :data:`MIN_FRAGMENT` characters. A hit must block the send, not just redact it.
2. :func:`redact_patterns` replaces credential-shaped strings (GitHub tokens, Anthropic/OpenAI keys,
   AWS access keys, PEM blocks, JWTs) with a placeholder, whoever they belong to.
"""

from __future__ import annotations

import base64
import re
import threading
import urllib.parse
from collections.abc import Iterable

MIN_FRAGMENT = 12
PLACEHOLDER = "[redacted]"

_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    # classic tokens and the stateless ghs_<appid>_<jwt> installation-token format
    re.compile(r"\bgh[pousr]_[A-Za-z0-9_\-.]{16,}"),
    re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{16,}"),
    re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
    re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),
)

_SEPARATORS = re.compile(r"[\s\-_.:,;|/\\'\"`*+]+")


# one pass that says whether any pattern can match: most text (every log line) has none
_ANY_PATTERN = re.compile("|".join(f"(?:{p.pattern})" for p in _PATTERNS), re.S)


def may_match_pattern(text: str) -> bool:
    """False when no credential pattern can match anywhere in ``text`` (one regex pass)."""
    return _ANY_PATTERN.search(text) is not None


def redact_patterns(text: str) -> str:
    """Replace credential-shaped substrings with :data:`PLACEHOLDER`."""
    if not may_match_pattern(text):
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(PLACEHOLDER, text)
    return text


def _grams(text: str, n: int) -> Iterable[str]:
    """Every length-``n`` substring of ``text``, produced in C (map/slice), for set membership tests."""
    return map(text.__getitem__, map(slice, range(len(text) - n + 1), range(n, len(text) + 1)))


def _variants(secret: str) -> set[str]:
    raw = secret.encode()
    out = {secret, secret[::-1], raw.hex(), raw.hex().upper(), urllib.parse.quote(secret, safe="")}
    # base64 of the secret at each of the three alignments, so an encoded substring still matches
    for shift in range(3):
        chunk = raw[shift:]
        for enc in (base64.b64encode(chunk), base64.urlsafe_b64encode(chunk)):
            text = enc.decode().rstrip("=")
            # the first and last characters depend on neighbouring bytes: keep only the stable middle
            out.add(text[1:-2] if shift else text[:-2])
    return {v for v in out if v}


class SecretSet:
    """Our own secret values, matched exactly and in encoded or partial forms. Thread-safe.

    Short-lived values (installation tokens) are discarded once revoked, so a long-running server
    keeps only the secrets that are still live."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._windows: frozenset[str] = frozenset()
        self._folded_windows: frozenset[str] = frozenset()
        self._values: frozenset[str] = frozenset()
        self._short: tuple[str, ...] = ()
        self._longest_first: tuple[str, ...] = ()
        for s in secrets:
            self.add(s)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # never show values
        return f"SecretSet({len(self._values)} secrets)"

    def add(self, secret: str | None) -> None:
        """Register a secret. Values shorter than :data:`MIN_FRAGMENT` are matched exactly only."""
        if not secret:
            return
        secret = secret.strip()
        if len(secret) < 8:
            return
        windows: set[str] = set()
        folded: set[str] = set()
        for variant in _variants(secret):
            n = min(MIN_FRAGMENT, len(variant))
            for i in range(len(variant) - n + 1):
                windows.add(variant[i : i + n])
            compact = _SEPARATORS.sub("", variant).lower()
            m = min(MIN_FRAGMENT, len(compact))
            for i in range(len(compact) - m + 1):
                folded.add(compact[i : i + m])
        if "PRIVATE" in secret:
            # a PEM key is mostly boilerplate: its header alone must not count as a fragment
            windows = {w for w in windows if not w.strip("-").replace(" ", "").isalpha()}
            folded = {w for w in folded if not w.isalpha()}
        with self._lock:
            self._entries[secret] = (frozenset(windows), frozenset(folded))
            self._rebuild()

    def discard(self, secret: str | None) -> None:
        """Forget a secret that is no longer live (e.g. a revoked installation token)."""
        if not secret:
            return
        with self._lock:
            if self._entries.pop(secret.strip(), None) is not None:
                self._rebuild()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._rebuild()

    def _rebuild(self) -> None:
        self._values = frozenset(self._entries)
        self._short = tuple(v for v in self._values if len(v) < MIN_FRAGMENT)
        self._longest_first = tuple(sorted(self._values, key=len, reverse=True))
        self._windows = frozenset().union(*(w for w, _ in self._entries.values()))
        self._folded_windows = frozenset().union(*(f for _, f in self._entries.values()))

    def find(self, text: str) -> bool:
        """True when ``text`` carries any registered secret, in any known form."""
        if not self._values or not text:
            return False
        with self._lock:
            windows, folded, short = self._windows, self._folded_windows, self._short
        if any(v in text for v in short):
            return True
        if not windows.isdisjoint(_grams(text, MIN_FRAGMENT)):
            return True
        compact = _SEPARATORS.sub("", text).lower()
        return not folded.isdisjoint(_grams(compact, MIN_FRAGMENT))

    def scrub(self, text: str) -> str:
        """Replace exact occurrences of registered secrets, then credential patterns."""
        with self._lock:
            values = self._longest_first
        for v in values:
            text = text.replace(v, PLACEHOLDER)
        return redact_patterns(text)


SECRETS = SecretSet()
"""Every secret this process holds: settings, token minting and the manifest flow register theirs here;
the log, git's error output, the agent's tools and review text are checked against it."""


__all__ = ["MIN_FRAGMENT", "PLACEHOLDER", "SECRETS", "SecretSet", "may_match_pattern", "redact_patterns"]
