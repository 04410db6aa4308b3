"""bot/model_choice.py: one model/key resolution for the App's workers, ``review``, ``demo`` and ``ci``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bot.app import _check_model, provider_factory
from bot.errors import ConfigError
from bot.model_choice import MissingModelKey, ModelChoice, resolve
from bot.settings import Settings, model_settings

P = "BACKEND_REVIEW_"
BOT = Path(__file__).resolve().parent.parent / "bot"
ANTHROPIC = {P + "MODEL": "anthropic:claude-sonnet-4-6", "ANTHROPIC_API_KEY": "sk-ant-canary-0123456789"}
ENVS = [
    {},
    {P + "MODEL": "off"},
    ANTHROPIC,
    {**ANTHROPIC, P + "MODEL_API_KEY": "explicit-key-0123456789"},
    {P + "MODEL": "openai:gpt-4.1", "OPENAI_API_KEY": "sk-openai-0123456789"},
    {P + "MODEL": "openai:llama3", P + "MODEL_BASE_URL": "http://127.0.0.1:11434/v1"},
    {P + "MODEL": "openai:llama3@http://127.0.0.1:11434/v1"},
    {P + "MODEL": "openai:gpt-4.1", "ANTHROPIC_API_KEY": "sk-ant-canary-0123456789"},
    {P + "MODEL": "anthropic:claude-sonnet-4-6"},
]


def _outcome(settings: Settings) -> ModelChoice | str | None:
    try:
        return resolve(settings)
    except MissingModelKey as exc:
        return f"missing: {exc}"


@pytest.mark.parametrize("env", ENVS)
def test_the_app_and_the_commands_resolve_the_same_model_and_key(env: dict[str, str]) -> None:
    assert _outcome(Settings.from_env(env)) == _outcome(model_settings(env))


def test_resolution() -> None:
    choice = resolve(Settings.from_env(ANTHROPIC))
    assert choice is not None and (choice.spec.provider, choice.spec.model) == (
        "anthropic",
        "claude-sonnet-4-6",
    )
    assert choice.api_key == "sk-ant-canary-0123456789" and choice.base_url is None
    local = resolve(model_settings({P + "MODEL_BASE_URL": "http://127.0.0.1:8000/v1"}, "openai:llama3"))
    assert (
        local is not None and local.api_key == "not-needed" and local.base_url == "http://127.0.0.1:8000/v1"
    )
    assert resolve(model_settings(ANTHROPIC, "none")) is None  # --model none wins over the environment
    with pytest.raises(ConfigError, match="unknown model provider"):
        resolve(model_settings({}, "nonsense:thing"))


def test_the_app_refuses_a_hosted_model_without_a_key_at_start_up() -> None:
    # before: only an Anthropic model was checked; an OpenAI one ran every job with a dummy key
    for model, var in (
        ("anthropic:claude-sonnet-4-6", "ANTHROPIC_API_KEY"),
        ("openai:gpt-4.1", "OPENAI_API_KEY"),
    ):
        settings = Settings.from_env({P + "MODEL": model})
        with pytest.raises(MissingModelKey, match=var):
            _check_model(settings)
        with pytest.raises(MissingModelKey, match=var):
            provider_factory(settings)


def test_only_model_choice_builds_a_provider() -> None:
    callers = {
        str(p.relative_to(BOT))
        for p in BOT.rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Name | ast.Attribute)
        and (node.id if isinstance(node, ast.Name) else node.attr) in ("make_provider", "ModelSpec")
    }
    assert callers == {"model_choice.py", "agent/providers.py"}
