"""K-01: the app asks for exactly metadata:read, contents:read, pull_requests:write, checks:write."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.settings import APP_YML, WEBHOOK_PATH, app_manifest

K01 = {"metadata": "read", "contents": "read", "pull_requests": "write", "checks": "write"}


def test_k01_app_yml_permission_set_is_exact() -> None:
    data = yaml.safe_load(Path(APP_YML).read_text())
    assert data["default_permissions"] == K01
    assert set(data["default_events"]) == {"pull_request", "issue_comment", "check_run"}


def test_k01_setup_manifest_permission_set_is_exact() -> None:
    manifest = app_manifest("https://review.example.com/")
    assert manifest["default_permissions"] == K01
    assert manifest["hook_attributes"] == {"url": "https://review.example.com" + WEBHOOK_PATH, "active": True}
    assert manifest["url"] == "https://review.example.com"
    assert manifest["redirect_url"].startswith("https://review.example.com/")
    assert manifest["public"] is False


def test_k01_manifest_of_a_widened_app_yml_is_caught(tmp_path: Path) -> None:
    widened = yaml.safe_load(Path(APP_YML).read_text())
    widened["default_permissions"]["contents"] = "write"
    path = tmp_path / "app.yml"
    path.write_text(yaml.safe_dump(widened))
    assert app_manifest("https://x.example", path)["default_permissions"] != K01


def test_k01_packaged_manifest_is_the_repository_app_yml() -> None:
    """`backend-review setup` reads the packaged copy; it must never drift from the reviewed app.yml."""
    repository_copy = Path(__file__).resolve().parent.parent / "app.yml"
    assert Path(APP_YML).read_bytes() == repository_copy.read_bytes()
