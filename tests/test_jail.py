"""bot/jail.py: the one reader of head files, with the same rules for the pipeline as for the agent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.jail import MAX_HEAD_FILE_BYTES, head_file_size, read_head_file
from bot.pipeline import head_prefix_reader, head_reader


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "outside.py").write_text("SECRET_OUTSIDE = 1\n")
    root = tmp_path / "checkout"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("a = 1\nb = 2\n")
    return root


def test_the_pipeline_reads_a_plain_head_file(root: Path) -> None:
    assert head_reader(root)("src/app.py") == ["a = 1", "b = 2"]
    assert head_prefix_reader(root, 3)("src/app.py") == ["a ="]


def test_the_pipeline_refuses_a_hard_linked_head_file(root: Path, tmp_path: Path) -> None:
    os.link(tmp_path / "outside.py", root / "src" / "alias.py")
    assert head_reader(root)("src/alias.py") is None
    assert head_prefix_reader(root)("src/alias.py") is None
    assert read_head_file(root, "src/alias.py") is None
    assert head_file_size(root, "src/alias.py") is None


@pytest.mark.parametrize("link", ["escape.py", "src/dir/up.py"])
def test_the_pipeline_refuses_a_symlink_escaping_the_checkout(root: Path, tmp_path: Path, link: str) -> None:
    (root / "src" / "dir").mkdir()
    os.symlink(tmp_path / "outside.py", root / link)
    os.symlink(tmp_path, root / "src" / "out")
    for path in (link, "src/out/outside.py"):
        assert head_reader(root)(path) is None
        assert read_head_file(root, path, 100) is None


@pytest.mark.parametrize(
    "path", ["", "/etc/passwd", "../outside.py", "src/../src/app.py", ".git/config", ".GIT/x"]
)
def test_paths_that_are_not_plain_repository_paths_are_refused(root: Path, path: str) -> None:
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("token=GITSECRET\n")
    assert read_head_file(root, path) is None


def test_a_file_over_the_cap_is_read_only_as_a_prefix(root: Path) -> None:
    (root / "big.txt").write_bytes(b"x" * (MAX_HEAD_FILE_BYTES + 1))
    assert read_head_file(root, "big.txt") is None
    assert read_head_file(root, "big.txt", 4) == b"xxxx"
    assert head_file_size(root, "big.txt") == MAX_HEAD_FILE_BYTES + 1


def test_fifos_are_refused_without_hanging(root: Path) -> None:
    os.mkfifo(root / "src" / "pipe")
    assert read_head_file(root, "src/pipe") is None
