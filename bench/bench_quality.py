"""Quality of the offline reviewer on real code: recall, precision and comments on clean changes.

``python -m bench quality [--case NAME ...] [--json] [--offline-only] [--show-false]``

Each case of ``bench/quality_cases.toml`` becomes a two-commit git repository in a temp dir (base
release → head release, restricted to the case's paths) and is reviewed by the same core as
``backend-review review`` with no model (:func:`bot.local.review_repository`). What counts is what the
review would post: the draft's inline and file-level comments, after evidence checks, dedupe, caps
and any confidence threshold. Downloads are cached in ``$XDG_CACHE_HOME/backend-review/bench-quality``
(default ``~/.cache/…``) and verified by sha256; ``--offline-only`` never touches the network.

Issue 7's targets: recall ≥ 50 %, precision ≥ 85 %, ≤ 2 comments across all clean changes. Prints
figures only; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.quality import (
    CASES_FILE,
    Case,
    CaseScore,
    Posted,
    cache_dir,
    load_cases,
    score_case,
    side_files,
    totals,
)
from bench.support import git


def materialise(case: Case, root: Path, *, offline: bool) -> Path:
    """A repository whose ``main`` is the case's base and ``pr`` its head."""
    base = side_files(case, case.base, offline=offline)
    head = side_files(case, case.head, offline=offline)
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    _write(repo, base)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", f"{case.package} {_version(case, 'base')}")
    git(repo, "checkout", "-q", "-b", "pr")
    for rel in base:
        if rel not in head:
            (repo / rel).unlink()
    _write(repo, head)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", case.title or f"{case.package} {_version(case, 'head')}")
    return repo


def _version(case: Case, side: str) -> str:
    art = (case.base if side == "base" else case.head).artifact
    return art.version if art else side


def _write(repo: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        dest = repo / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)


async def _review(repo: Path, case: Case) -> tuple[list[Posted], int, int]:
    from bot.local import review_repository

    outcome = await review_repository(repo, base="main", head="pr", model=None, title=case.title, environ={})
    posted = [
        Posted(
            path=r.finding.path,
            line=r.finding.line,
            end_line=r.finding.end_line,
            source=r.finding.source,
            category=r.finding.category.value,
            placement=r.placement,
            title=r.finding.title,
        )
        for r in outcome.draft.findings
        if r.placement in ("inline", "file")  # posted as review comments; "summary" rows are not
    ]
    return posted, len(outcome.changeset.files), len(outcome.rule_findings)


def run_case(case: Case, *, offline: bool) -> CaseScore:
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        try:
            repo = materialise(case, Path(tmp), offline=offline)
        except Exception as exc:  # a download or a malformed archive fails this case, not the bench
            return score_case(case, [], error=f"{type(exc).__name__}: {exc}")
        posted, changed, raw = asyncio.run(_review(repo, case))
        return score_case(case, posted, changed_files=changed, raw_hits=raw)


def show_expected(case: Case, *, offline: bool) -> None:
    """For checking the case list by eye: the head lines every expected range points at."""
    head = side_files(case, case.head, offline=offline)
    for e in case.expected:
        print(f"== {case.name}: {e.file} {e.start}-{e.end} ({e.category})")
        lines = head.get(e.file, b"").decode("utf-8", "replace").splitlines()
        if not lines:
            print("   !! file not in the head")
        for n in range(e.start, min(e.end, len(lines)) + 1):
            print(f"   {n:5d} {lines[n - 1][:150]}")


def _pct(x: float) -> str:
    return f"{100 * x:5.1f} %"


