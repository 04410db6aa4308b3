from __future__ import annotations

from pathlib import Path

import pytest

from bot.redact import SECRETS
from tests.support.gitrepo import GitRepo, init_repo

FIXTURES = Path(__file__).parent / "fixtures"
WEBHOOKS = FIXTURES / "webhooks"
SARIF_SCHEMA = FIXTURES / "sarif" / "sarif-schema-2.1.0.json"


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    """An empty real git repository on branch main."""
    return init_repo(tmp_path / "repo")


@pytest.fixture(autouse=True)
def _isolated_secrets() -> None:
    """Each test starts with an empty process secret set (production keeps one per process)."""
    SECRETS.clear()
