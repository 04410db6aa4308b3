"""`backend-review setup` registers the App from a browser (issue 12, item 2).

The browser test clicks through the real page in Debian's headless Chromium (driven by Playwright)
against the fake GitHub, which serves a stand-in App-creation page that sends the browser back with a
code. It is skipped when no Chromium is installed (`.ci/run` installs it).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.settings import app_manifest
from bot.setup_flow import SetupFlow, api_url_for
from tests.support.fake_github import FakeGitHub

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path / "gh") as gh:
        yield gh


def _flow(fake: FakeGitHub, dest: Path, **kw: object) -> SetupFlow:
    flow = SetupFlow(
        manifest_for=app_manifest,
        github_url=fake.url.rstrip("/"),
        api_url=fake.api_url,
        dest=dest,
        **kw,  # type: ignore[arg-type]
    )
    flow.local_url = "http://127.0.0.1:9"
    return flow


def test_the_callback_checks_state_and_accepts_one_code_only(fake: FakeGitHub, tmp_path: Path) -> None:
    dest = tmp_path / "secrets"
    flow = _flow(fake, dest)
    fake.manifest_codes.update({"c1", "c2"})

    async def go() -> None:
        status, page = await flow.callback("c1", "forged-state")
        assert status == 403 and not dest.exists()
        status, page = await flow.callback("c1", flow.state)
        assert status == 200 and "Created the GitHub App" in page
        assert fake.private_key_pem not in page and fake.webhook_secret not in page
        status, _ = await flow.callback("c2", flow.state)
        assert status == 409  # one registration per run

    asyncio.run(go())
    assert "c2" in fake.manifest_codes  # the second code was never exchanged
    assert sorted(p.name for p in dest.iterdir()) == ["backend-review.env", "backend-review.private-key.pem"]


def test_the_page_asks_for_the_url_instead_of_inventing_one(fake: FakeGitHub, tmp_path: Path) -> None:
    flow = _flow(fake, tmp_path)
    page = flow.index(None)
    assert 'name="url"' in page and "example.com/api" not in page and "Register GitHub App" not in page
    page = flow.index("https://review.example.com")
    assert "Register GitHub App" in page
    assert f'action="{fake.url.rstrip("/")}/settings/apps/new?state=' in page
    assert "https://review.example.com/api/github/webhooks" in page
    assert "http://127.0.0.1:9/callback" in page  # GitHub sends the browser back to this page


def test_organisation_and_enterprise_addresses(fake: FakeGitHub, tmp_path: Path) -> None:
    flow = _flow(fake, tmp_path, org="acme")
    assert "/organizations/acme/settings/apps/new?state=" in flow.create_url
    assert api_url_for("https://github.com") == "https://api.github.com"
    assert api_url_for("https://ghe.example.com/") == "https://ghe.example.com/api/v3"


def test_manifest_without_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["setup", "--manifest"]) == 2
    assert "--url" in capsys.readouterr().err


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_register_the_app_in_a_real_browser(fake: FakeGitHub, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    dest = tmp_path / "secrets"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKEND_REVIEW_")}
    env["BACKEND_REVIEW_GITHUB_API_URL"] = fake.api_url
    exe = str(Path(sys.executable).with_name("backend-review"))
    proc = subprocess.Popen(
        [exe, "setup", "--github-url", fake.url, "--dir", str(dest), "--timeout", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    shots = Path(os.environ.get("SETUP_SCREENSHOTS", tmp_path))
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert found, first
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1000, "height": 800})
                page.goto(found.group(0))
                page.fill("input[name=url]", "https://review.example.com")  # no --url: the page asks
                page.click("button[type=submit]")
                page.wait_for_selector("#register")
                page.screenshot(path=str(shots / "setup-page.png"))
                page.click("#register")
                page.wait_for_selector("#create")  # the stand-in GitHub page
                page.click("#create")
                page.wait_for_selector("text=Created the GitHub App backend-review")
                page.screenshot(path=str(shots / "setup-done.png"))
            finally:
                browser.close()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    posted = fake.manifest_posts[-1]
    assert posted["manifest"]["hook_attributes"]["url"] == "https://review.example.com/api/github/webhooks"
    assert posted["state"] and len(posted["state"]) >= 32
    key = dest / "backend-review.private-key.pem"
    env_file = dest / "backend-review.env"
    assert key.read_text() == fake.private_key_pem
    assert f"BACKEND_REVIEW_WEBHOOK_SECRET={fake.webhook_secret}" in env_file.read_text()
    for path in (key, env_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    printed = first + out + err
    assert fake.private_key_pem not in printed and fake.webhook_secret not in printed
    assert "BEGIN" not in printed
