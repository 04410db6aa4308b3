"""O-05 layer 1 (our own secrets, in any form) and layer 2 (credential patterns); K-06 for logs."""

from __future__ import annotations

import base64
import io
import json
import urllib.parse
import uuid

import pytest

from bot.log import bind, configure, get_logger
from bot.redact import PLACEHOLDER, SECRETS, SecretSet, redact_patterns


@pytest.fixture
def canary() -> str:
    return f"ghs_{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: s,
        lambda s: s[::-1],
        lambda s: base64.b64encode(s.encode()).decode(),
        lambda s: base64.b64encode(b"x" + s.encode()).decode(),
        lambda s: base64.b64encode(b"xy" + s.encode()).decode(),
        lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
        lambda s: s.encode().hex(),
        lambda s: s.encode().hex().upper(),
        lambda s: urllib.parse.quote(s, safe=""),
        lambda s: " ".join(s),
        lambda s: "-".join(s),
        lambda s: s[5:17],  # any 12-character fragment
        lambda s: s[-12:],
        lambda s: s.upper(),
    ],
)
def test_o05_own_secret_found_in_encoded_and_partial_forms(canary: str, encode: object) -> None:
    secrets = SecretSet([canary])
    assert callable(encode)
    text = f"look: {encode(canary)} there"
    assert secrets.find(text)


def test_o05_unrelated_text_is_not_a_hit(canary: str) -> None:
    secrets = SecretSet([canary])
    assert not secrets.find("def handler(request):\n    return request.json()\n" * 50)
    assert not secrets.find(canary[:11])  # below the fragment size


def test_short_secrets_match_exactly_only() -> None:
    secrets = SecretSet(["hunter2pw"])
    assert secrets.find("pw is hunter2pw!")
    assert not secrets.find("hunter2")
    assert "hunter2pw" not in repr(secrets)


def test_tiny_and_empty_values_are_ignored() -> None:
    secrets = SecretSet(["", "abc", None])  # type: ignore[list-item]
    assert len(secrets) == 0
    assert not secrets.find("abc")


def test_pem_boilerplate_alone_is_not_a_hit() -> None:
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\n"
        "MIIEowIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aozN3tihPmljnnudb9G3HE\n"
        "-----END RSA PRIVATE KEY-----"
    )
    secrets = SecretSet([pem])
    assert secrets.find("MIIEowIBAAKCAQEA1c7+9z5Pad7")
    assert not secrets.find("docs: a file starts with -----BEGIN RSA PRIVATE KEY----- usually")


def test_scrub_replaces_exact_values_and_patterns(canary: str) -> None:
    secrets = SecretSet([canary])
    out = secrets.scrub(f"token {canary} and AKIAIOSFODNN7EXAMPLE")
    assert canary not in out and "AKIAIOSFODNN7EXAMPLE" not in out
    assert out.count(PLACEHOLDER) == 2


@pytest.mark.parametrize(
    "value",
    [
        "ghp_" + "a" * 36,
        "gho_" + "B" * 36,
        "ghu_" + "c1" * 18,
        "ghs_" + "d" * 36,
        "ghs_12345_eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ.c2lnbmF0dXJlLXZhbHVl",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "sk-ant-api03-" + "x" * 40,
        "sk-proj-" + "y" * 40,
        "sk-" + "z" * 48,
        "AKIAIOSFODNN7EXAMPLE",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
        "xoxb-1234567890-abcdefghij",
    ],
)
def test_o05_credential_patterns_redacted(value: str) -> None:
    out = redact_patterns(f"before {value} after")
    assert value not in out
    assert PLACEHOLDER in out
    assert out.startswith("before ") and out.endswith(" after")


def test_patterns_leave_ordinary_code_alone() -> None:
    code = 'skip = "sk-"\nuser_token = request.headers["Authorization"]\nghost_count = 3\n'
    assert redact_patterns(code) == code


def test_k06_log_lines_are_json_bound_and_scrubbed(canary: str) -> None:
    stream = io.StringIO()
    configure("DEBUG", stream)
    SECRETS.add(canary)
    log = get_logger("bot.test")
    with bind(delivery="d-1", job="j-1", pr="o/r#1@abc1234"):
        log.info("fetched", detail="plain")
        log.info("oops", detail=f"token={canary}")
        log.warning("encoded", detail=base64.b64encode(canary.encode()).decode())
        log.info("aws", detail="key AKIAIOSFODNN7EXAMPLE")
    try:
        raise ValueError(f"boom {canary}")
    except ValueError:
        log.error("failed", exc_info=True)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert (
        lines[0]["event"] == "fetched" and lines[0]["delivery"] == "d-1" and lines[0]["pr"] == "o/r#1@abc1234"
    )
    text = stream.getvalue()
    assert canary not in text
    assert base64.b64encode(canary.encode()).decode() not in text
    assert "AKIAIOSFODNN7EXAMPLE" not in text
    assert "job" not in lines[-1]  # binding ended with the block
    assert all(line["ts"].endswith("Z") for line in lines)


def test_discard_forgets_a_revoked_secret_but_keeps_the_others(canary: str) -> None:
    other = "sk-ant-" + "q1w2e3r4t5y6u7i8o9p0" * 2
    secrets = SecretSet([canary, other])
    secrets.discard(canary)
    assert not secrets.find(canary)
    assert secrets.find(other)
    assert len(secrets) == 1
    secrets.clear()
    assert not secrets.find(other) and len(secrets) == 0


def test_git_output_is_scrubbed_of_the_set_it_is_given() -> None:
    from bot.checkout import _scrub

    ours = f"our-secret-{uuid.uuid4().hex}"
    assert ours not in _scrub(f"fatal: {ours[::-1]} and {ours}", {}, SecretSet([ours]))
    assert _scrub("fatal: nothing secret here", {}, SecretSet([ours])) == "fatal: nothing secret here"


def test_the_app_registers_its_tokens_in_the_set_it_is_given() -> None:
    from bot.github import GitHubApp

    secrets = SecretSet()
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAcanary0123456789\n-----END RSA PRIVATE KEY-----"
    GitHubApp(private_key=key, app_id=1, secrets=secrets)
    assert secrets.find(key) and not SECRETS.find(key)
