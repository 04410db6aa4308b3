"""Print the exact pins of backend-review's runtime dependency closure, as installed (no dev extras).

Usage: .venv/bin/python requirements/freeze_action.py > requirements/action.txt
"""

from __future__ import annotations

import importlib.metadata as md

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HEADER = """\
# Runtime dependencies of backend-review, pinned exactly (no dev tools): the action installs these,
# then the package itself with --no-deps. Regenerate from a tested .venv with: make action-requirements"""


def closure(root: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        key = (str(canonicalize_name(name)), extras)
        if key in done:
            continue
        done.add(key)
        dist = md.distribution(name)
        pins[key[0]] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            envs = [{**default_environment(), "extra": e} for e in (sorted(extras) or [""])]
            if req.marker is None or any(req.marker.evaluate(e) for e in envs):
                todo.append((req.name, frozenset(req.extras)))
    pins.pop(str(canonicalize_name(root)))
    return pins


if __name__ == "__main__":
    print(HEADER)
    for name, version in sorted(closure("backend-review").items()):
        print(f"{name}=={version}")
