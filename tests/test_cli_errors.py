"""What a new user meets when something is off: one-line errors with the right exit code, help that
answers questions, and no log noise in interactive commands (issue 12, items 3 and 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import build_parser, main
from tests.support.gitrepo import GitRepo, init_repo

LEAKY = (
    "import requests\n\n\ndef notify(url):\n    try:\n"
    "        requests.post(url, json={}, timeout=5)\n    except Exception:\n        pass\n"
)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "BACKEND_REVIEW_MODEL",
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "BACKEND_REVIEW_MODEL_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    r = init_repo(tmp_path / "repo")
    r.commit("base", {"app/__init__.py": "", "README.md": "# svc\n"})
    r.branch("feature")
    r.commit("notify", {"app/notify.py": LEAKY})
    return r


@pytest.mark.parametrize("target", ["missing/dir/report.sarif", "."])
def test_an_unwritable_output_is_a_one_line_usage_error(
    repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    output = tmp_path / target
    code = main(["review", str(repo.path), "--base", "main", "--format", "sarif", "-o", str(output)])
    out, err = capsys.readouterr()
    assert code == 2  # not 1, which means "a finding at or above --fail-on"
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("backend-review: --output ")
    assert "Traceback" not in err


def test_an_empty_diff_says_there_was_nothing_to_review(
    repo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["review", str(repo.path), "--base", "HEAD", "--format", "text"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "nothing to review" in out and "no issues" not in out


def test_a_diff_of_skipped_files_only_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = init_repo(tmp_path / "repo")
    r.commit("base", {"README.md": "# svc\n"})
    r.branch("feature")
    r.commit("lock", {"poetry.lock": "[[package]]\nname = 'x'\n"})
    code = main(["review", str(r.path), "--base", "main", "--format", "text"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "nothing to review" in out and "skipped" in out


def test_a_file_over_the_size_cap_is_skipped_with_its_reason_not_reviewed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = init_repo(tmp_path / "repo")
    r.commit("base", {"README.md": "# svc\n"})
    r.branch("feature")
    padding = "".join(f"VALUE_{i} = {i}\n" for i in range(220_000))  # > 2 MB
    r.commit("big", {"app/big.py": LEAKY + padding, "app/small.py": LEAKY})
    code = main(["review", str(r.path), "--base", "main", "--format", "json"])
    out, _ = capsys.readouterr()
    assert code == 0
    data = json.loads(out)
    skipped = {s["path"]: s["reason"] for s in data["files"]["skipped"]}
    assert "size cap" in skipped.get("app/big.py", "")
    assert "app/big.py" not in data["files"]["reviewed"]
    assert {f["path"] for f in data["findings"]} == {"app/small.py"}


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("backend-review")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKEND_REVIEW_")}
    return subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_review_prints_no_json_log_lines_unless_asked(repo: GitRepo) -> None:
    quiet = _run_cli("review", "--base", "main", "--format", "text", cwd=repo.path)
    assert quiet.returncode == 0, quiet.stderr
    assert '{"ts"' not in quiet.stderr
    verbose = _run_cli("review", "--base", "main", "--format", "text", "--verbose", cwd=repo.path)
    assert verbose.returncode == 0, verbose.stderr
    assert '"event": "review assembled"' in verbose.stderr


def test_worker_without_settings_prints_only_the_missing_setting(tmp_path: Path) -> None:
    done = _run_cli("worker", cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr  # no JSON "git version" warning before the error
    assert "BACKEND_REVIEW_APP_ID" in lines[0] and "setup --code" in lines[0]


def test_serve_without_a_webhook_secret_names_it_and_where_to_set_it(tmp_path: Path) -> None:
    done = _run_cli("serve", cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "BACKEND_REVIEW_WEBHOOK_SECRET" in done.stderr and "environment" in done.stderr


@pytest.mark.parametrize("command", ["review", "demo", "serve", "worker", "ci", "setup"])
def test_every_subcommand_help_has_a_description_requirements_and_an_example(command: str) -> None:
    sub = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    text = sub.format_help()
    assert sub.description and len(sub.description.split()) >= 20, "a one-paragraph description"
    assert "example" in text
    if command != "demo":
        assert "requires:" in text
