"""P-07: no shell anywhere, statically (an AST scan of the tree) and dynamically (hostile metadata)."""

from __future__ import annotations

import ast
import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.local import review_repository
from tests.support.audit import recording
from tests.support.gitrepo import init_repo

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("bot", "bench", "tests/support", "tests/security")

# Calls that start a process from their first argument; a str there means a command string.
_EXEC_CALLS = frozenset(
    {
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "subprocess.Popen",
        "asyncio.create_subprocess_exec",
        "os.execv",
        "os.execvp",
        "os.execve",
        "os.posix_spawn",
        "os.posix_spawnp",
        "os.spawnv",
        "os.spawnvp",
    }
)
# Anything that takes a shell command line, whatever its arguments.
_SHELL_CALLS = frozenset(
    {
        "os.system",
        "os.popen",
        "subprocess.getoutput",
        "subprocess.getstatusoutput",
        "asyncio.create_subprocess_shell",
        "pty.spawn",
        "commands.getoutput",
    }
)
_SHELL_NAMES = frozenset({"create_subprocess_shell", "subprocess_shell", "getoutput", "getstatusoutput"})


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else node.attr
    return ""


def _stringy(node: ast.expr) -> bool:
    """An expression that evaluates to a str: a literal, an f-string, concatenation, % or .format()."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (str, bytes))
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return _stringy(node.left) or _stringy(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in ("format", "join") and (
            node.func.attr == "format" or _stringy(node.func.value)
        )
    return False


class _Aliases(ast.NodeVisitor):
    """``from os import system as run_it`` → {"run_it": "os.system"}; ``import subprocess as sp`` too."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self.names[a.asname or a.name] = a.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for a in node.names:
            self.names[a.asname or a.name] = f"{node.module}.{a.name}"


def shell_violations(source: str, filename: str = "<src>") -> list[str]:
    """Every P-07 violation in ``source``: ``file:line: reason``."""
    tree = ast.parse(source, filename)
    aliases = _Aliases()
    aliases.visit(tree)
    out: list[str] = []

    def resolve(node: ast.expr) -> str:
        name = _dotted(node)
        head, _, rest = name.partition(".")
        full = aliases.names.get(head, head)
        return f"{full}.{rest}" if rest else full

    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and any(
            f"{node.module}.{a.name}" in _SHELL_CALLS or a.name in _SHELL_NAMES for a in node.names
        ):
            out.append(f"{where}: imports a shell helper")
        if isinstance(node, (ast.Attribute, ast.Name)):
            name = node.attr if isinstance(node, ast.Attribute) else node.id
            if name in _SHELL_NAMES or resolve(node) in _SHELL_CALLS:
                out.append(f"{where}: uses {resolve(node)}")
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg == "shell":
                out.append(f"{where}: shell= keyword")
        func = resolve(node.func)
        is_exec = func in _EXEC_CALLS or func.endswith((".subprocess_exec", ".create_subprocess_exec"))
        first = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "args"), None)
        if is_exec and first is not None and _stringy(first):
            out.append(f"{where}: {func} called with a command string")
    return out


def _python_files() -> Iterator[Path]:
    for top in SCANNED:
        yield from sorted((ROOT / top).rglob("*.py"))


BAD_SNIPPETS = [
    "import subprocess\nsubprocess.run('ls -l', check=True)\n",
    "import subprocess\nsubprocess.run(['ls'], shell=True)\n",
    "import subprocess\nsubprocess.Popen(f'git {ref}')\n",
    "import subprocess\nsubprocess.check_output('git ' + ref)\n",
    "import subprocess\nsubprocess.call('git %s' % ref)\n",
    "import subprocess as sp\nsp.run(args='git log')\n",
    "import subprocess\nsubprocess.run(' '.join(argv))\n",
    "import subprocess\nsubprocess.getoutput(cmd)\n",
    "import os\nos.system('id')\n",
    "import os\nos.popen(cmd).read()\n",
    "from os import system\nsystem(cmd)\n",
    "from os import popen as p\np(cmd)\n",
    "import asyncio\nasync def f():\n    await asyncio.create_subprocess_shell(cmd)\n",
    "async def f(loop):\n    await loop.subprocess_shell(proto, cmd)\n",
    "import asyncio\nasync def f():\n    await asyncio.create_subprocess_exec('git log')\n",
    "import asyncio\nasync def f():\n    await asyncio.create_subprocess_exec(*argv, shell=False)\n",
    "import pty\npty.spawn('sh')\n",
]

