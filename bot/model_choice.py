"""Which model a review uses, with which key and endpoint: the one resolution, from :class:`Settings`.

The App's workers build their Settings from the environment (``Settings.from_env``); ``review``,
``demo`` and ``ci`` build only the model part (``settings.model_settings``, ``--model`` first). Both
come here, so a key is found, required or skipped by the same rules everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.agent.providers import ModelSpec, Provider, make_provider
from bot.errors import ConfigError
from bot.redact import SECRETS
from bot.settings import MODEL_KEY_VARS, PREFIX, Settings, model_settings

# Local OpenAI-compatible servers (Ollama, vLLM, llama.cpp) accept any key; the SDK insists on one.
_LOCAL_SERVER_KEY = "not-needed"


class MissingModelKey(ConfigError):
    """A model is configured but its key is not (e.g. a fork pull request, which gets no secrets)."""


@dataclass(frozen=True, slots=True)
class ModelChoice:
    spec: ModelSpec
    api_key: str  # "" for scripted turns
    base_url: str | None  # the operator's setting over the spec's ``@URL``

    def provider(self) -> Provider:
        """A fresh provider (its HTTP client is closed by whoever ran the review)."""
        return make_provider(self.spec, api_key=self.api_key, base_url=self.base_url)


def resolve(settings: Settings) -> ModelChoice | None:
    """The model of ``settings``, or None for the offline checks only. Opens no client.

    Raises :class:`ConfigError` for a malformed model and :class:`MissingModelKey` when it needs a key
    that is not set: a hosted model always does, an OpenAI-compatible server at a base URL does not.
    """
    if not settings.model:
        return None
    spec = ModelSpec.parse(settings.model)
    base_url = settings.model_base_url or spec.base_url
    if spec.provider == "scripted":
        return ModelChoice(spec, "", base_url)
    key = settings.model_api_key.get() if settings.model_api_key else ""
    if key:
        SECRETS.add(key)
        return ModelChoice(spec, key, base_url)
    if spec.provider == "openai" and base_url:
        return ModelChoice(spec, _LOCAL_SERVER_KEY, base_url)
    var = MODEL_KEY_VARS[spec.provider]
    raise MissingModelKey(f"model {spec} needs an API key: set {var} (or {PREFIX}MODEL_API_KEY)")


def provider_from_env(arg: str | None, environ: Mapping[str, str]) -> Provider | None:
    """The provider for ``--model`` (or ``$BACKEND_REVIEW_MODEL``), or None for offline checks only."""
    choice = resolve(model_settings(environ, arg))
    return choice.provider() if choice else None
