"""Finishing GitHub's manifest flow: exchange the one-hour ``code`` for the new App's credentials.

GitHub redirects the browser to ``redirect_url?code=…`` after "Create GitHub App". The credentials
(private key, webhook secret) are written to files readable by their owner only, and never printed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bot.errors import ConfigError, UsageError
from bot.redact import SECRETS

_CODE = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True)
class CreatedApp:
    app_id: int
    slug: str
    html_url: str
    key_path: Path
    env_path: Path


def _write_private(path: Path, text: str) -> None:
    # O_EXCL: never overwrite an existing key; 0600 from the start, not chmod after the fact
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


async def fetch_credentials(
    api_url: str, code: str, *, transport: httpx.AsyncBaseTransport | None = None
) -> dict[str, Any]:
    """The new App's credentials for a manifest ``code`` (each code works once, for an hour)."""
    if not _CODE.fullmatch(code):
        raise UsageError("the manifest code is the `code` parameter of GitHub's redirect, letters and digits")
    async with httpx.AsyncClient(base_url=api_url, timeout=30, transport=transport) as client:
        response = await client.post(
            f"/app-manifests/{code}/conversions", headers={"Accept": "application/vnd.github+json"}
        )
    if response.status_code != 201:
        raise ConfigError(
            f"GitHub did not accept the code (HTTP {response.status_code}); codes work once, for an hour"
        )
    data: dict[str, Any] = response.json()
    for value in (data.get("pem"), data.get("webhook_secret"), data.get("client_secret")):
        SECRETS.add(value)
    return data


def write_credentials(data: dict[str, Any], dest: Path, api_url: str) -> CreatedApp:
    """The private key and an env file for `serve`, both 0600; refuses to overwrite either."""
    slug = str(data["slug"])
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path, env_path = dest / f"{slug}.private-key.pem", dest / f"{slug}.env"
    if key_path.exists() or env_path.exists():
        raise ConfigError(f"{key_path} or {env_path} already exists; move it away first")
    _write_private(key_path, str(data["pem"]))
    lines = [
        f"BACKEND_REVIEW_APP_ID={int(data['id'])}",
        f"BACKEND_REVIEW_PRIVATE_KEY_PATH={key_path.resolve()}",
    ]
    if data.get("webhook_secret"):
        lines.append(f"BACKEND_REVIEW_WEBHOOK_SECRET={data['webhook_secret']}")
    if api_url.rstrip("/") != "https://api.github.com":
        lines.append(f"BACKEND_REVIEW_GITHUB_API_URL={api_url}")
    _write_private(env_path, "\n".join(lines) + "\n")
    return CreatedApp(int(data["id"]), slug, str(data.get("html_url") or ""), key_path, env_path)
