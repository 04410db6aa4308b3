"""diff → Changeset + prompt budget: time and peak memory (DESIGN targets: the 1 MB diff ≥5× faster
than PR-Agent's 590 ms, i.e. ≤ ~110 ms; a 500,000-line diff in ≤ 300 MB).

Two inputs, each measured in a fresh child process so one case's peak RSS cannot hide another's:

* ``synthetic``: 10,000 files × 50 changed lines = 500,000 lines, generated in-process (modified, added
  and deleted files; one to three hunks each; ~24 MB of diff text).
* ``real``: a real ~1 MB ``git diff --no-ext-diff --no-textconv -M`` between two releases of pip's
  ``pip/_internal`` tree, both installed here without network: Debian's pip in
  ``/usr/lib/python3/dist-packages/pip`` committed as the base, the venv's pip as the head. Where only
  one pip exists, the head is the venv's tree with every 7th line of every module rewritten.

Figures: first (cold) run and best of 5 for parse and for budget; peak RSS (``ru_maxrss``) with the input
already in memory, and the peak of Python allocations during parse + budget (``tracemalloc``, separate
run because tracing slows it). ``unidiff``'s parse time on the same text is shown for the design choice.
Prints figures only; asserts nothing.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import pip  # the venv's own pip: always installed, one side of the real diff
import unidiff

from bot.diff import budget_prompt, parse_diff

SYSTEM_PIP = Path("/usr/lib/python3/dist-packages/pip")
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_TERMINAL_PROMPT": "0",
}


def synthetic_diff(n_files: int = 10_000, lines_per_file: int = 50) -> str:
    """A git-shaped diff of ``n_files`` files with exactly ``lines_per_file`` +/- lines each."""
    out: list[str] = []
    for k in range(n_files):
        path = f"pkg{k % 97}/module_{k}.py"
        kind = k % 10  # 0: added, 1: deleted, else modified
        out.append(f"diff --git a/{path} b/{path}\n")
        if kind == 0:
            out.append(f"new file mode 100644\nindex 0000000..1111111\n--- /dev/null\n+++ b/{path}\n")
            out.append(f"@@ -0,0 +1,{lines_per_file} @@\n")
            out.extend(f"+def f{k}_{j}(x): return x * {j}  # added\n" for j in range(lines_per_file))
            continue
        if kind == 1:
            out.append(f"deleted file mode 100644\nindex 1111111..0000000\n--- a/{path}\n+++ /dev/null\n")
            out.append(f"@@ -1,{lines_per_file} +0,0 @@\n")
            out.extend(f"-def f{k}_{j}(x): return x * {j}  # removed\n" for j in range(lines_per_file))
            continue
        out.append(f"index 1111111..2222222 100644\n--- a/{path}\n+++ b/{path}\n")
        hunks = 1 + k % 3
        per = lines_per_file // hunks
        sizes = [per] * (hunks - 1) + [lines_per_file - per * (hunks - 1)]
        start = 10
        for size in sizes:
            adds, dels = size - size // 2, size // 2
            out.append(f"@@ -{start},{dels + 6} +{start},{adds + 6} @@ def handler_{k}():\n")
            out.extend(f"     ctx = {j}\n" for j in range(3))
            out.extend(f"-    old_value_{j} = compute({j})\n" for j in range(dels))
            out.extend(f"+    new_value_{j} = compute({j}, strict=True)\n" for j in range(adds))
            out.extend(f"     tail = {j}\n" for j in range(3))
            start += dels + 6 + 40
    return "".join(out)


def _git(repo: Path, *args: str) -> bytes:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True).stdout


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def real_diff(workdir: Path) -> tuple[str, str]:
    """(diff text, how it was made)."""
    repo = workdir / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    venv_pip = Path(pip.__file__).parent
    target = repo / "pip" / "_internal"
    if (SYSTEM_PIP / "_internal").is_dir():
        base_version = (SYSTEM_PIP / "__init__.py").read_text().split('__version__ = "')[1].split('"')[0]
        _copy_tree(SYSTEM_PIP / "_internal", target)
        how = f"pip/_internal: Debian pip {base_version} ({SYSTEM_PIP}) -> venv pip {pip.__version__}"
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "base")
        shutil.rmtree(target)
        _copy_tree(venv_pip / "_internal", target)
    else:
        _copy_tree(venv_pip / "_internal", target)
        how = f"pip/_internal of venv pip {pip.__version__}, every 7th line of each module rewritten"
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "base")
        for py in sorted(target.rglob("*.py")):
            lines = py.read_text().splitlines(keepends=True)
            py.write_text("".join(f"# edited: {ln}" if i % 7 == 3 else ln for i, ln in enumerate(lines)))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "head")
    text = _git(repo, "diff", "--no-ext-diff", "--no-textconv", "-M", "HEAD~1", "HEAD").decode(
        "utf-8", "replace"
    )
    return text, how


def measure(text: str) -> dict[str, float]:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    parse_runs: list[float] = []
    budget_runs: list[float] = []
    for _ in range(5):
        t0 = time.perf_counter()
        cs = parse_diff(text)
        t1 = time.perf_counter()
        prompt = budget_prompt(cs)
        t2 = time.perf_counter()
        parse_runs.append(t1 - t0)
        budget_runs.append(t2 - t1)
        del cs, prompt
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    cs = parse_diff(text)
    prompt = budget_prompt(cs)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t0 = time.perf_counter()
    unidiff.PatchSet(text)
    unidiff_s = time.perf_counter() - t0
    return {
        "bytes": len(text.encode()),
        "lines": text.count("\n"),
        "files": len(cs.files),
        "changed_lines": sum(f.additions + f.deletions for f in cs.files),
        "prompt_included": len(prompt.included),
        "prompt_clipped": len(prompt.clipped),
        "prompt_omitted": len(prompt.omitted),
        "prompt_tokens": prompt.estimated_tokens,
        "parse_first_ms": parse_runs[0] * 1000,
        "parse_best_ms": min(parse_runs) * 1000,
        "budget_first_ms": budget_runs[0] * 1000,
        "budget_best_ms": min(budget_runs) * 1000,
        "total_first_ms": (parse_runs[0] + budget_runs[0]) * 1000,
        "total_best_ms": min(p + b for p, b in zip(parse_runs, budget_runs, strict=True)) * 1000,
        "rss_input_mb": rss_before / 1024,
        "rss_peak_mb": rss_after / 1024,
        "traced_peak_mb": traced_peak / 2**20,
        "unidiff_parse_ms": unidiff_s * 1000,
    }


def _child(case: str) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-diff-") as tmp:
        if case == "synthetic":
            text, how = synthetic_diff(), "generated in-process: 10,000 files x 50 changed lines"
        else:
            text, how = real_diff(Path(tmp))
        result = measure(text)
    print(json.dumps({"how": how, **result}))


def main() -> None:
    for case in ("real", "synthetic"):
        out = subprocess.run(
            [sys.executable, "-m", "bench.bench_diff", "--child", case],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"[{case}] {r['how']}")
        print(
            f"  input: {r['bytes'] / 1e6:.2f} MB, {r['lines']:,} diff lines, {r['files']:,} files, "
            f"{r['changed_lines']:,} changed lines"
        )
        print(
            f"  parse_diff: first {r['parse_first_ms']:.0f} ms, best {r['parse_best_ms']:.0f} ms; "
            f"budget_prompt: first {r['budget_first_ms']:.0f} ms, best {r['budget_best_ms']:.0f} ms; "
            f"parse+budget: first {r['total_first_ms']:.0f} ms, best {r['total_best_ms']:.0f} ms "
            f"(target <= 110 ms for ~1 MB; PR-Agent 590 ms)"
        )
        print(
            f"  memory: peak RSS {r['rss_peak_mb']:.0f} MB (input alone {r['rss_input_mb']:.0f} MB; "
            f"target <= 300 MB for 500k lines), traced Python peak {r['traced_peak_mb']:.0f} MB"
        )
        print(
            f"  prompt (24k tokens): {r['prompt_included']} included, {r['prompt_clipped']} clipped, "
            f"{r['prompt_omitted']} omitted, ~{r['prompt_tokens']:,} tokens; "
            f"unidiff.PatchSet alone: {r['unidiff_parse_ms']:.0f} ms"
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(sys.argv[2])
    else:
        main()
