from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.redact import SECRETS
from bot.settings import SETTINGS_DOC, Settings, derive_git_base_url, settings_table

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAcanary0123456789\n-----END RSA PRIVATE KEY-----"
P = "BACKEND_REVIEW_"


def test_defaults_come_from_settings_doc() -> None:
    s = Settings.from_env({})
    doc = {name: default for name, default, _ in SETTINGS_DOC}
    assert s.workers == int(doc["WORKERS"]) == 2
    assert s.max_attempts == int(doc["MAX_ATTEMPTS"]) == 3
    assert s.max_files == 300 and s.max_changed_lines == 5000 and s.max_diff_bytes == 2_000_000
    assert s.daily_token_budget == 2_000_000
    assert s.max_body_bytes == 25 * 1024 * 1024 == int(doc["MAX_BODY_BYTES"])
    assert (s.host, s.port) == ("127.0.0.1", 3000)
    assert s.github_api_url == "https://api.github.com" and s.git_base_url == "https://github.com"
    assert s.database_url == "sqlite:///data/queue.sqlite3" and not s.uses_postgres
    assert s.model == "" and s.model_api_key is None and s.webhook_secrets == ()


def test_every_field_is_documented() -> None:
    names = {name for name, _, _ in SETTINGS_DOC}
    assert len(names) == len(SETTINGS_DOC)
    table = settings_table()
    assert all(f"`{P}{n}`" in table for n in names)


def test_secrets_hidden_and_registered(tmp_path: Path) -> None:
    secret = "whsec-" + "s" * 40
    s = Settings.from_env(
        {
            P + "WEBHOOK_SECRET": secret,
            P + "WEBHOOK_SECRET_PREVIOUS": "previous-" + "p" * 40,
            P + "PRIVATE_KEY": PEM.replace("\n", "\\n"),
            P + "MODEL": "anthropic:claude-sonnet-4-5",
            "ANTHROPIC_API_KEY": "sk-ant-canary-key-0123456789",
            P + "APP_ID": "12345",
        }
    )
    text = repr(s) + str(s)
    for value in (secret, "canary0123456789", "sk-ant-canary", "previous-"):
        assert value not in text
    assert s.private_key is not None and s.private_key.get() == PEM
    assert s.model_api_key is not None and s.model_api_key.get() == "sk-ant-canary-key-0123456789"
    assert s.webhook_secret_bytes == (secret.encode(), ("previous-" + "p" * 40).encode())
    assert SECRETS.find(f"token={secret}") and SECRETS.find("x sk-ant-canary-key-0123456789 y")
    s.require_serve()
    s.require_app()


def test_private_key_path(tmp_path: Path) -> None:
    key = tmp_path / "app.pem"
    key.write_text(PEM)
    s = Settings.from_env({P + "PRIVATE_KEY_PATH": str(key), P + "CLIENT_ID": "Iv23abc"})
    assert s.private_key is not None and s.private_key.get() == PEM and s.private_key_path == key
    with pytest.raises(ConfigError, match="PRIVATE_KEY_PATH"):
        Settings.from_env({P + "PRIVATE_KEY_PATH": str(tmp_path / "missing.pem")})
    with pytest.raises(ConfigError, match="only one"):
        Settings.from_env({P + "PRIVATE_KEY_PATH": str(key), P + "PRIVATE_KEY": PEM})


def test_model_key_preference() -> None:
    env = {P + "MODEL": "openai:gpt-4.1", "OPENAI_API_KEY": "sk-openai-aaaaaaaaaaaaaaaaaaaaaaaa"}
    assert Settings.from_env(env).model_api_key is not None
    env[P + "MODEL_API_KEY"] = "explicit-key-bbbbbbbbbbbbbbbb"
    key = Settings.from_env(env).model_api_key
    assert key is not None and key.get() == "explicit-key-bbbbbbbbbbbbbbbb"
    # a provider's key is not picked up for another provider
    assert (
        Settings.from_env({P + "MODEL": "openai:x", "ANTHROPIC_API_KEY": "sk-ant-zzzz"}).model_api_key is None
    )


def test_short_webhook_secret_warns() -> None:
    assert Settings.from_env({P + "WEBHOOK_SECRET": "short"}).warnings
    assert not Settings.from_env({P + "WEBHOOK_SECRET": "x" * 32}).warnings


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({P + "WORKERS": "two"}, "WORKERS"),
        ({P + "WORKERS": "0"}, "WORKERS"),
        ({P + "PORT": "70000"}, "PORT"),
        ({P + "APP_ID": "abc"}, "APP_ID"),
        ({P + "MAX_BODY_BYTES": str(30 * 1024 * 1024)}, "MAX_BODY_BYTES"),
        ({P + "DEBOUNCE_SECONDS": "-1"}, "DEBOUNCE_SECONDS"),
        ({P + "DEBOUNCE_SECONDS": "nan"}, "DEBOUNCE_SECONDS"),
        ({P + "GITHUB_API_URL": "ftp://x"}, "GITHUB_API_URL"),
        ({P + "GITHUB_API_URL": "https://user:pw@ghe.local/api/v3"}, "GITHUB_API_URL"),
        ({P + "MODEL_BASE_URL": "file:///etc/passwd"}, "MODEL_BASE_URL"),
        ({P + "MODEL": "claude"}, "MODEL"),
        ({P + "DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({P + "ALLOWED_BOT_APP_IDS": "1,renovate"}, "ALLOWED_BOT_APP_IDS"),
        ({P + "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({P + "LOG_REQUESTS": "maybe"}, "LOG_REQUESTS"),
        ({P + "PRIVATE_KEY": "not a pem"}, "PRIVATE_KEY"),
        ({P + "WEBHOOK_SECRET_PREVIOUS": "x" * 40}, "WEBHOOK_SECRET"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Settings.from_env(env)
    message = str(exc.value)
    assert P + name in message and "\n" not in message


def test_requirements_for_serve_and_worker() -> None:
    s = Settings.from_env({})
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        s.require_serve()
    with pytest.raises(ConfigError, match="APP_ID"):
        s.require_app()


def test_ghes_and_postgres() -> None:
    s = Settings.from_env(
        {
            P + "GITHUB_API_URL": "https://ghe.example.com/api/v3/",
            P + "DATABASE_URL": "postgresql://u@127.0.0.1/db",
            P + "DATA_DIR": "/var/lib/br",
            P + "ALLOWED_BOT_APP_IDS": " 2740, 29110 ,",
        }
    )
    assert s.github_api_url == "https://ghe.example.com/api/v3"
    assert s.git_base_url == "https://ghe.example.com"
    assert s.uses_postgres and s.allowed_bot_app_ids == frozenset({2740, 29110})
    assert (
        Settings.from_env({P + "DATA_DIR": "/var/lib/br"}).database_url
        == "sqlite:////var/lib/br/queue.sqlite3"
    )
    assert derive_git_base_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