def table(scores: Sequence[CaseScore], *, show_false: bool) -> str:
    lines = [f"{'case':<44} {'kind':<7} {'files':>5} {'hits':>4} {'posted':>6} {'true':>4}  result"]
    for s in scores:
        c = s.case
        if s.error:
            result = f"ERROR {s.error[:100]}"
        elif c.kind == "defect":
            result = "found" if s.found else "missed"
        else:
            result = "quiet" if not s.posted else "NOISY"
        name = c.name + (" *" if c.synthetic else "")
        counts = f"{s.changed_files:>5} {s.raw_hits:>4} {len(s.posted):>6} {len(s.true):>4}"
        lines.append(f"{name:<44} {c.kind:<7} {counts}  {result}")
        if show_false:
            for p in s.false:
                lines.append(f"    false: {p.path}:{p.line} [{p.source}] {p.title}")
    t = totals(scores)
    lines += [
        "",
        "(* synthetic case, written by us; files: changed files in the PR; hits: rule findings before review",
        " assembly; posted: inline + file-level comments; true: posted on an expected location)",
        f"recall                  {_pct(t.recall)}  ({t.found} of {t.defects} defects found; target ≥ 50 %)",
        f"precision               {_pct(t.precision)}  ({t.true_posted} of {t.posted} posted findings true;"
        " target ≥ 85 %)",
        f"comments on clean       {t.clean_comments:5d}    (across {t.clean} clean changes; target ≤ 2)",
    ]
    for label, subset in (("real", False), ("synthetic", True)):
        part = totals([s for s in scores if s.case.synthetic is subset])
        lines.append(
            f"  {label + ' cases':<21} recall {part.found}/{part.defects}, precision {part.true_posted}/"
            f"{part.posted}, {part.clean_comments} comments on {part.clean} clean"
        )
    if t.errors:
        lines.append(f"cases not run           {t.errors:5d}    (see ERROR rows)")
    return "\n".join(lines)


def as_json(scores: Sequence[CaseScore]) -> dict[str, Any]:
    t = totals(scores)
    return {
        "recall": round(t.recall, 4),
        "precision": round(t.precision, 4),
        "clean_comments": t.clean_comments,
        "defects": t.defects,
        "defects_found": t.found,
        "clean_cases": t.clean,
        "posted": t.posted,
        "true_posted": t.true_posted,
        "errors": t.errors,
        "by_origin": {
            label: {
                "defects": part.defects,
                "defects_found": part.found,
                "posted": part.posted,
                "true_posted": part.true_posted,
                "clean_cases": part.clean,
                "clean_comments": part.clean_comments,
            }
            for label, part in (
                ("real", totals([s for s in scores if not s.case.synthetic])),
                ("synthetic", totals([s for s in scores if s.case.synthetic])),
            )
        },
        "cases": [
            {
                "name": s.case.name,
                "kind": s.case.kind,
                "synthetic": s.case.synthetic,
                "package": s.case.package,
                "advisory": s.case.advisory,
                "found": s.found,
                "error": s.error or None,
                "changed_files": s.changed_files,
                "raw_hits": s.raw_hits,
                "posted": [{**p.__dict__, "true": p in s.true} for p in s.posted],
            }
            for s in scores
        ],
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", default=[], help="run only this case (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--offline-only", action="store_true", help="use cached downloads only")
    parser.add_argument("--show-false", action="store_true", help="list every false posted finding")
    parser.add_argument(
        "--show-expected",
        action="store_true",
        help="print the head lines each expected range covers, then exit",
    )
    parser.add_argument("--cases-file", type=Path, default=CASES_FILE)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.getLogger("bot").setLevel(logging.WARNING)  # the per-review "assembled" lines are noise here
    cases = load_cases(args.cases_file)
    if args.case:
        unknown = set(args.case) - {c.name for c in cases}
        if unknown:
            parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
        cases = [c for c in cases if c.name in args.case]
    if args.show_expected:
        for case in cases:
            show_expected(case, offline=args.offline_only)
        return
    started = time.perf_counter()
    scores = []
    for case in cases:
        scores.append(run_case(case, offline=args.offline_only))
        if not args.json:
            print(f"… {case.name}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(as_json(scores), indent=2))
        return
    print(table(scores, show_false=args.show_false))
    print(f"({len(cases)} cases in {time.perf_counter() - started:.1f} s; downloads cached in {cache_dir()})")


if __name__ == "__main__":
    main()
