"""Per-repository configuration: ``.github/backend-review.yml`` from the PR's BASE branch (pure; P-04, P-05).

The attacker may own this file (P-05: they install the app on their own repository), so it is plain
data under a strict schema: no templates, includes, URLs, host paths, model endpoints, budgets or tool
toggles exist in it at all, unknown keys are rejected, and YAML anchors/aliases and custom tags are
refused. A file that fails in any way yields the defaults plus a list of human-readable problems —
parsing never raises, so a broken file can never stop or widen a review.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator

from bot.models import Category, Severity

CONFIG_PATH = ".github/backend-review.yml"
MAX_CONFIG_BYTES = 64 * 1024
MAX_PATTERNS = 100
MAX_PATTERN_CHARS = 256
MAX_LIST_ITEMS = 100
DEFAULT_TITLE_KEYWORDS: tuple[str, ...] = ("WIP", "[WIP]", "[skip review]", "[no review]")

ForkPolicy = Literal["maintainer_command", "auto"]

_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class RepoConfig:
    """The effective, validated repository configuration."""

    enabled: bool = True
    review_on_push: bool = True  # incremental reviews on `synchronize`
    review_drafts: bool = False
    fail_on: Severity | None = None  # None: the check conclusion stays neutral
    max_inline_comments: int = 10
    include: tuple[str, ...] = ()  # globs; empty means every path
    exclude: tuple[str, ...] = ()
    ignore_authors: tuple[str, ...] = ()
    ignore_labels: tuple[str, ...] = ()
    ignore_title_keywords: tuple[str, ...] = DEFAULT_TITLE_KEYWORDS
    forks: ForkPolicy = "maintainer_command"  # C-06
    focus: tuple[Category, ...] = ()


def _check_pattern(pattern: str) -> str:
    if not pattern or len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"a path pattern must be 1..{MAX_PATTERN_CHARS} characters")
    if _CONTROL.search(pattern) or "\\" in pattern:
        raise ValueError("a path pattern may not contain control characters or backslashes")
    if pattern.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", pattern):
        raise ValueError("a path pattern must be relative to the repository root")
    if ".." in pattern.split("/"):
        raise ValueError("a path pattern may not contain '..'")
    return pattern


def _check_text(value: str) -> str:
    if not value or len(value) > 100 or _CONTROL.search(value):
        raise ValueError("entries must be 1..100 printable characters")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Paths(_Strict):
    include: list[str] = Field(default_factory=list, max_length=MAX_PATTERNS)
    exclude: list[str] = Field(default_factory=list, max_length=MAX_PATTERNS)

    @field_validator("include", "exclude")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return [_check_pattern(p) for p in value]


class _Ignore(_Strict):
    authors: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    labels: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    title_keywords: list[str] = Field(default_factory=lambda: list(DEFAULT_TITLE_KEYWORDS), max_length=50)

    @field_validator("authors")
    @classmethod
    def _logins(cls, value: list[str]) -> list[str]:
        for login in value:
            if not _LOGIN.match(login):
                raise ValueError("authors must be GitHub logins")
        return value

    @field_validator("labels", "title_keywords")
    @classmethod
    def _texts(cls, value: list[str]) -> list[str]:
        return [_check_text(v) for v in value]


class _Schema(_Strict):
    enabled: bool = True
    review_on_push: bool = True
    review_drafts: bool = False
    # enums arrive from YAML as plain strings; strict mode would otherwise demand enum instances
    fail_on: Annotated[Severity, Strict(False)] | None = None
    max_inline_comments: int = Field(default=10, ge=1, le=50)
    paths: _Paths = Field(default_factory=_Paths)
    ignore: _Ignore = Field(default_factory=_Ignore)
    forks: ForkPolicy = "maintainer_command"
    focus: list[Annotated[Category, Strict(False)]] = Field(default_factory=list, max_length=len(Category))


class NoAliasLoader(yaml.SafeLoader):
    """``yaml.safe_load`` semantics, plus: anchors and aliases are refused (no billion-laughs, no merges)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.YAMLError("YAML anchors and aliases are not allowed")
        return super().compose_node(parent, index)


def _loc(loc: tuple[int | str, ...]) -> str:
    # keys may be attacker-chosen: keep them short and printable
    text = ".".join(str(p) for p in loc) or "(top level)"
    text = _CONTROL.sub("?", text)
    return text if len(text) <= 80 else text[:77] + "..."


def _message(msg: str) -> str:
    # pydantic prefixes the text of a ValueError raised in a validator; the reader needs only the text
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def parse_repo_config(text: str | None) -> tuple[RepoConfig, list[str]]:
    """Parse the base-branch config file. Never raises: any problem yields the defaults plus problems."""
    if text is None:
        return RepoConfig(), []
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        return RepoConfig(), [f"larger than {MAX_CONFIG_BYTES // 1024} KB; the defaults apply"]
    try:
        data = yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return RepoConfig(), [f"not valid YAML ({_CONTROL.sub('?', first)[:120]}); the defaults apply"]
    if data is None:
        return RepoConfig(), []
    if not isinstance(data, dict):
        return RepoConfig(), ["must be a mapping of keys to values; the defaults apply"]
    try:
        schema = _Schema.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{_loc(e['loc'])}: {_message(e['msg'])}"
            for e in exc.errors(include_url=False, include_input=False)
        ]
        return RepoConfig(), [*problems, "the file was rejected; the defaults apply"]
    return (
        RepoConfig(
            enabled=schema.enabled,
            review_on_push=schema.review_on_push,
            review_drafts=schema.review_drafts,
            fail_on=schema.fail_on,
            max_inline_comments=schema.max_inline_comments,
            include=tuple(schema.paths.include),
            exclude=tuple(schema.paths.exclude),
            ignore_authors=tuple(schema.ignore.authors),
            ignore_labels=tuple(schema.ignore.labels),
            ignore_title_keywords=tuple(schema.ignore.title_keywords),
            forks=schema.forks,
            focus=tuple(dict.fromkeys(schema.focus)),
        ),
        [],
    )


__all__ = [
    "CONFIG_PATH",
    "DEFAULT_TITLE_KEYWORDS",
    "MAX_CONFIG_BYTES",
    "ForkPolicy",
    "NoAliasLoader",
    "RepoConfig",
    "parse_repo_config",
]
