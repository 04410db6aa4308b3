"""`backend-review review` and `demo` end to end: a real git repository, the real pipeline, every format.

The review runs in-process through :func:`bot.cli.main` (the same code path as the console script);
one real subprocess run checks the installed entry point itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from bot.cli import main
from tests.conftest import SARIF_SCHEMA
from tests.support.gitrepo import GitRepo, init_repo

MODEL_ENV = (
    "BACKEND_REVIEW_MODEL",
    "BACKEND_REVIEW_MODEL_API_KEY",
    "BACKEND_REVIEW_MODEL_BASE_URL",
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
)

BASE_USERS = """import hashlib


def get_user(db, user_id):
    return db.execute("SELECT id, name FROM users WHERE id = %s", (user_id,))
"""

# The feature branch adds one high finding (a dropped column) and one medium (a swallowed exception).
FEATURE_USERS = """import hashlib

import requests


def get_user(db, user_id):
    return db.execute("SELECT id, name FROM users WHERE id = %s", (user_id,))


def notify(url):
    try:
        requests.post(url, json={}, timeout=5)
    except Exception:
        pass
"""
MIGRATION = "ALTER TABLE users DROP COLUMN legacy_id;\n"
LATE_ON_MAIN = "import requests\n\n\ndef ping(url):\n    requests.get(url)\n"
CONFIG = ".github/backend-review.yml"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No model configured, whatever the developer's shell holds."""
    for name in MODEL_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    """main ← fork point → feature (defects); main then moves on with a defect of its own."""
    r = init_repo(tmp_path / "repo")
    r.commit("base", {"app/__init__.py": "", "app/users.py": BASE_USERS, "README.md": "# svc\n"})
    r.git("tag", "fork-point")
    r.branch("feature")
    r.commit("add notify and a migration", {"app/users.py": FEATURE_USERS, "migrations/002.sql": MIGRATION})
    r.checkout("main")
    r.commit("later work on main", {"app/late.py": LATE_ON_MAIN})
    r.checkout("feature")
    return r


def review(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["review", *args])
    out, err = capsys.readouterr()
    return code, out, err


