"""`backend-review setup --code`: the manifest code exchange writes owner-only files, prints no secret."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from tests.support.fake_github import FakeGitHub


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path / "fake") as fake:
        yield fake


def test_code_exchange_writes_key_and_env_readable_by_owner_only(
    fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.manifest_codes.add("abc123")
    monkeypatch.setenv("BACKEND_REVIEW_GITHUB_API_URL", fake.url)
    out_dir = tmp_path / "creds"
    assert main(["setup", "--code", "abc123", "--dir", str(out_dir)]) == 0
    key = out_dir / f"{fake.app_slug}.private-key.pem"
    env = out_dir / f"{fake.app_slug}.env"
    assert key.read_text() == fake.private_key_pem
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(env.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in env.read_text().splitlines())
    assert values["BACKEND_REVIEW_APP_ID"] == str(fake.app_id)
    assert values["BACKEND_REVIEW_WEBHOOK_SECRET"] == fake.webhook_secret
    assert Path(values["BACKEND_REVIEW_PRIVATE_KEY_PATH"]) == key.resolve()
    printed = capsys.readouterr()
    assert fake.webhook_secret not in printed.out + printed.err
    assert "PRIVATE KEY" not in printed.out + printed.err
    # a code works once, and existing credentials are never overwritten
    assert main(["setup", "--code", "abc123", "--dir", str(out_dir)]) == 2
    fake.manifest_codes.add("again")
    assert main(["setup", "--code", "again", "--dir", str(out_dir)]) == 2
    assert key.read_text() == fake.private_key_pem


def test_malformed_code_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["setup", "--code", "../../x"]) == 2
    assert "manifest code" in capsys.readouterr().err