GOOD_SNIPPETS = [
    "import subprocess\nsubprocess.run(['git', '--version'], check=False)\n",
    "import asyncio\nasync def f(argv):\n    await asyncio.create_subprocess_exec(*argv, env={})\n",
    "import subprocess\nsubprocess.run([exe, '--help'], capture_output=True)\n",
]


@pytest.mark.parametrize("snippet", BAD_SNIPPETS)
def test_p07_checker_flags_every_shell_shape(snippet: str) -> None:
    assert shell_violations(snippet), snippet


@pytest.mark.parametrize("snippet", GOOD_SNIPPETS)
def test_p07_checker_accepts_argv_lists(snippet: str) -> None:
    assert shell_violations(snippet) == []


def test_p07_repository_has_no_shell_or_command_string() -> None:
    files = list(_python_files())
    assert len(files) > 20 and any(f.name == "checkout.py" for f in files)
    found = [v for f in files for v in shell_violations(f.read_text(), str(f.relative_to(ROOT)))]
    assert found == []


# -- dynamic: hostile branch name, title, file name and grep pattern through the local review --------


def test_p07_hostile_metadata_is_one_literal_argv_element(tmp_path: Path) -> None:
    marks = {
        k: Path(f"/tmp/pwned-{k}-{uuid.uuid4().hex}") for k in ("branch", "tick", "title", "file", "grep")
    }
    # git refuses spaces in ref names; ${IFS} is how an attacker spells one for the shell
    branch = f"x;$(touch${{IFS}}{marks['branch']})"
    tick_branch = f"y`touch${{IFS}}{marks['tick']}`"
    title = f"x;$(touch {marks['title']}) && touch {marks['title']}"
    hostile_file = f"src/;$(touch ${{IFS}}{marks['file'].name}).py"
    repo = init_repo(tmp_path / "repo")
    repo.commit("base", {"app.py": "def f():\n    return 1\n"})
    repo.branch(branch)
    repo.commit("feature", {"app.py": "def f():\n    return 2\n", hostile_file: "x = 1\n"})
    repo.git("branch", tick_branch)
    script = tmp_path / "model.json"
    script.write_text(
        json.dumps(
            [
                {"calls": [{"name": "grep", "arguments": {"pattern": f"$(touch {marks['grep']})"}}]},
                {"calls": [{"name": "view", "arguments": {"path": hostile_file}}]},
                {"calls": [{"name": "grep", "arguments": {"pattern": "x", "path": hostile_file}}]},
                {"calls": [{"name": "submit_review", "arguments": {"findings": []}}]},
            ]
        )
    )

    async def main() -> None:
        for head in (branch, tick_branch):
            await review_repository(
                repo.path,
                base="main",
                head=head,
                model=f"scripted:{script}",
                title=title,
                body=f"`$(touch {marks['title']})`",
                environ={},
            )

    with recording() as audit:
        asyncio.run(main())
    for mark in marks.values():
        assert not mark.exists(), mark
    audit.assert_only_git_and_rg()
    assert any(e.program == "rg" for e in audit.execs), "the hostile grep never reached rg"
    hostile = {branch, tick_branch, marks["grep"].as_posix(), marks["file"].name}
    seen = set()
    for e in audit.execs:
        for arg in e.argv:
            for text in hostile:
                if text in arg:
                    seen.add(text)
            # a marker never appears torn apart from its surrounding payload (no re-tokenising)
            for mark in marks.values():
                if mark.name in arg:
                    assert any(h in arg for h in hostile), (e.argv, arg)
    assert branch in seen and tick_branch in seen and marks["grep"].as_posix() in seen
