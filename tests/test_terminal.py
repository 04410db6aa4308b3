"""The terminal report (issue 12): snapshots with and without colour, code frames, wrapping, and no
escape codes where no terminal is. ``UPDATE_SNAPSHOTS=1 pytest tests/test_terminal.py`` rewrites the
snapshots after a deliberate change; review the diff before committing it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.diff import parse_diff
from bot.local import resolve_color, resolve_format
from bot.models import Category, Changeset, Finding, ReviewDraft, Severity
from bot.review import ReviewContext, build_review
from bot.terminal import ReportFooter, render_report
from tests.support.gitrepo import GitRepo, init_repo

HEAD_SHA = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"

SNAPSHOTS = Path(__file__).parent / "snapshots"
FOOTER = ReportFooter(seconds=1.25, reviewer="offline checks only (no model)")
SGR = re.compile(r"\x1b\[[0-9;]*m")


USERS_BASE = [
    "import hashlib",
    "",
    "",
    "def find(db, request):",
    "    name = request.args['name']",
    "    return None",
    "",
    "",
    "def digest(password):",
    "    return password",
]
USERS_HEAD = [
    "import hashlib",
    "",
    "",
    "def find(db, request):",
    "    name = request.args['name']",
    "    return db.execute(f\"SELECT * FROM users WHERE name = '{name}'\").fetchone()",
    "",
    "",
    "def digest(password):",
    "    return hashlib.md5(password.encode()).hexdigest()",
]
NOTIFY_HEAD = ["import requests", "", "", "def notify(url):", "    requests.post(url, json={})"]
HEADS = {"app/users.py": USERS_HEAD, "app/notify.py": NOTIFY_HEAD}


def _diff() -> str:
    users = "".join(
        f"{'-' if a != b else ' '}{a}\n" + (f"+{b}\n" if a != b else "")
        for a, b in zip(USERS_BASE, USERS_HEAD, strict=True)
    )
    notify = "".join(f"+{line}\n" for line in NOTIFY_HEAD)
    return (
        "diff --git a/app/users.py b/app/users.py\n--- a/app/users.py\n+++ b/app/users.py\n"
        f"@@ -1,10 +1,10 @@\n{users}"
        "diff --git a/app/notify.py b/app/notify.py\nnew file mode 100644\n--- /dev/null\n"
        f"+++ b/app/notify.py\n@@ -0,0 +1,5 @@\n{notify}"
        "diff --git a/poetry.lock b/poetry.lock\n--- a/poetry.lock\n+++ b/poetry.lock\n"
        "@@ -1 +1 @@\n-a\n+b\n"
    )


def changeset() -> Changeset:
    return parse_diff(_diff(), base_sha="0" * 40, head_sha=HEAD_SHA)


@pytest.fixture(scope="module")
def draft() -> ReviewDraft:
    findings = [
        Finding(
            "app/users.py",
            6,
            Severity.CRITICAL,
            Category.DATABASE,
            "SQL built from request input",
            "`name` is interpolated into the query text, so `' OR '1'='1` returns every row. Pass it as a "
            "query parameter instead; the driver quotes it.",
            "db.execute(f\"SELECT * FROM users WHERE name = '{name}'\")",
            "py-sql-format",
            0.9,
            suggestion='    return db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()',
        ),
        Finding(
            "app/users.py",
            10,
            Severity.HIGH,
            Category.AUTH,
            "Password hashed with MD5",
            "MD5 is fast: a leaked table is cracked at billions of guesses per second. Use argon2 or bcrypt.",
            "hashlib.md5(password.encode())",
            "weak-password-hash",
            0.85,
        ),
        Finding(
            "app/notify.py",
            5,
            Severity.MEDIUM,
            Category.PERFORMANCE,
            "Outbound call without a timeout",
            "requests waits forever by default; a slow peer ties up this worker. Pass timeout=.",
            "requests.post(url, json={})",
            "py-http-no-timeout",
            0.8,
        ),
    ]
    return build_review(findings, changeset(), HEADS.get, ReviewContext(repo="o/r", head_sha=HEAD_SHA))


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text)
    assert path.exists(), f"no snapshot {name}: run with UPDATE_SNAPSHOTS=1"
    assert text == path.read_text()


@pytest.mark.parametrize("color", [False, True], ids=["plain", "colour"])
def test_report_snapshot(draft: ReviewDraft, color: bool) -> None:
    text = render_report(draft, changeset(), color=color, width=88, footer=FOOTER)
    check_snapshot(f"terminal-{'colour' if color else 'plain'}.txt", text)


def test_colour_changes_nothing_but_escape_codes(draft: ReviewDraft) -> None:
    plain = render_report(draft, changeset(), color=False, width=88, footer=FOOTER)
    coloured = render_report(draft, changeset(), color=True, width=88, footer=FOOTER)
    assert coloured != plain
    assert SGR.sub("", coloured) == plain


def test_code_frame_marks_the_flagged_lines_and_shows_the_suggestion(draft: ReviewDraft) -> None:
    text = render_report(draft, changeset(), color=False, width=88, footer=FOOTER)
    block = text.split("\n\n")[0].splitlines()
    assert block[0] == "CRITICAL SQL built from request input"
    assert block[1].strip().startswith("--> app/users.py:6")
    flagged = [ln for ln in block if re.match(r"\s*6 \|>", ln)]
    assert len(flagged) == 1 and "db.execute(f" in flagged[0]
    assert any(re.match(r"\s*4 \| ", ln) for ln in block), "context above the flagged line"
    assert any("suggestion:" in ln for ln in block)
    assert any(ln.strip().startswith("+ ") and "?" in ln for ln in block)


@pytest.mark.parametrize("width", [40, 60, 120])
def test_wrapped_to_the_width(draft: ReviewDraft, width: int) -> None:
    text = render_report(draft, changeset(), color=False, width=width, footer=FOOTER)
    assert max(len(line) for line in text.splitlines()) <= width


def test_summary_counts_files_time_and_reviewer(draft: ReviewDraft) -> None:
    text = render_report(draft, changeset(), color=False, width=100, footer=FOOTER)
    lines = text.splitlines()
    last = lines[next(i for i, ln in enumerate(lines) if ln.startswith("backend-review:")) :]
    assert last[0].startswith("backend-review: ") and "critical" in last[0]
    assert "reviewed" in last[1] and "1.2 s" in last[1] and "offline" in last[1]
    assert "poetry.lock (lock file)" in text


@pytest.mark.parametrize(
    ("choice", "env", "tty", "expected"),
    [
        ("auto", {}, True, True),
        ("auto", {}, False, False),
        ("auto", {"NO_COLOR": "1"}, True, False),
        ("auto", {"FORCE_COLOR": "1"}, False, True),
        ("auto", {"FORCE_COLOR": "0"}, False, False),
        ("always", {"NO_COLOR": "1"}, False, True),
        ("never", {"FORCE_COLOR": "1"}, True, False),
    ],
)
def test_colour_choice(choice: str, env: dict[str, str], tty: bool, expected: bool) -> None:
    class Stream:
        def isatty(self) -> bool:
            return tty

    assert resolve_color(choice, Stream(), env) is expected  # type: ignore[arg-type]


def test_default_format_is_text_on_a_terminal_and_markdown_elsewhere() -> None:
    assert resolve_format(None, to_terminal=True, environ={}) == "text"
    assert resolve_format(None, to_terminal=False, environ={}) == "markdown"
    assert resolve_format(None, to_terminal=True, environ={"CI": "true"}) == "markdown"
    assert resolve_format("json", to_terminal=True, environ={}) == "json"


LEAKY = (
    "import requests\n\n\ndef notify(url):\n    try:\n"
    "        requests.post(url, json={}, timeout=5)\n    except Exception:\n        pass\n"
)


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    r = init_repo(tmp_path / "repo")
    r.commit("base", {"app/__init__.py": "", "README.md": "# svc\n"})
    r.branch("feature")
    r.commit("notify", {"app/notify.py": LEAKY})
    return r


def _cli() -> str:
    return str(Path(sys.executable).with_name("backend-review"))


def test_piped_output_has_no_escape_codes(repo: GitRepo) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "CI")}
    for args in ([], ["--format", "text"]):
        done = subprocess.run(
            [_cli(), "review", "--base", "main", *args],
            cwd=repo.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "\x1b" not in done.stdout and "\x1b" not in done.stderr
        assert "Exception swallowed" in done.stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_in_a_real_terminal(repo: GitRepo, tmp_path: Path) -> None:
    """As a person sees it: tmux runs the command on a 90-column terminal; the captured screen has the
    colour codes, the code frame and the summary, and nothing wider than the window."""
    session = f"br-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "CI", "TMUX")}
    env["TERM"] = "xterm-256color"
    tmux = ["tmux", "-L", session]
    command = f"{_cli()} review --base main; echo EXIT=$?; sleep 30"
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", session, "-x", "90", "-y", "40", "-c", str(repo.path), command],
        env=env,
        check=True,
        timeout=10,
    )
    try:
        screen = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            screen = subprocess.run(
                [*tmux, "capture-pane", "-e", "-p", "-t", session], capture_output=True, text=True, timeout=10
            ).stdout
            if "EXIT=" in screen:
                break
            time.sleep(0.2)
        assert "EXIT=0" in screen, screen
        assert "\x1b[" in screen  # coloured, because this is a terminal
        plain = SGR.sub("", screen)
        assert "MEDIUM" in plain and "--> app/notify.py:7" in plain
        assert re.search(r"7 \|> +except Exception:", plain)
        assert "1 finding in" in plain and "offline checks only" in plain
        assert max(len(line) for line in plain.splitlines()) <= 90
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=10)


def test_progress_shows_nothing_for_a_quick_review_and_the_step_after_a_second() -> None:
    import io

    from bot.local import _Progress

    quick = io.StringIO()
    p = _Progress(True, quick)
    p("diffing")
    p.close()
    assert quick.getvalue() == ""

    class Fast(_Progress):
        DELAY = 0.05

    slow = io.StringIO()
    p = Fast(True, slow)
    p("model turn 1")
    time.sleep(0.3)
    p("model turn 2")
    p.close()
    out = slow.getvalue()
    assert "model turn 1" in out and "model turn 2" in out
    assert out.endswith("\r\x1b[2K")  # the line is cleared before the report prints

    silent = io.StringIO()
    p = Fast(False, silent)
    p("diffing")
    time.sleep(0.1)
    p.close()
    assert silent.getvalue() == ""
