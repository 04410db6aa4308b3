"""Process settings from the environment (12-factor), prefix ``BACKEND_REVIEW_``.

:data:`SETTINGS_DOC` is the single source of truth for names, defaults and descriptions: the parser
reads its defaults from it and the README table is generated from it. Secret values are wrapped in
:class:`Secret` (never shown by ``repr``/``str``) and registered into :data:`bot.redact.SECRETS` on load.
Operator settings only: nothing here can be set by a repository or a comment (P-05, C-04).
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.errors import ConfigError
from bot.redact import SECRETS

PREFIX = "BACKEND_REVIEW_"
MIN_WEBHOOK_SECRET_BYTES = 32
APP_YML = Path(__file__).resolve().parent / "app.yml"  # a packaged copy of the repository's app.yml
WEBHOOK_PATH = "/api/github/webhooks"

# (name without prefix, default as shown to operators, description). A default with <...> is derived.
SETTINGS_DOC: list[tuple[str, str, str]] = [
    ("APP_ID", "", "GitHub App id (numeric). APP_ID or CLIENT_ID is required to mint tokens."),
    ("CLIENT_ID", "", "GitHub App client id (Iv1.…/Iv23…), an alternative JWT issuer to APP_ID."),
    ("PRIVATE_KEY", "", "The App private key, inline PEM (\\n escapes accepted). Secret."),
    ("PRIVATE_KEY_PATH", "", "Path to the App private key PEM file, instead of PRIVATE_KEY."),
    ("WEBHOOK_SECRET", "", "Webhook secret; required by `serve`. At least 32 random bytes. Secret."),
    ("WEBHOOK_SECRET_PREVIOUS", "", "The previous webhook secret, still accepted during rotation. Secret."),
    ("GITHUB_API_URL", "https://api.github.com", "GitHub REST API root; for GHES https://HOST/api/v3."),
    ("GIT_BASE_URL", "<derived from GITHUB_API_URL>", "Git host root for fetches (https://github.com)."),
    (
        "MODEL",
        "",
        "Model spec, e.g. anthropic:claude-sonnet-4-6 or openai:gpt-4.1; empty or none = offline rules.",
    ),
    ("MODEL_BASE_URL", "", "Endpoint for an OpenAI-compatible or proxied model server."),
    ("MODEL_API_KEY", "<ANTHROPIC_API_KEY or OPENAI_API_KEY>", "Model key; falls back per provider. Secret."),
    (
        "DATA_DIR",
        "./data",
        "Embedded store (queue and token ledger) and repository cache (checkouts go to TMPDIR).",
    ),
    ("REPO_CACHE_BYTES", "5000000000", "Cap of the repository cache in DATA_DIR/repos (LRU); 0 = no cache."),
    (
        "DATABASE_URL",
        "sqlite:///<DATA_DIR>/queue.sqlite3",
        "Store of the queue and the token ledger; postgresql://… selects Postgres.",
    ),
    ("WORKERS", "2", "Concurrent review jobs per worker process."),
    ("MAX_ATTEMPTS", "3", "Attempts per job before it is dead-lettered (D-05)."),
    ("LEASE_SECONDS", "60", "Job lease; a killed worker's job is taken up again once it expires."),
    (
        "DRAIN_SECONDS",
        "30",
        "On SIGTERM, how long running reviews may finish before they are left to a retry. Keep the "
        "supervisor's stop timeout above it (deploy/: 60 s).",
    ),
    ("MAX_FILES", "300", "Size gate: changed files per PR."),
    ("MAX_CHANGED_LINES", "5000", "Size gate: added plus deleted lines per PR."),
    ("MAX_DIFF_BYTES", "2000000", "Size gate: bytes of the unified diff a review reads (D-01)."),
    ("DAILY_TOKEN_BUDGET", "2000000", "Model tokens per installation per UTC day (D-04)."),
    ("MAX_TOKENS_PER_REVIEW", "200000", "Model tokens per review, input plus output (D-02)."),
    ("DEBOUNCE_SECONDS", "30", "Delay before a push-triggered review starts, so pushes coalesce (D-03)."),
    ("ALLOWED_BOT_APP_IDS", "", "Comma list of GitHub App ids whose bots may trigger reviews (C-03)."),
    ("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR."),
    ("LOG_REQUESTS", "true", "One structured log line per webhook delivery."),
    ("HOST", "127.0.0.1", "Listen address of `serve`; use 0.0.0.0 behind a proxy or in a container."),
    ("PORT", "3000", "Listen port of `serve`."),
    ("MAX_BODY_BYTES", "26214400", "Largest accepted webhook body (25 MiB, GitHub's cap; W-05)."),
    ("BODY_TIMEOUT_SECONDS", "10", "Time allowed to receive a webhook body before 408 (W-05)."),
    (
        "MAX_HEADER_BYTES",
        "16384",
        "Largest accepted request line plus headers; more is a 431 and a close (W-05).",
    ),
    (
        "HEADER_TIMEOUT_SECONDS",
        "10",
        "Time allowed to receive the request line and headers; then 408 and a close (W-05).",
    ),
    ("METRICS_PORT", "0", "Port of the `worker` process's /metrics and /healthz on HOST; 0 = off."),
    (
        "METRICS_INSTALLATIONS",
        "",
        "Comma list of installation ids that get their own metrics label; all others count as `other`.",
    ),
]
_DEFAULTS = {name: default for name, default, _ in SETTINGS_DOC}


class Secret:
    """A secret string that never shows itself in ``repr``, ``str`` or formatted logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


