from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.agent.definitions import AGENTS_DIR, load_definition, load_definition_file, parse_definition
from bot.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
SEED = Path("/work/shared/seeds/backend-engineer.md")


def test_packaged_definition_is_identical_to_agents_dir() -> None:
    packaged = AGENTS_DIR / "backend-engineer.md"
    assert not packaged.is_symlink()
    assert packaged.read_bytes() == (REPO / "agents" / "backend-engineer.md").read_bytes()


def test_t01_backend_engineer_grants_only_grep_and_view(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot"):
        d = load_definition()
    assert d.name == "backend-engineer"
    assert d.tools == ("grep", "view", "edit", "bash", "webfetch")
    assert d.granted == {"grep", "view"}
    assert d.refused == {"edit", "bash", "webfetch"}
    assert d.description.startswith("Backend engineering specialist for API design")
    record = next(r for r in caplog.records if r.getMessage() == "agent tools refused")
    assert record.fields["refused"] == ["bash", "edit", "webfetch"]  # type: ignore[attr-defined]
    assert "submit_review" in d.prompt and "untrusted" in d.prompt.lower()


@pytest.mark.skipif(not SEED.exists(), reason="shared seed not present")
def test_t01_seed_definition_loads_with_the_same_header() -> None:
    seed, ours = load_definition_file(SEED), load_definition()
    assert (seed.name, seed.description, seed.tools) == (ours.name, ours.description, ours.tools)
    assert seed.granted == {"grep", "view"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no front matter", "must start with YAML front matter"),
        ("---\nname: [x\n---\nbody", "not valid YAML"),
        ("---\n- a\n---\nbody", "must be a mapping"),
        (
            "---\nname: a\ndescription: d\ntools: []\nmodel: x\n---\nbody",
            "unknown front-matter keys ['model']",
        ),
        ("---\nname: a\ndescription: d\n---\nbody", "missing front-matter keys ['tools']"),
        ("---\nname: A B\ndescription: d\ntools: []\n---\nbody", "name must be"),
        ("---\nname: a\ndescription: ''\ntools: []\n---\nbody", "description must be"),
        ("---\nname: a\ndescription: d\ntools: grep\n---\nbody", "tools must be a list"),
        ("---\nname: a\ndescription: d\ntools: [grep, grep]\n---\nbody", "twice"),
        ("---\nname: a\ndescription: d\ntools: [grep]\n---\n  \n", "no prompt body"),
        (
            "---\nname: !!python/object/apply:os.system [id]\ndescription: d\ntools: []\n---\nb",
            "not valid YAML",
        ),
    ],
)
def test_invalid_definitions_raise_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        parse_definition(text, "x.md")
    assert message in str(info.value) and str(info.value).startswith("x.md: ")


def test_load_definition_checks_the_name(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("---\nname: b\ndescription: d\ntools: [view]\n---\nbody\n")
    with pytest.raises(ConfigError, match="declares name 'b'"):
        load_definition("a", tmp_path)
    with pytest.raises(ConfigError, match="invalid agent name"):
        load_definition("../etc/passwd", tmp_path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_definition("missing", tmp_path)
