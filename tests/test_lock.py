"""requirements/lock.txt covers pyproject.toml's runtime dependencies (else: `make lock`), with hashes.

The image (deploy/Dockerfile), the Action (action.yml) and .venv install from the lock with
`--no-deps --require-hashes`, so a dependency added to pyproject.toml without re-locking would be
missing at run time: this test is the reminder.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"


def _pins() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) from the lock's `name==version ; marker \\` blocks."""
    pins: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^([A-Za-z0-9._-]+)==(\S+)", line):
            name = str(canonicalize_name(m.group(1)))
            pins[name] = (m.group(2), [])
        elif m := re.match(r"^\s+--hash=sha256:([0-9a-f]{64})", line):
            pins[name][1].append(m.group(1))
    return pins


def test_every_runtime_dependency_is_locked_at_an_allowed_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = _pins()
    env = default_environment()
    for text in project["dependencies"]:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = str(canonicalize_name(req.name))
        assert name in pins, f"{req.name} is not in requirements/lock.txt: run `make lock`"
        assert req.specifier.contains(pins[name][0], prereleases=True), (
            f"{req.name}=={pins[name][0]} in the lock violates {req.specifier}: run `make lock`"
        )


def test_every_pin_has_hashes_and_no_dev_tool_ships() -> None:
    pins = _pins()
    assert pins and all(hashes for _, hashes in pins.values())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dev_only = {str(canonicalize_name(Requirement(t).name)) for t in project["optional-dependencies"]["dev"]}
    runtime = {str(canonicalize_name(Requirement(t).name)) for t in project["dependencies"]}
    assert not (dev_only - runtime) & set(pins), "a dev tool is in the runtime lock"


def test_the_action_installs_the_lock_with_hashes() -> None:
    action = (ROOT / "action.yml").read_text(encoding="utf-8")
    assert '--no-deps --require-hashes -r "$ACTION_PATH/requirements/lock.txt"' in action
    assert not (ROOT / "requirements" / "action.txt").exists()  # one lock, not two stories
