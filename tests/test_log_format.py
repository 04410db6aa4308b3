"""K-06 with the cheaper per-line scan: only field values are scanned, and nothing slips through."""

from __future__ import annotations

import json
import logging

from bot import log
from bot.redact import PLACEHOLDER, SECRETS

SECRET = "s3cr3t-value-for-the-log-test-0123456789"


def _format(**fields: object) -> dict[str, object]:
    record = logging.LogRecord("bot.test", logging.INFO, __file__, 1, "event text", None, None)
    record.fields = fields
    record.bound = {"job": "j-1"}
    return dict(json.loads(log.JsonFormatter().format(record)))


def test_secret_in_any_value_withholds_the_line() -> None:
    SECRETS.add(SECRET)
    try:
        for fields in (
            {"detail": f"x {SECRET} y"},
            {"nested": {"deep": [SECRET[5:30]]}},  # a fragment, inside a structure
            {"detail": SECRET.encode().hex()},  # an encoded form
        ):
            assert _format(**fields)["event"] == "log line withheld: it contained a secret", fields
    finally:
        SECRETS.discard(SECRET)


def test_credential_patterns_in_values_are_redacted_and_clean_lines_kept() -> None:
    token = "ghp_" + "A" * 36
    line = _format(detail=f"token {token}", count=3, ok=True, none=None)
    assert token not in json.dumps(line) and PLACEHOLDER in str(line["detail"])
    clean = _format(delivery="3b2a30a6-0001-4000-8000-000000001a7e", status=202, ms=1.5)
    assert clean["delivery"] == "3b2a30a6-0001-4000-8000-000000001a7e" and clean["job"] == "j-1"
