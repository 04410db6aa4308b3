"""Which model a review uses: from ``--model``, or the environment, or none (offline checks only)."""

from __future__ import annotations

from collections.abc import Mapping

from bot.agent.providers import ModelSpec, Provider, make_provider
from bot.errors import ConfigError
from bot.log import SECRETS

OFF = frozenset({"", "none", "off", "offline"})
_KEY_VARS = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
# Local OpenAI-compatible servers (Ollama, vLLM, llama.cpp) accept any key; the SDK insists on one.
_LOCAL_SERVER_KEY = "not-needed"


def model_spec(arg: str | None, environ: Mapping[str, str]) -> ModelSpec | None:
    text = (arg if arg is not None else environ.get("BACKEND_REVIEW_MODEL", "")).strip()
    return None if text.lower() in OFF else ModelSpec.parse(text)


def api_key_for(spec: ModelSpec, environ: Mapping[str, str], base_url: str | None) -> str:
    if spec.provider == "scripted":
        return ""
    var = _KEY_VARS[spec.provider]
    key = environ.get("BACKEND_REVIEW_MODEL_API_KEY") or environ.get(var) or ""
    if key:
        SECRETS.add(key)
        return key
    if spec.provider == "openai" and base_url:
        return _LOCAL_SERVER_KEY
    raise ConfigError(f"model {spec} needs an API key: set {var} (or BACKEND_REVIEW_MODEL_API_KEY)")


def provider_from_env(arg: str | None, environ: Mapping[str, str]) -> Provider | None:
    """The provider for ``--model`` (or ``$BACKEND_REVIEW_MODEL``), or None for offline checks only."""
    spec = model_spec(arg, environ)
    if spec is None:
        return None
    base_url = environ.get("BACKEND_REVIEW_MODEL_BASE_URL") or spec.base_url
    return make_provider(spec, api_key=api_key_for(spec, environ, base_url), base_url=base_url)