def review_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    code, out, err = review(capsys, *args, "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def paths_of(data: dict[str, object]) -> set[str]:
    findings = data["findings"]
    assert isinstance(findings, list)
    return {f["path"] for f in findings}


def test_json_fields(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    data = review_json(capsys, str(repo.path), "--base", "main")
    assert data["head_sha"] == repo.git("rev-parse", "feature")
    findings = data["findings"]
    assert isinstance(findings, list)
    by_path = {f["path"]: f for f in findings}
    assert set(by_path) == {"migrations/002.sql", "app/users.py"}
    drop, http = by_path["migrations/002.sql"], by_path["app/users.py"]
    assert (drop["line"], drop["severity"], drop["category"]) == (1, "high", "migration")
    assert (http["line"], http["severity"], http["category"]) == (13, "medium", "errors")
    for f in findings:
        assert f["title"] and isinstance(f["title"], str)
        assert f["source"] and isinstance(f["source"], str)
        assert f["placement"] == "inline"
    assert data["summary"] == {
        "total": 2,
        "by_severity": {"critical": 0, "high": 1, "medium": 1, "low": 0, "nit": 0},
        "inline": 2,
        "file": 0,
        "dropped": 0,
    }


def test_sarif_validates_against_the_2_1_0_schema(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = review(capsys, str(repo.path), "--format", "sarif")
    assert code == 0, err
    log = json.loads(out)
    schema = json.loads(SARIF_SCHEMA.read_text())
    # the schema declares draft-07 and has only local "#/definitions/…" refs: no network
    assert schema["$schema"].startswith("http://json-schema.org/draft-07/")
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    results = log["runs"][0]["results"]
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results} == {
        "migrations/002.sql",
        "app/users.py",
    }
    assert {r["level"] for r in results} == {"error", "warning"}  # high → error, medium → warning


def test_text_markdown_and_codeclimate(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = review(capsys, str(repo.path), "--format", "text")
    assert code == 0
    assert "migrations/002.sql:1" in text and "app/users.py:13" in text
    assert "2 findings in" in text
    assert "\x1b" not in text  # not a terminal: no colour codes

    code, md, _ = review(capsys, str(repo.path), "--format", "markdown")
    assert code == 0
    assert "#### `migrations/002.sql:1`" in md and "#### `app/users.py:13`" in md
    assert "**backend-review** found 2 issues" in md
    assert "Offline checks only (no model configured)" in md

    code, cc, _ = review(capsys, str(repo.path), "--format", "codeclimate")
    assert code == 0
    issues = json.loads(cc)
    assert {(i["location"]["path"], i["location"]["lines"]["begin"], i["severity"]) for i in issues} == {
        ("migrations/002.sql", 1, "critical"),  # Code Climate's "critical" is our high
        ("app/users.py", 13, "major"),
    }
    assert all(i["type"] == "issue" and i["fingerprint"] for i in issues)


def test_output_file(repo: GitRepo, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "report.sarif"
    code, out, _ = review(capsys, str(repo.path), "--format", "sarif", "--output", str(target))
    assert code == 0
    assert out == ""
    assert json.loads(target.read_text())["version"] == "2.1.0"


def test_fail_on_threshold(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert review(capsys, str(repo.path), "--fail-on", "high")[0] == 1
    assert review(capsys, str(repo.path), "--fail-on", "medium")[0] == 1
    assert review(capsys, str(repo.path), "--fail-on", "critical")[0] == 0
    assert review(capsys, str(repo.path))[0] == 0  # no gate: findings alone never fail


def test_default_base_is_the_merge_base_with_main(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    implicit = review_json(capsys, str(repo.path))
    assert implicit["base_sha"] == repo.git("rev-parse", "fork-point")
    # main's later commit is not part of the feature branch's change
    assert paths_of(implicit) == {"migrations/002.sql", "app/users.py"}
    explicit = review_json(capsys, str(repo.path), "--base", "main", "--head", "feature")
    assert explicit["findings"] == implicit["findings"]


def test_include_and_exclude(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert paths_of(review_json(capsys, str(repo.path), "--include", "app/**")) == {"app/users.py"}
    excluded = review_json(capsys, str(repo.path), "--exclude", "migrations/**")
    assert paths_of(excluded) == {"app/users.py"}
    files = excluded["files"]
    assert isinstance(files, dict)
    assert [s["path"] for s in files["skipped"]] == ["migrations/002.sql"]


def test_p04_config_is_read_from_the_base_commit(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    """A head-only config that excludes everything must not silence the review of that very change."""
    repo.commit("silence the reviewer", {CONFIG: 'paths:\n  exclude: ["**"]\nmax_inline_comments: 1\n'})
    data = review_json(capsys, str(repo.path), "--base", "main")
    assert paths_of(data) == {"migrations/002.sql", "app/users.py"}
    summary = data["summary"]
    assert isinstance(summary, dict)
    assert summary["inline"] == 2  # the head's max_inline_comments: 1 was not applied either


def test_p04_base_config_applies(repo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    """Control for the test above: the same settings on the base branch do take effect."""
    repo.checkout("main")
    repo.commit("configure", {CONFIG: 'paths:\n  exclude: ["migrations/**"]\nfail_on: medium\n'})
    repo.checkout("feature")
    code, out, err = review(capsys, str(repo.path), "--base", "main", "--format", "json")
    assert paths_of(json.loads(out)) == {"app/users.py"}
    assert code == 0  # fail_on from config gates the check conclusion, not the CLI exit code
    assert err == ""


def test_invalid_base_config_is_reported_and_defaults_used(
    repo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.checkout("main")
    repo.commit("bad config", {CONFIG: "llm_base_url: http://127.0.0.1:9/\npaths: ['~/.ssh']\n"})
    repo.checkout("feature")
    code, out, err = review(capsys, str(repo.path), "--base", "main", "--format", "json")
    assert code == 0
    assert paths_of(json.loads(out)) == {"migrations/002.sql", "app/users.py"}
    assert "the defaults apply" in err


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["{tmp}/not-a-repo"], "not a git repository"),
        (["{repo}", "--base", "no-such-branch"], "no-such-branch"),
        (["{repo}", "--model", "gpt4"], "model must look like"),
        (["{repo}", "--model", "nonsense:thing"], "unknown model provider"),
        (["{repo}", "--model", "anthropic:claude-sonnet-4-6"], "ANTHROPIC_API_KEY"),
        (["{repo}", "--model", "openai:gpt-4.1"], "OPENAI_API_KEY"),
        (["{repo}", "--max-comments", "0"], "--max-comments"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], reason: str
) -> None:
    (tmp_path / "not-a-repo").mkdir()
    argv = [a.format(tmp=tmp_path, repo=repo.path) for a in args]
    code, out, err = review(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("backend-review: ") and reason in lines[0]
    assert "Traceback" not in err


def test_demo_runs_offline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Pull request: ")
    assert "#### `app/users.py:" in out  # inline findings, under their location
    assert "SQL built with string formatting" in out
    assert "Offline checks only (no model configured)" in out


@pytest.mark.parametrize(
    ("argv", "code", "expect"),
    [(["--help"], 0, "review"), (["review", "--format", "yaml"], 2, "invalid choice")],
)
def test_console_script(argv: list[str], code: int, expect: str) -> None:
    exe = Path(sys.executable).parent / "backend-review"
    done = subprocess.run([str(exe), *argv], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == code
    assert expect in (done.stdout if code == 0 else done.stderr)
