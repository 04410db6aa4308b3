"""`backend-review setup`: register the GitHub App from a browser, as Probot's users do.

A page on 127.0.0.1 shows a "Register GitHub App" button that POSTs the App manifest to GitHub's
App-creation page (github.com, an organisation's, or GitHub Enterprise Server). GitHub creates the
App and sends the browser back to this page's callback with a one-hour ``code``; the callback checks
the ``state`` it was given (CSRF), accepts one code only, converts it through the API and writes the
private key and an env file at 0600. No secret is printed or shown on the page. Then the server stops.

The local server listens on loopback only and lives for one registration (or ``timeout`` seconds).
"""

from __future__ import annotations

import asyncio
import html
import json
import secrets
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import ConfigError, UsageError
from bot.manifest import CreatedApp, fetch_credentials, write_credentials

Manifest = Callable[[str], dict[str, Any]]
"""Builds the App manifest for a public base URL (``bot.settings.app_manifest``)."""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>backend-review · register the GitHub App</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 3rem auto; padding: 0 1rem;
        color: #1f2328; }}
 h1 {{ font-size: 1.6rem; }} code {{ background: #f6f8fa; padding: .1rem .3rem; border-radius: 4px; }}
 button {{ font: inherit; font-weight: 600; color: #fff; background: #1f883d; border: 0;
          border-radius: 6px; padding: .6rem 1.2rem; cursor: pointer; }}
 input[type=url], input[type=text] {{ font: inherit; width: 100%; padding: .4rem; box-sizing: border-box; }}
 .note {{ color: #59636e; font-size: .9rem; }} table {{ border-collapse: collapse; }}
 td {{ padding: .15rem .8rem .15rem 0; vertical-align: top; }}
</style></head><body>
<h1>Register backend-review as a GitHub App</h1>
{body}
</body></html>
"""


@dataclass
class SetupFlow:
    """One registration: the state, the manifest and what the callback produced."""

    manifest_for: Manifest
    github_url: str  # web origin: https://github.com or https://ghes.example.com
    api_url: str
    dest: Path
    public_url: str | None = None
    org: str | None = None
    state: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    local_url: str = ""
    created: CreatedApp | None = None
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _used: bool = False

    @property
    def create_url(self) -> str:
        base = self.github_url.rstrip("/")
        path = (
            f"/organizations/{urllib.parse.quote(self.org)}/settings/apps/new"
            if self.org
            else "/settings/apps/new"
        )
        return f"{base}{path}?state={urllib.parse.quote(self.state)}"

    def manifest(self, public_url: str) -> dict[str, Any]:
        data = self.manifest_for(public_url)
        data["redirect_url"] = f"{self.local_url}/callback"  # back to this page, not the server
        return data

    # ---------------------------------------------------------------- pages

    def index(self, public_url: str | None) -> str:
        url = public_url or self.public_url
        if not url:
            return _PAGE.format(
                body="""<p>GitHub will send webhooks to your server's public HTTPS address. Enter it
(the base URL; the App's webhook URL will be <code>BASE/api/github/webhooks</code>):</p>
<form method="get" action="/"><p><input type="url" name="url" required
placeholder="https://review.example.com" aria-label="public base URL"></p>
<p><button type="submit">Continue</button></p></form>
<p class="note">Set it for next time with <code>backend-review setup --url URL</code>. For development,
a smee.io channel works (never in production).</p>"""
            )
        try:
            manifest = self.manifest(url)
        except ConfigError as exc:
            return _PAGE.format(
                body=f"<p>That URL cannot be used: {html.escape(str(exc))}</p>"
                f'<p><a href="/">Try again</a></p>'
            )
        target = "an organisation" if self.org else "your account"
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(str(v))}</code></td></tr>"
            for k, v in (
                ("name", manifest.get("name", "")),
                ("webhook URL", (manifest.get("hook_attributes") or {}).get("url", "")),
                (
                    "permissions",
                    ", ".join(f"{p}: {a}" for p, a in (manifest.get("default_permissions") or {}).items()),
                ),
                ("events", ", ".join(manifest.get("default_events") or ())),
            )
        )
        return _PAGE.format(
            body=f"""<p>This creates a GitHub App on {html.escape(target)} at
<code>{html.escape(self.github_url)}</code> with exactly these settings:</p>
<table>{rows}</table>
<form method="post" action="{html.escape(self.create_url)}">
<input type="hidden" name="manifest" value="{html.escape(json.dumps(manifest))}">
<p><button type="submit" id="register">Register GitHub App</button></p></form>
<p class="note">GitHub asks you to confirm, then sends you back here; the App's private key and
webhook secret are written to <code>{html.escape(str(self.dest))}</code>, readable by you only.</p>"""
        )

    async def callback(self, code: str | None, state: str | None) -> tuple[int, str]:
        if self._used:
            return 409, _PAGE.format(
                body="<p>This setup page has already registered an App. Start "
                "<code>backend-review setup</code> again for another.</p>"
            )
        if not state or not secrets.compare_digest(state.encode(), self.state.encode()):
            return 403, _PAGE.format(
                body="<p>This callback does not belong to this setup (state "
                "mismatch). Nothing was written.</p>"
            )
        if not code:
            return 400, _PAGE.format(body="<p>GitHub sent no code. Nothing was written.</p>")
        self._used = True
        try:
            data = await fetch_credentials(self.api_url, code)
            self.created = write_credentials(data, self.dest, self.api_url)
        except (ConfigError, UsageError) as exc:
            self.error = str(exc)
            self.done.set()
            return 502, _PAGE.format(body=f"<p>Registration failed: {html.escape(str(exc))}</p>")
        self.done.set()
        created = self.created
        return 200, _PAGE.format(
            body=f"""<p><strong>Created the GitHub App {html.escape(created.slug)}</strong>
(id {created.app_id}).</p>
<p>Wrote <code>{html.escape(str(created.key_path))}</code> and
<code>{html.escape(str(created.env_path))}</code> (readable by you only).</p>
<p>Next: <a href="{html.escape(created.html_url)}/installations/new">install it</a> on your
repositories, then run <code>set -a; . {html.escape(str(created.env_path))}; set +a;
backend-review serve</code>. You can close this page.</p>"""
        )


def api_url_for(github_url: str) -> str:
    """github.com's API is api.github.com; GitHub Enterprise Server serves it under /api/v3."""
    parsed = urllib.parse.urlsplit(github_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError("--github-url must be an http(s) URL such as https://github.com")
    if parsed.netloc.lower() == "github.com":
        return "https://api.github.com"
    return f"{parsed.scheme}://{parsed.netloc}/api/v3"


async def run_setup_server(
    flow: SetupFlow,
    *,
    port: int,
    wait_seconds: float,
    on_ready: Callable[[str], None],
) -> CreatedApp:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response
    from starlette.routing import Route

    async def index(request: Request) -> Response:
        return HTMLResponse(flow.index(request.query_params.get("url")), headers=_NO_STORE)

    async def callback(request: Request) -> Response:
        status, page = await flow.callback(
            request.query_params.get("code"), request.query_params.get("state")
        )
        return HTMLResponse(page, status_code=status, headers=_NO_STORE)

    app = Starlette(routes=[Route("/", index), Route("/callback", callback)])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
            raise ConfigError(f"cannot listen on 127.0.0.1:{port}")
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    flow.local_url = f"http://127.0.0.1:{bound}"
    on_ready(flow.local_url)
    try:
        await asyncio.wait_for(flow.done.wait(), wait_seconds)
        await asyncio.sleep(0.2)  # let the success page reach the browser
    except TimeoutError:
        raise UsageError(f"no App was registered within {int(wait_seconds)} s; run setup again") from None
    finally:
        server.should_exit = True
        await serving
    if flow.created is None:
        raise ConfigError(flow.error or "the registration failed")
    return flow.created


_NO_STORE = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}

__all__ = ["SetupFlow", "api_url_for", "run_setup_server"]
