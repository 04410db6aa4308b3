"""100 reviews in flight against a model that answers in 2 s (DESIGN.md target: wall time ≤ 2× one review).

Each review is the real path of one App job's core, in one process and one event loop: its own hardened
workspace (``git init`` + fetch by SHA + checkout) of the demo repository, the offline rules, the agent
through the real Anthropic SDK provider (a fresh provider per review, closed after it, as a worker does)
and the review assembly. The model is :func:`bench.support.slow_model` in a separate process: every
reply takes ``BR_BENCH_LATENCY`` s (default 2); each conversation is one ``grep`` tool call, then
``submit_review`` with one finding, i.e. two model turns ≈ 4 s of model time per review.

Figures: one review alone (median of 3), the wall time of N concurrent reviews (``BR_BENCH_REVIEWS``,
default 100), the ratio, per-review latency inside the concurrent run, peak RSS of this process,
its peak open file descriptors (sampled every 20 ms) and the largest git child's RSS. Prints figures;
asserts nothing, but says how many reviews did not end with the agent's submitted review.

Run: ``.venv/bin/python -m bench concurrency``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import bot
from bench.support import FdSampler, open_fds, peak_rss_mib, slow_model
from bot import demo
from bot.agent.providers import ModelSpec, make_provider
from bot.checkout import GitSource, resolve_ref, workspace
from bot.local import build_demo_repository
from bot.pipeline import ReviewInputs, review_workspace

REVIEWS = int(os.environ.get("BR_BENCH_REVIEWS", "100"))
LATENCY = float(os.environ.get("BR_BENCH_LATENCY", "2"))
LOOP = os.environ.get("BR_BENCH_LOOP", "asyncio")  # the review workers run on the stdlib loop (bot.app)
SPEC = ModelSpec.parse("anthropic:claude-sonnet-4-6")
USERS_PY = demo.PR["app/users.py"].splitlines()
LINE = next(i for i, text in enumerate(USERS_PY, 1) if "request.args.get" in text)
FINDING = {
    "path": "app/users.py",
    "line": LINE,
    "severity": "medium",
    "category": "performance",
    "title": "Unbounded user search",
    "body": "The search has no LIMIT and no minimum length: one request can scan the whole table.",
    "evidence": USERS_PY[LINE - 1].strip(),
    "confidence": 0.9,
}


async def _review(repo: Path, head: str, base: str, scratch: Path, model_url: str) -> tuple[float, str]:
    started = time.perf_counter()
    provider = make_provider(SPEC, api_key="sk-ant-bench-0123456789abcdef", base_url=model_url)
    try:
        async with workspace(GitSource.local(repo), head, base, scratch_root=scratch) as ws:
            outcome = await review_workspace(
                ws,
                ReviewInputs(title=demo.PR_TITLE, body=demo.PR_BODY, repo="octo/orders"),
                provider=provider,
            )
    finally:
        await provider.aclose()
    status = outcome.agent.status if outcome.agent else "off"
    agent_findings = len(outcome.agent.findings) if outcome.agent else 0
    return time.perf_counter() - started, f"{status}/{agent_findings}"


async def _run(root: Path, model_url: str) -> None:
    repo = await build_demo_repository(root)
    head = await resolve_ref(repo, "HEAD")
    base = await resolve_ref(repo, "main")
    scratch = root / "scratch"
    scratch.mkdir()

    alone = []
    for _ in range(3):
        seconds, status = await _review(repo, head, base, scratch, model_url)
        alone.append(seconds)
    one = statistics.median(alone)
    rss_before = peak_rss_mib()
    fds_before = open_fds()
    print(
        f"one review alone: median {one:.2f} s of 3 "
        f"(agent status/findings {status}; model turns 2 × {LATENCY:g} s)"
    )

    own0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    with FdSampler() as fds:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(_review(repo, head, base, scratch, model_url) for _ in range(REVIEWS)), return_exceptions=True
        )
        wall = time.perf_counter() - started
    own1, kids1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    own_cpu = own1.ru_utime - own0.ru_utime + own1.ru_stime - own0.ru_stime
    kids_cpu = kids1.ru_utime - kids0.ru_utime + kids1.ru_stime - kids0.ru_stime
    done = [r for r in results if isinstance(r, tuple)]
    failed = [r for r in results if not isinstance(r, tuple)]
    not_ok = [s for _, s in done if not s.startswith("ok/1")]
    latencies = sorted(s for s, _ in done)
    print(f"{REVIEWS} reviews in flight: wall {wall:.2f} s; ratio {wall / one:.2f}× one review (target ≤ 2×)")
    if latencies:
        print(
            f"  per review: min {latencies[0]:.2f} s, median {statistics.median(latencies):.2f} s, "
            f"max {latencies[-1]:.2f} s; {len(done)} completed, {len(failed)} raised, "
            f"{len(not_ok)} without the agent's submitted finding"
        )
    print(f"  CPU during the run: this process {own_cpu:.1f} s, git/rg children {kids_cpu:.1f} s")
    for exc in failed[:3]:
        print(f"  raised: {type(exc).__name__}: {str(exc)[:200]}")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"  peak RSS {peak_rss_mib():.0f} MiB (after the single reviews: {rss_before:.0f} MiB); "
        f"open fds peak {fds.peak} (before: {fds_before}); largest git child {children:.0f} MiB"
    )


def main() -> None:
    # the stock agent lists tools it is refused (edit, bash, webfetch): one warning per review, by design
    logging.getLogger("bot.agent.definitions").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="br-bench-conc-") as tmp, slow_model(LATENCY, FINDING) as url:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        print(f"bot package: {Path(bot.__file__).parent}")
        print(
            f"model: {url} (every reply {LATENCY:g} s); loop {LOOP}; "
            f"fd limit {soft}/{hard}; {os.cpu_count()} CPUs"
        )
        if LOOP == "uvloop":
            import uvloop

            uvloop.run(_run(Path(tmp), url))
        else:
            asyncio.run(_run(Path(tmp), url))


if __name__ == "__main__":
    main()
