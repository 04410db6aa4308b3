"""bot.outdated: which of this App's earlier threads a new review has made outdated (pure)."""

from __future__ import annotations

import dataclasses

import pytest

from bot.models import Changeset, FileDiff, FileStatus
from bot.outdated import PostedThread, ReviewScope, threads_to_resolve

FP, OTHER = "a" * 16, "b" * 16


def _file(path: str, status: FileStatus = FileStatus.MODIFIED, **kw: object) -> FileDiff:
    return FileDiff(path, kw.pop("old_path", None), status, False, (), 1, 1, **kw)  # type: ignore[arg-type]


def _thread(path: str = "app/a.py", **kw: object) -> PostedThread:
    values: dict[str, object] = {
        "thread_id": "PRRT_1",
        "comment_node_id": "PRRC_1",
        "comment_id": 1,
        "path": path,
        "fingerprints": frozenset({FP}),
        "outdated": True,
        "resolved": False,
        "minimized": False,
    }
    values.update(kw)
    return PostedThread(**values)  # type: ignore[arg-type]


def _scope(
    *files: FileDiff, full: bool = False, standing: frozenset[str] = frozenset(), **kw: bool
) -> ReviewScope:
    return ReviewScope(standing, Changeset("b" * 40, "h" * 40, files), full, **kw)


def test_a_changed_line_whose_finding_is_gone_is_resolved() -> None:
    t = _thread()
    assert threads_to_resolve([t], _scope(_file("app/a.py"))) == [t]


@pytest.mark.parametrize(
    ("thread", "scope"),
    [
        # the finding still stands (also when it was not reposted)
        (_thread(), _scope(_file("app/a.py"), standing=frozenset({FP}))),
        (
            _thread(fingerprints=frozenset({FP, OTHER})),
            _scope(_file("app/a.py"), standing=frozenset({OTHER})),
        ),
        # the commented line is unchanged: an incremental review did not look at it again
        (_thread(outdated=False), _scope(_file("app/a.py"))),
        (_thread(outdated=False), _scope(_file("app/a.py"), full=True)),
        # the file was not part of this (incremental) review, or was skipped
        (_thread(), _scope(_file("app/b.py"))),
        (_thread(), _scope(_file("app/a.py", skip_reason="generated"))),
        (_thread(), _scope(_file("app/a.py", skip_reason="excluded"), full=True)),
        # already done, or nothing of ours to judge
        (_thread(resolved=True), _scope(_file("app/a.py"))),
        (_thread(minimized=True), _scope(_file("app/a.py"))),
        (_thread(fingerprints=frozenset()), _scope(_file("app/a.py"))),
        # a partial review cannot tell that a finding went away
        (_thread(), _scope(_file("app/a.py"), whole=False)),
        # a file-level thread on an incremental review of a file that still exists
        (_thread(file_level=True), _scope(_file("app/a.py"))),
        # a copy's source still exists; only the copy is new
        (_thread(), _scope(_file("app/c.py", FileStatus.ADDED, old_path="app/a.py"))),
    ],
)
def test_kept(thread: PostedThread, scope: ReviewScope) -> None:
    assert threads_to_resolve([thread], scope) == []


@pytest.mark.parametrize(
    ("thread", "scope"),
    [
        (_thread(), _scope(_file("app/a.py", FileStatus.DELETED))),
        (_thread(file_level=True), _scope(_file("app/a.py", FileStatus.DELETED))),
        (_thread(), _scope(_file("app/z.py", FileStatus.RENAMED, old_path="app/a.py"))),
        # a full review of a PR that no longer changes the file: nothing it added is left
        (_thread(), _scope(_file("app/b.py"), full=True)),
        (_thread(file_level=True, outdated=False), _scope(_file("app/a.py"), full=True)),
    ],
)
def test_resolved(thread: PostedThread, scope: ReviewScope) -> None:
    assert threads_to_resolve([thread], scope) == [thread]


def test_only_the_outdated_ones_of_many() -> None:
    keep = _thread(thread_id="PRRT_2", fingerprints=frozenset({OTHER}))
    gone = _thread()
    elsewhere = dataclasses.replace(gone, thread_id="PRRT_3", path="app/b.py")
    scope = _scope(_file("app/a.py"), standing=frozenset({OTHER}))
    assert threads_to_resolve([keep, gone, elsewhere], scope) == [gone]