WHERE = " (`backend-review setup --code` writes an env file with it; README: Running the GitHub App)"


@dataclass(frozen=True, slots=True)
class Settings:
    app_id: int | None = None
    client_id: str | None = None
    private_key: Secret | None = None
    private_key_path: Path | None = None
    webhook_secrets: tuple[Secret, ...] = ()  # the current secret first
    github_api_url: str = "https://api.github.com"
    git_base_url: str = "https://github.com"
    model: str = ""
    model_base_url: str | None = None
    model_api_key: Secret | None = None
    data_dir: Path = Path("data")
    repo_cache_bytes: int = 5_000_000_000
    database_url: str = "sqlite:///data/queue.sqlite3"
    workers: int = 2
    max_attempts: int = 3
    lease_seconds: float = 60.0
    drain_seconds: float = 30.0
    max_files: int = 300
    max_changed_lines: int = 5000
    max_diff_bytes: int = 2_000_000
    daily_token_budget: int = 2_000_000
    max_tokens_per_review: int = 200_000
    debounce_seconds: float = 30.0
    allowed_bot_app_ids: frozenset[int] = frozenset()
    log_level: str = "INFO"
    log_requests: bool = True
    host: str = "127.0.0.1"
    port: int = 3000
    max_body_bytes: int = 25 * 1024 * 1024
    body_timeout_seconds: float = 10.0
    max_header_bytes: int = 16 * 1024
    header_timeout_seconds: float = 10.0
    metrics_port: int = 0
    metrics_installations: frozenset[int] = frozenset()
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def webhook_secret_bytes(self) -> tuple[bytes, ...]:
        return tuple(s.get().encode() for s in self.webhook_secrets)

    @property
    def uses_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def model_provider(self) -> str:
        return self.model.partition(":")[0] if self.model else ""

    def require_serve(self) -> None:
        """`serve` cannot start without a webhook secret (W-01)."""
        if not self.webhook_secrets:
            raise ConfigError(
                f"{PREFIX}WEBHOOK_SECRET is required to receive webhooks: set it in the environment to the "
                f"App's webhook secret{WHERE}"
            )

    def require_app(self) -> None:
        """Workers mint installation tokens: an issuer and a private key are required."""
        if self.app_id is None and self.client_id is None:
            raise ConfigError(
                f"{PREFIX}APP_ID or {PREFIX}CLIENT_ID is required to review: set it in the environment to "
                f"the App id from the App's settings page{WHERE}"
            )
        if self.private_key is None:
            raise ConfigError(
                f"{PREFIX}PRIVATE_KEY_PATH or {PREFIX}PRIVATE_KEY is required to review: set it in the "
                f"environment to the App's private key (.pem){WHERE}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Parse the settings; the private key file is the only thing read from disk."""
        return _parse(environ)


def _raw(env: Mapping[str, str], name: str) -> str:
    value = env.get(PREFIX + name, "").strip()
    return value or (_DEFAULTS[name] if "<" not in _DEFAULTS[name] else "")


def _int(env: Mapping[str, str], name: str, low: int, high: int | None = None) -> int:
    raw = _raw(env, name)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be an integer, got {raw[:20]!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{PREFIX}{name} must be {bound}")
    return value


def _float(env: Mapping[str, str], name: str, low: float) -> float:
    raw = _raw(env, name)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be a number, got {raw[:20]!r}") from None
    if not value >= low or value == float("inf"):
        raise ConfigError(f"{PREFIX}{name} must be a finite number of at least {low}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = _raw(env, name).lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{PREFIX}{name} must be true or false")


def _url(env: Mapping[str, str], name: str) -> str:
    raw = _raw(env, name).rstrip("/")
    parts = urllib.parse.urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise ConfigError(f"{PREFIX}{name} must be an http(s) URL without credentials")
    return raw


def derive_git_base_url(api_url: str) -> str:
    """https://api.github.com → https://github.com; GHES https://HOST/api/v3 → https://HOST."""
    parts = urllib.parse.urlsplit(api_url)
    host = parts.netloc
    if host.lower() == "api.github.com":
        return "https://github.com"
    path = parts.path.rstrip("/")
    path = path.removesuffix("/api/v3")
    return urllib.parse.urlunsplit((parts.scheme, host, path, "", ""))


def _secret(env: Mapping[str, str], key: str) -> Secret | None:
    value = env.get(key, "").strip()
    return Secret(value) if value else None


def _private_key(env: Mapping[str, str]) -> tuple[Secret | None, Path | None]:
    inline = env.get(PREFIX + "PRIVATE_KEY", "").strip()
    path_raw = env.get(PREFIX + "PRIVATE_KEY_PATH", "").strip()
    if inline and path_raw:
        raise ConfigError(f"set only one of {PREFIX}PRIVATE_KEY and {PREFIX}PRIVATE_KEY_PATH")
    if inline:
        pem = inline.replace("\\n", "\n")
        path = None
    elif path_raw:
        path = Path(path_raw).expanduser()
        try:
            pem = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{PREFIX}PRIVATE_KEY_PATH cannot be read ({type(exc).__name__})") from None
    else:
        return None, None
    if "-----BEGIN" not in pem or "PRIVATE KEY-----" not in pem:
        raise ConfigError(f"{PREFIX}PRIVATE_KEY{'_PATH' if path else ''} is not a PEM private key")
    return Secret(pem), path


def _app_ids(env: Mapping[str, str]) -> frozenset[int]:
    return _id_list(env, "ALLOWED_BOT_APP_IDS")


def _id_list(env: Mapping[str, str], name: str) -> frozenset[int]:
    raw = _raw(env, name)
    ids: set[int] = set()
    for item in filter(None, (p.strip() for p in raw.split(","))):
        if not item.isdigit() or not item.isascii():
            raise ConfigError(f"{PREFIX}{name} must be a comma list of numeric ids")
        ids.add(int(item))
    return frozenset(ids)


def _parse(env: Mapping[str, str]) -> Settings:
    warnings: list[str] = []
    app_id = None
    if _raw(env, "APP_ID"):
        app_id = _int(env, "APP_ID", 1)
    private_key, key_path = _private_key(env)
    secrets = tuple(
        s
        for s in (_secret(env, PREFIX + "WEBHOOK_SECRET"), _secret(env, PREFIX + "WEBHOOK_SECRET_PREVIOUS"))
        if s
    )
    if secrets and not env.get(PREFIX + "WEBHOOK_SECRET", "").strip():
        raise ConfigError(f"{PREFIX}WEBHOOK_SECRET_PREVIOUS is set but {PREFIX}WEBHOOK_SECRET is not")
    for s in secrets:
        if len(s.get().encode()) < MIN_WEBHOOK_SECRET_BYTES:
            warnings.append(
                f"a webhook secret is shorter than {MIN_WEBHOOK_SECRET_BYTES} bytes; use a random one"
            )
    api_url = _url(env, "GITHUB_API_URL")
    git_url = _url(env, "GIT_BASE_URL") if _raw(env, "GIT_BASE_URL") else derive_git_base_url(api_url)
    model, model_base_url, model_key = _model_fields(env, None)
    if model and (":" not in model or not model.partition(":")[2]):
        raise ConfigError(f"{PREFIX}MODEL must look like provider:model, e.g. anthropic:claude-sonnet-4-6")
    data_dir = Path(_raw(env, "DATA_DIR"))
    database_url = _raw(env, "DATABASE_URL") or f"sqlite:///{data_dir / 'queue.sqlite3'}"
    if not database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError(f"{PREFIX}DATABASE_URL must start with sqlite:/// or postgresql://")
    log_level = _raw(env, "LOG_LEVEL").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{PREFIX}LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
    settings = Settings(
        app_id=app_id,
        client_id=_raw(env, "CLIENT_ID") or None,
        private_key=private_key,
        private_key_path=key_path,
        webhook_secrets=secrets,
        github_api_url=api_url,
        git_base_url=git_url,
        model=model,
        model_base_url=model_base_url,
        model_api_key=model_key,
        data_dir=data_dir,
        repo_cache_bytes=_int(env, "REPO_CACHE_BYTES", 0),
        database_url=database_url,
        workers=_int(env, "WORKERS", 1, 256),
        max_attempts=_int(env, "MAX_ATTEMPTS", 1, 20),
        lease_seconds=_float(env, "LEASE_SECONDS", 1.0),
        drain_seconds=_float(env, "DRAIN_SECONDS", 0.0),
        max_files=_int(env, "MAX_FILES", 1),
        max_changed_lines=_int(env, "MAX_CHANGED_LINES", 1),
        max_diff_bytes=_int(env, "MAX_DIFF_BYTES", 1),
        daily_token_budget=_int(env, "DAILY_TOKEN_BUDGET", 0),
        max_tokens_per_review=_int(env, "MAX_TOKENS_PER_REVIEW", 1),
        debounce_seconds=_float(env, "DEBOUNCE_SECONDS", 0.0),
        allowed_bot_app_ids=_app_ids(env),
        log_level=log_level,
        log_requests=_bool(env, "LOG_REQUESTS"),
        host=_raw(env, "HOST"),
        port=_int(env, "PORT", 0, 65535),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 1, 25 * 1024 * 1024),
        body_timeout_seconds=_float(env, "BODY_TIMEOUT_SECONDS", 0.001),
        max_header_bytes=_int(env, "MAX_HEADER_BYTES", 1024, 1024 * 1024),
        header_timeout_seconds=_float(env, "HEADER_TIMEOUT_SECONDS", 0.001),
        metrics_port=_int(env, "METRICS_PORT", 0, 65535),
        metrics_installations=_id_list(env, "METRICS_INSTALLATIONS"),
        warnings=tuple(warnings),
    )
    for secret in (private_key, model_key, *secrets):
        if secret is not None:
            SECRETS.add(secret.get())
    return settings


MODEL_KEY_VARS = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}  # per-provider fallbacks


