from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DEFAULT_TITLE_KEYWORDS, MAX_CONFIG_BYTES, RepoConfig, parse_repo_config
from bot.models import Category, Severity

DEFAULTS = RepoConfig()


def test_missing_or_empty_file_gives_defaults_quietly() -> None:
    assert parse_repo_config(None) == (DEFAULTS, [])
    assert parse_repo_config("") == (DEFAULTS, [])
    assert parse_repo_config("# only a comment\n") == (DEFAULTS, [])
    assert DEFAULTS.ignore_title_keywords == DEFAULT_TITLE_KEYWORDS and DEFAULTS.forks == "maintainer_command"


def test_full_valid_config() -> None:
    text = """
enabled: true
review_on_push: false
review_drafts: true
fail_on: high
max_inline_comments: 25
paths:
  include: ["src/**", "app/*.py"]
  exclude: ["**/migrations/**"]
ignore:
  authors: ["dependabot[bot]", alice]
  labels: [no-review]
  title_keywords: ["[skip]"]
forks: auto
focus: [security, database, security]
"""
    config, problems = parse_repo_config(text)
    assert problems == []
    assert config == RepoConfig(
        enabled=True,
        review_on_push=False,
        review_drafts=True,
        fail_on=Severity.HIGH,
        max_inline_comments=25,
        include=("src/**", "app/*.py"),
        exclude=("**/migrations/**",),
        ignore_authors=("dependabot[bot]", "alice"),
        ignore_labels=("no-review",),
        ignore_title_keywords=("[skip]",),
        forks="auto",
        focus=(Category.SECURITY, Category.DATABASE),
    )


@pytest.mark.parametrize(
    "text",
    [
        "enabled: [unclosed",
        "\t- bad: indentation\n  x",
        "- a list\n- at the top",
        "just a string",
        "enabled: 'true'",
        "enabled: 1",
        "max_inline_comments: 0",
        "max_inline_comments: 51",
        "max_inline_comments: '10'",
        "fail_on: catastrophic",
        "forks: always",
        "focus: [everything]",
        "paths: {include: ['/etc/passwd']}",
        "paths: {include: ['../outside/**']}",
        "paths: {exclude: ['src/../../x']}",
        "paths: {include: ['~/.ssh']}",
        "paths: {include: ['C:/Windows']}",
        "paths: {include: ['a\\\\b']}",
        "paths: ['~/.ssh']",
        "ignore: {authors: ['not a login!']}",
        "ignore: {labels: ['']}",
        "language: fr",
    ],
)
def test_bad_values_give_defaults_and_problems(text: str) -> None:
    config, problems = parse_repo_config(text)
    assert config == DEFAULTS
    assert problems and all(isinstance(p, str) and p for p in problems)


def test_p05_hostile_tenant_keys_rejected_once_with_defaults() -> None:
    text = (
        "llm_base_url: http://127.0.0.1:9/\n"
        "paths: ['~/.ssh']\n"
        "budget: 1e9\n"
        "max_tokens: 10000000\n"
        'extra_instructions: "@format {env}"\n'
        "include: ['/etc/passwd']\n"
    )
    config, problems = parse_repo_config(text)
    assert config == DEFAULTS
    assert sum("rejected" in p for p in problems) == 1
    joined = "\n".join(problems)
    for key in ("llm_base_url", "budget", "max_tokens", "extra_instructions", "include"):
        assert key in joined


def test_p04_python_tags_never_construct(tmp_path: Path) -> None:
    marker = tmp_path / "p"
    text = f'enabled: !!python/object/apply:os.system ["touch {marker}"]\n'
    config, problems = parse_repo_config(text)
    assert config == DEFAULTS and problems
    assert not marker.exists()
    assert parse_repo_config("enabled: !include other.yml")[0] == DEFAULTS


def test_alias_bomb_refused() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(ord("b"), ord("j")):
        prev = chr(i - 1)
        lines.append(
            f"{chr(i)}: &{chr(i)} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]"
        )
    config, problems = parse_repo_config("\n".join(lines))
    assert config == DEFAULTS
    assert any("aliases" in p for p in problems)


def test_merge_keys_and_single_anchor_refused() -> None:
    assert parse_repo_config("base: &b {enabled: false}\n<<: *b\n")[1]
    assert parse_repo_config("enabled: &x false\n")[1]


def test_size_cap() -> None:
    text = "# " + "x" * MAX_CONFIG_BYTES + "\nenabled: false\n"
    config, problems = parse_repo_config(text)
    assert config == DEFAULTS and "larger" in problems[0]


def test_problem_text_is_bounded_for_hostile_keys() -> None:
    key = "k" * 500 + "\x1b[31m"
    _, problems = parse_repo_config(f'"{key}": 1\n')
    assert all(len(p) < 200 and "\x1b" not in p for p in problems)


def test_deep_nesting_does_not_raise() -> None:
    config, problems = parse_repo_config("a: " + "[" * 1500 + "]" * 1500)
    assert config == DEFAULTS and problems
