"""The README's GitHub App guide cannot drift from the code: settings, repo config, commands, routes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel

from bot.config import _Schema, parse_repo_config
from bot.events import parse_command
from bot.models import Category
from bot.settings import PREFIX, SETTINGS_DOC, WEBHOOK_PATH, settings_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
APP_SECTION = "## Running the GitHub App"
DOCUMENTED = [
    ROOT / "README.md",
    ROOT / "docs" / "github-app.md",
    ROOT / "deploy" / "README.md",
    ROOT / "deploy" / "compose.yaml",
    ROOT / "deploy" / "env.example",
    ROOT / "deploy" / "systemd" / "backend-review-serve.service",
    ROOT / "deploy" / "systemd" / "backend-review-worker.service",
]


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(heading + "\n")
    body = text[start + len(heading) + 1 :]
    nxt = re.search(rf"^#{{1,{level}}} ", body, re.M)
    return body[: nxt.start()] if nxt else body


def _config_section() -> str:
    app = _section(README, APP_SECTION)
    headings = re.findall(r"^### .*$", app, re.M)
    return _section(app, next(h for h in headings if "Repository configuration" in h))


def _schema_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            keys += _schema_keys(info.annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_readme_settings_table_is_the_generated_one() -> None:
    assert settings_table() in _section(README, APP_SECTION)


def test_every_setting_named_in_the_docs_exists() -> None:
    known = {PREFIX + name for name, _, _ in SETTINGS_DOC}
    for path in DOCUMENTED:
        named = set(re.findall(rf"{PREFIX}[A-Z0-9_]+", path.read_text(encoding="utf-8")))
        assert named <= known, f"{path.relative_to(ROOT)} names unknown settings {sorted(named - known)}"


def test_p04_every_repo_config_key_is_documented() -> None:
    section = _config_section()
    keys = _schema_keys(_Schema)
    assert {"enabled", "paths.include", "ignore.title_keywords", "forks", "focus"} <= set(keys)
    for key in keys:
        assert f"| `{key}` |" in section, f"config key {key} is missing from the README table"


def test_p04_readme_config_example_is_valid_and_complete() -> None:
    section = _config_section()
    example = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert example is not None
    config, problems = parse_repo_config(example.group(1))
    assert problems == []
    data = yaml.safe_load(example.group(1))
    flat = set()
    for key, value in data.items():
        flat |= {f"{key}.{sub}" for sub in value} if isinstance(value, dict) else {key}
    assert flat == set(_schema_keys(_Schema))
    assert config.fail_on is not None and config.include


def test_c04_documented_commands_are_the_parser_allowlist() -> None:
    commands = set(re.findall(r"`(/backend-review[^`]*)`", _section(README, APP_SECTION)))
    assert {"/backend-review", "/backend-review full", "/backend-review help"} <= commands
    for command in commands:
        concrete = command.replace("CATEGORY", Category.DATABASE.value)
        parsed = parse_command(concrete)
        assert parsed is not None and parsed[0] != "unknown_option", command
    assert parse_command("/backend-review everything") == ("unknown_option", None)


def test_w01_documented_webhook_url_is_served() -> None:
    from bot.server import create_app
    from bot.settings import Settings

    app_text = _section(README, APP_SECTION)
    assert f"https://review.example.com{WEBHOOK_PATH}" in app_text

    class _NoQueue:  # create_app only stores the queue
        pass

    settings = Settings.from_env({PREFIX + "WEBHOOK_SECRET": "x" * 32})
    app = create_app(settings, _NoQueue())  # type: ignore[arg-type]
    paths = {getattr(r, "path", None) for r in app.routes}
    for path in re.findall(r"`POST (/[a-z/]*)`", app_text):
        assert path in paths, path