def _model_fields(env: Mapping[str, str], model: str | None) -> tuple[str, str | None, Secret | None]:
    """The model, its base URL and its key: ``model`` (``--model``) or ``$BACKEND_REVIEW_MODEL``."""
    model = (model if model is not None else _raw(env, "MODEL")).strip()
    if model.lower() in ("none", "off", "offline"):
        model = ""
    fallback = MODEL_KEY_VARS.get(model.partition(":")[0])
    key = _secret(env, PREFIX + "MODEL_API_KEY") or (_secret(env, fallback) if fallback else None)
    base_url = _url(env, "MODEL_BASE_URL") if _raw(env, "MODEL_BASE_URL") else None
    return model, base_url, key


def model_settings(env: Mapping[str, str], model: str | None = None) -> Settings:
    """Only the model settings, for the commands that need no App (``review``, ``demo``, ``ci``):
    the same variables and key fallbacks as :meth:`Settings.from_env`, ``model`` (``--model``) first."""
    model, base_url, key = _model_fields(env, model)
    return Settings(model=model, model_base_url=base_url, model_api_key=key)


def settings_table() -> str:
    """The README table of every setting, generated from :data:`SETTINGS_DOC`."""
    rows = ["| variable | default | description |", "|---|---|---|"]
    rows += [f"| `{PREFIX}{n}` | {f'`{d}`' if d else '—'} | {text} |" for n, d, text in SETTINGS_DOC]
    return "\n".join(rows)


def app_manifest(base_url: str, path: Path = APP_YML) -> dict[str, Any]:
    """The GitHub App manifest `backend-review setup` posts, built from app.yml (K-01)."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("the base URL must be an http(s) URL")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the app manifest {path.name} ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name} must be a mapping")
    base = base_url.rstrip("/")
    manifest = dict(data)
    manifest["url"] = base
    manifest["hook_attributes"] = {"url": base + WEBHOOK_PATH, "active": True}
    manifest["redirect_url"] = base + "/manifest/callback"
    return manifest


def replace(settings: Settings, **changes: Any) -> Settings:
    """A copy with some fields changed (tests and the CLI's flag overrides)."""
    return dataclasses.replace(settings, **changes)


__all__ = [
    "MIN_WEBHOOK_SECRET_BYTES",
    "PREFIX",
    "SETTINGS_DOC",
    "WEBHOOK_PATH",
    "Secret",
    "Settings",
    "app_manifest",
    "derive_git_base_url",
    "model_settings",
    "replace",
    "settings_table",
]
