"""The review step after the fetch: time and peak memory of ``review_workspace`` with no model.

Issue 7's speed targets (stay within 2× of the figures measured before the structural layer):

* 1, 100 and 1,000 changed files: 0.01 s / 0.05 s / 0.11 s → ≤ 0.02 s / 0.10 s / 0.22 s. Two shapes:
  ``files-N`` are 60-line service modules with a quarter of their lines rewritten (queries, logging),
  ``tiny-N`` ten-line modules with one line changed each; compare a branch with main on the same
  machine (figures move with load by far more than 2×);
* one 20 MB file that is a single line (a minified bundle; also as ``.py`` and ``.sql``): ≤ 2 s
  (was 20.7 s and 283 MB peak);
* the 500,000-line diff (10,000 files × 50 changed lines) through the whole review step: ≤ 300 MB peak.

Each case is a real git repository (base commit + one PR commit) built in a temp dir; a child process
opens the workspace (clone + checkout: the "fetch", not timed), then times ``review_workspace`` — diff,
changeset, offline rules, prompt budget, review assembly — best and median of several runs, and
reports its peak RSS (``ru_maxrss``) next to its RSS before the first review, so one case's peak never
hides another's. Prints figures only; asserts nothing.

Run: ``.venv/bin/python -m bench review_step`` (``--case NAME`` to run one, ``--profile`` to print a
cProfile of one review of that case).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.support import git

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {
    f"{kind}-{n}": limit for kind in ("files", "tiny") for n, limit in ((1, 0.02), (100, 0.10), (1000, 0.22))
}
ONE_LINE_MB = 20


def _module(k: int, variant: int) -> str:
    """A plausible backend module; ``variant`` 1 rewrites about a quarter of its lines."""
    lines = [
        "import logging",
        "",
        "from app.db import session_scope",
        "from app.models import Order",
        "",
        "log = logging.getLogger(__name__)",
        "",
    ]
    for j in range(6):
        changed = variant and j % 2 == 0
        limit = 50 + j + (10 if changed else 0)
        lines += [
            "",
            f"def handler_{k}_{j}(customer_id: int, status: str = 'open') -> list[dict]:",
            f'    """Orders of one customer ({j})."""',
            "    with session_scope() as s:",
            "        rows = (",
            "            s.query(Order)",
            "            .filter(Order.customer_id == customer_id, Order.status == status)",
            f"            .limit({limit})",
            "            .all()",
            "        )",
            f"    log.info('handler_{k}_{j} returned %d rows', len(rows))"
            if changed
            else "    return [r.to_dict() for r in rows]",
        ]
        if changed:
            lines.append("    return [r.to_dict() for r in rows if r.visible]")
    return "\n".join(lines) + "\n"


def build_files(repo: Path, n: int) -> None:
    for k in range(n):
        path = repo / f"app/svc{k % 20}/handlers_{k}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_module(k, 0))
    _commit(repo, "base")
    git(repo, "checkout", "-q", "-b", "pr")
    for k in range(n):
        (repo / f"app/svc{k % 20}/handlers_{k}.py").write_text(_module(k, 1))
    _commit(repo, "pr")


def build_tiny(repo: Path, n: int) -> None:
    """``n`` ten-line modules, one line changed in each (the smallest PR touching ``n`` files)."""
    for k in range(n):
        path = repo / f"app/m{k % 20}/mod_{k}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"VALUE_{j} = {j}\n" for j in range(10)))
    _commit(repo, "base")
    git(repo, "checkout", "-q", "-b", "pr")
    for k in range(n):
        path = repo / f"app/m{k % 20}/mod_{k}.py"
        path.write_text("".join(f"VALUE_{j} = {j + (j == 5)}\n" for j in range(10)))
    _commit(repo, "pr")


def build_one_line(repo: Path, name: str) -> None:
    (repo / "README.md").write_text("service\n")
    _commit(repo, "base")
    git(repo, "checkout", "-q", "-b", "pr")
    size = ONE_LINE_MB * 1_000_000
    if name.endswith(".js"):
        unit = (
            'function a(b){return fetch("/api/"+b).then(function(c){return c.json()})};var t=Math.random();'
        )
    elif name.endswith(".py"):
        unit = "x = compute(1, 'secret', password=None); "
    else:
        unit = "INSERT INTO t (a, b) VALUES (1, 'x'); "
    text = (unit * (size // len(unit) + 1))[:size]  # one line, no trailing newline
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    _commit(repo, "pr")


def build_big_diff(repo: Path, n_files: int = 10_000, lines_per_file: int = 50) -> None:
    """10,000 files × 50 changed lines = 500,000 diff lines (+25 context each)."""
    for k in range(n_files):
        path = repo / f"pkg{k % 97}/module_{k}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = [f"ctx_{k}_{j} = {j}\n" for j in range(25)]
        body += [f"old_value_{j} = compute({j})\n" for j in range(lines_per_file // 2)]
        path.write_text("".join(body))
    _commit(repo, "base")
    git(repo, "checkout", "-q", "-b", "pr")
    for k in range(n_files):
        path = repo / f"pkg{k % 97}/module_{k}.py"
        body = [f"ctx_{k}_{j} = {j}\n" for j in range(25)]
        body += [f"new_value_{j} = compute({j}, strict=True)\n" for j in range(lines_per_file // 2)]
        path.write_text("".join(body))
    _commit(repo, "pr")


def _commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


CASES: dict[str, tuple[Callable[[Path], None], int]] = {
    # name: (builder, timed runs)
    "files-1": (lambda r: build_files(r, 1), 9),
    "files-100": (lambda r: build_files(r, 100), 7),
    "files-1000": (lambda r: build_files(r, 1000), 5),
    "tiny-1": (lambda r: build_tiny(r, 1), 9),
    "tiny-100": (lambda r: build_tiny(r, 100), 7),
    "tiny-1000": (lambda r: build_tiny(r, 1000), 5),
    "one-line-20mb.js": (lambda r: build_one_line(r, "static/app.min.js"), 3),
    "one-line-20mb.py": (lambda r: build_one_line(r, "app/generated_table.py"), 3),
    "one-line-20mb.sql": (lambda r: build_one_line(r, "db/seed.sql"), 3),
    "diff-500k-lines": (build_big_diff, 1),
}


# ----------------------------------------------------------------------------------- child side


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _measure(repo: Path, runs: int, profile: bool) -> dict[str, object]:
    import logging

    from bot.checkout import GitSource, workspace
    from bot.pipeline import ReviewInputs, review_workspace

    logging.getLogger("bot").setLevel(logging.WARNING)
    head = git(repo, "rev-parse", "pr")
    base = git(repo, "rev-parse", "main")
    times: list[float] = []
    async with workspace(GitSource.local(repo), head, base) as ws:
        rss_before = _rss_mib()
        outcome = None
        for _ in range(runs):
            started = time.perf_counter()
            outcome = await review_workspace(ws, ReviewInputs())
            times.append(time.perf_counter() - started)
        if profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            await review_workspace(ws, ReviewInputs())
            prof.disable()
            pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    assert outcome is not None
    return {
        "best": min(times),
        "median": sorted(times)[len(times) // 2],
        "rss_before_mib": rss_before,
        "peak_rss_mib": _rss_mib(),
        "files": len(outcome.changeset.files),
        "findings": len(outcome.draft.findings),
    }


def child(name: str, profile: bool) -> None:
    builder, runs = CASES[name]
    with tempfile.TemporaryDirectory(prefix="bench-review-step-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        builder(repo)
        if profile:
            runs = 1
        print(json.dumps(asyncio.run(_measure(repo, runs, profile))), flush=True)


# ----------------------------------------------------------------------------------- parent side


def run_case(name: str, profile: bool = False) -> dict[str, object]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bench_review_step",
            "--child",
            name,
            *(["--profile"] if profile else []),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if profile:
        sys.stderr.write(out.stderr)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench review_step")
    parser.add_argument("--case", action="append", choices=sorted(CASES), default=[])
    parser.add_argument("--profile", action="store_true", help="cProfile one review (with --case)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.profile)
        return
    names = args.case or list(CASES)
    results = {name: run_case(name, args.profile) for name in names}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'case':<20} {'files':>6} {'best':>9} {'median':>9} {'rss before':>11} {'peak rss':>9}  target")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<20} ERROR {r['error']}")
            continue
        target = (
            f"≤ {TARGETS[name]:.2f} s"
            if name in TARGETS
            else "≤ 2 s"
            if name.startswith("one-line")
            else "≤ 300 MB peak"
        )
        print(
            f"{name:<20} {r['files']:>6} {r['best']:>8.3f}s {r['median']:>8.3f}s"
            f" {r['rss_before_mib']:>8.0f} MB {r['peak_rss_mib']:>6.0f} MB  {target}"
        )


if __name__ == "__main__":
    main()
