"""The `gitmodules-hostile` rule (S-02): entries git's gitmodules fsck checks refuse are reported; ordinary
submodule declarations, and the same text outside a .gitmodules file, are not."""

from __future__ import annotations

import pytest

from tests.rules.util import findings

RULE = "gitmodules-hostile"

# (path, .gitmodules text, 1-based line that must be flagged)
FLAG: list[tuple[str, str, str, int]] = [
    (RULE, ".gitmodules", '[submodule "a"]\n\tpath = a\n\turl = -oProxyCommand=true', 3),
    (RULE, ".gitmodules", '[submodule "a"]\n\tpath = a\n\turl = "-upload-pack=touch /tmp/x"', 3),
    (RULE, ".gitmodules", '[submodule "a"]\n\tpath = a\n\turl = ssh://-oProxyCommand=touch%20x/r', 3),
    (RULE, ".gitmodules", '[submodule "a"]\n\tpath = a\n\turl = ext::sh -c touch% /tmp/pwned', 3),
    (RULE, ".gitmodules", '[submodule "a"]\n\tpath = a\n\turl = fd::17', 3),
    (RULE, ".gitmodules", '[submodule "a"]\n\tpath = a\n\turl = file:///etc', 3),
    (RULE, ".gitmodules", '[submodule "a"]\n\tpath = a\n\turl = https://example.com%0a.evil/x', 3),
    (RULE, ".gitmodules", '[submodule "a"]\n\tpath = a\n\turl = ../../-oProxyCommand=x', 3),
    (RULE, ".gitmodules", '[submodule "a"]\n\tpath = a\n\turl = ./https:///x', 3),
    (RULE, ".gitmodules", '[submodule "a"]\n\tpath = ../elsewhere\n\turl = https://x.example/a.git', 2),
    (RULE, ".gitmodules", '[submodule "a"]\n\tpath = /etc/cron.d\n\turl = https://x.example/a.git', 2),
    (RULE, ".gitmodules", '[submodule "a"]\n\tpath = -x\n\turl = https://x.example/a.git', 2),
    (RULE, ".gitmodules", '[submodule "a"]\n\tpath = vendor/.git/hooks\n\turl = https://x.example/a', 2),
    (RULE, ".gitmodules", '[submodule "../../modules/x"]\n\tpath = a\n\turl = https://x.example/a.git', 1),
    (RULE, ".gitmodules", '[submodule "a"]\n\tpath = a\n\turl = https://x.example/a\n\tupdate = !sh x', 4),
    (RULE, ".gitmodules", '[submodule "a"]\n\tpath = a\n\turl = https://x.example/a\n\tbranch = -x', 4),
    (RULE, "vendor/.gitmodules", '[submodule "a"]\n\tpath = a\n\turl = -oProxyCommand=true', 3),
    (RULE, ".gitmodules", '[submodule "a"]\n\tpath = a\n\tURL = "-oProxyCommand=true"  ; quoted', 3),
]

CLEAN: list[tuple[str, str, str]] = [
    (RULE, ".gitmodules", '[submodule "lib"]\n\tpath = vendor/lib\n\turl = https://github.com/o/lib.git'),
    (RULE, ".gitmodules", '[submodule "lib"]\n\tpath = lib\n\turl = git@github.com:o/lib.git'),
    (RULE, ".gitmodules", '[submodule "lib"]\n\tpath = lib\n\turl = ../lib.git\n\tbranch = main'),
    (RULE, ".gitmodules", '[submodule "lib"]\n\tpath = lib\n\turl = ssh://git@host/lib  # -o is a comment'),
    (RULE, ".gitmodules", '[submodule "lib"]\n\tpath = lib\n\turl = https://h/l\n\tupdate = rebase'),
    (RULE, ".gitmodules", '[submodule "lib"]\n\tpath = lib\n\t# url = -oProxyCommand=true\n\t; path = ../x'),
    (RULE, "docs/submodules.md", "url = -oProxyCommand=true\npath = ../elsewhere"),
    (RULE, "app/config.py", 'URL = "-oProxyCommand=true"'),
]


@pytest.mark.parametrize("case", FLAG, ids=lambda c: c[2].splitlines()[-1].strip())
def test_gitmodules_rule_flags(case: tuple[str, str, str, int]) -> None:
    rule, path, text, line = case
    found = [f for f in findings(path, text) if f.source == rule]
    assert [f.line for f in found] == [line], [(f.line, f.evidence) for f in found]
    assert found[0].evidence == text.split("\n")[line - 1]
    assert found[0].severity.value == "high" and found[0].category.value == "security"


@pytest.mark.parametrize("case", CLEAN, ids=lambda c: c[2].splitlines()[-1].strip())
def test_gitmodules_rule_leaves_ordinary_entries_alone(case: tuple[str, str, str]) -> None:
    rule, path, text = case
    assert [f for f in findings(path, text) if f.source == rule] == []
