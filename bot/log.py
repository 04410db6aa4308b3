"""Structured logging: one JSON object per line on stderr, bound to the current job (K-06).

``bind(delivery=…, job=…, pr="o/r#7@abc1234")`` adds fields to every line logged inside it, across
``await`` points (contextvars). Every line passes through the process :data:`bot.redact.SECRETS` set and the
credential patterns before it is written; prompts and tool output are never logged.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

from bot.redact import SECRETS, may_match_pattern, redact_patterns

_EMPTY: dict[str, Any] = {}
_bound: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "backend_review_log",
    default=_EMPTY,  # never mutated: bind() sets a new dict
)


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    token = _bound.set({**_bound.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _bound.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        data.update(getattr(record, "bound", {}))
        data.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            data["error"] = f"{type(exc).__name__}: {exc}"
        line = json.dumps(data, default=str, ensure_ascii=False)
        if not line.isascii() and _unencodable(line):
            line = json.dumps(data, default=str)  # a lone surrogate from input: escape it, keep the line
        # Only the values can carry a secret (keys are names in our code; ts/level/logger are ours), so
        # the scans read the values alone: a per-request log line then costs a fraction of the request.
        values = _values_text(data)
        if SECRETS.find(values):
            return _blocked(data)
        return redact_patterns(line) if may_match_pattern(values) else line


_CONSTANT_KEYS = frozenset({"ts", "level", "logger"})


def _values_text(data: dict[str, Any]) -> str:
    parts: list[str] = []
    for key, value in data.items():
        if key in _CONSTANT_KEYS or value is None or isinstance(value, bool | int | float):
            continue
        parts.append(value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False))
    return "\n".join(parts)


def _unencodable(line: str) -> bool:
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _blocked(data: dict[str, Any]) -> str:
    """A line that carried one of our secrets in some form: keep only the safe skeleton."""
    safe: dict[str, Any] = {k: data[k] for k in ("ts", "level", "logger") if k in data}
    safe["event"] = "log line withheld: it contained a secret"
    return json.dumps(safe)


class Logger:
    """A thin wrapper: ``log.info("review posted", comments=3)``."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, event: str, exc_info: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(
                level, event, exc_info=exc_info, extra={"bound": dict(_bound.get()), "fields": fields}
            )

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, False, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, False, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, False, fields)

    def error(self, event: str, exc_info: bool = False, **fields: Any) -> None:
        self._log(logging.ERROR, event, exc_info, fields)


def get_logger(name: str) -> Logger:
    return Logger(name)


def configure(level: str = "INFO", stream: Any = None) -> None:
    """Install the JSON formatter on the ``bot`` logger (idempotent)."""
    logger = logging.getLogger("bot")
    logger.setLevel(level.upper())
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False


def silence() -> None:
    """No log lines at all (interactive commands print a report instead). Without a handler the
    stdlib's last-resort handler would print warnings as bare text on stderr."""
    logger = logging.getLogger("bot")
    for h in list(logger.handlers):
        logger.removeHandler(h)
    logger.addHandler(logging.NullHandler())
    logger.propagate = False


__all__ = ["JsonFormatter", "Logger", "bind", "configure", "get_logger", "silence"]
