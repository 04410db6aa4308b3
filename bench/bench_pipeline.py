"""Pipeline time outside the model for a PR on a mid-size real repository, against a full ``git clone``.

DESIGN.md target: ≤ 1 s, and ≤ 0.2× a full ``git clone`` of that repository, measured in one run.

The repository is real code with real history, built without network from the CPython standard
libraries installed here by pyenv (``/root/.pyenv/versions/*/lib/python3.X``, 2.7 → 3.13): every
``.py`` file of ``Lib/``, release after release. Each release-to-release change (the real diffs between
releases) is spread over ``BR_BENCH_COMMITS`` commits (default 60) in a fixed pseudo-random file order,
so the history has hundreds of commits and the pack holds every release, like a real mid-size project.
The pull request is real too: 20 modules that changed between 3.12.1 and 3.13.0 are held back on
``main`` (at their 3.12.1 text) and the PR branch brings them to 3.13.0 in three commits.
The repository is built once with ``git fast-import`` + ``git repack`` and cached in
``$TMPDIR/br-bench-cpython-lib-v1`` (``BR_BENCH_REBUILD=1`` rebuilds).

It is served by the fake GitHub (``tests.support.fake_github``: real ``git http-backend`` over smart
HTTP on 127.0.0.1, token-authenticated), and both sides use that same transport:

* full clone: ``git clone <url>`` with the installation token as an ``http.extraHeader``;
* our pipeline, stage by stage (median of ``BR_BENCH_RUNS``, default 5): hardened workspace (init,
  fetch by SHA, merge base, checkout), diff, changeset, offline rules, prompt budget, review assembly,
  render (Markdown + SARIF + JSON), workspace removal; and ``review_workspace`` as one call;
* the GitHub App path: one whole offline ``ReviewJobRunner`` job against the fake (token mint, live
  re-checks, workspace, review, publish: review + check run), with its publish step timed on its own.

The same workspace and clone are also timed from a local path (``GitSource.local`` / ``git clone
--no-local``) for reference. Prints figures; asserts nothing.

Run: ``.venv/bin/python -m bench pipeline``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.support import GIT_ENV, git, median_ms
from bot import __version__
from bot.checkout import GitSource, Workspace, remove_tree, workspace
from bot.diff import budget_prompt, parse_diff
from bot.formats import to_json, to_markdown, to_sarif
from bot.github import GitHubApp
from bot.jobs import JobDeps, ReviewJobRunner
from bot.models import PullRequestRef, ReviewJob
from bot.pipeline import ReviewInputs, head_reader, review_workspace
from bot.publish.base import Published
from bot.queue.base import ClaimedJob
from bot.redact import SECRETS
from bot.repocache import RepoCache
from bot.review import ReviewContext, build_review
from bot.rules import run_rules
from bot.store import open_store
from tests.support.fake_github import FakeGitHub

PYENV = Path(os.environ.get("BR_BENCH_PYENV", "/root/.pyenv/versions"))
CACHE = Path(tempfile.gettempdir()) / "br-bench-cpython-lib-v1"
COMMITS_PER_RELEASE = int(os.environ.get("BR_BENCH_COMMITS", "60"))
RUNS = int(os.environ.get("BR_BENCH_RUNS", "5"))
PR_FILES = 20
_SAFE_PATH = re.compile(r"\A[A-Za-z0-9_./+-]+\Z")
_EPOCH = 1_262_304_000  # 2010-01-01: commit dates advance one hour per commit


# ----------------------------------------------------------------------------------- the repository


def _releases() -> list[tuple[tuple[int, ...], Path]]:
    found = []
    for lib in PYENV.glob("*/lib/python[0-9].*"):
        m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", lib.parents[1].name)
        if m and lib.is_dir():
            found.append((tuple(int(x) for x in m.groups()), lib))
    return sorted(found)


def _tree(lib: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in lib.rglob("*.py"):
        rel = path.relative_to(lib).as_posix()
        if rel.startswith(("site-packages/", "lib-dynload/")) or "__pycache__" in rel or path.is_symlink():
            continue
        if _SAFE_PATH.match(rel) and path.is_file():
            out[f"Lib/{rel}"] = path
    return out


def _order(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()


def _changed_lines(a: bytes, b: bytes) -> int:
    ca, cb = Counter(a.splitlines()), Counter(b.splitlines())
    return sum(((ca - cb) + (cb - ca)).values())


class _Importer:
    """Writes a ``git fast-import`` stream: one commit per call, files given as bytes or None (delete)."""

    def __init__(self, bare: Path) -> None:
        self.proc = subprocess.Popen(
            ["git", "--git-dir", str(bare), "fast-import", "--quiet", "--done"],
            stdin=subprocess.PIPE,
            env={**os.environ, **GIT_ENV},
        )
        self.commits = 0

    def commit(
        self, ref: str, message: str, changes: list[tuple[str, bytes | None]], parent: str = ""
    ) -> None:
        assert self.proc.stdin is not None
        w = self.proc.stdin.write
        when = _EPOCH + 3600 * self.commits
        self.commits += 1
        msg = message.encode()
        w(f"commit {ref}\nmark :{self.commits}\n".encode())
        w(f"committer Bench Author <bench@example.invalid> {when} +0000\n".encode())
        w(f"data {len(msg)}\n".encode() + msg + b"\n")
        if parent:
            w(f"from {parent}\n".encode())
        for path, data in changes:
            if data is None:
                w(f"D {path}\n".encode())
            else:
                w(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
        w(b"\n")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"done\n")
        self.proc.stdin.close()
        if self.proc.wait() != 0:
            raise RuntimeError("git fast-import failed")


def build_repository(bare: Path) -> None:
    releases = _releases()
    if len(releases) < 2:
        raise RuntimeError(f"need at least two CPython releases under {PYENV}")
    git(None, "init", "-q", "--bare", "-b", "main", str(bare))
    imp = _Importer(bare)
    trees = [(".".join(map(str, v)), _tree(lib)) for v, lib in releases]
    first_name, first = trees[0]
    # the first release arrives in a few commits, one per top-level package
    groups: dict[str, list[str]] = {}
    for rel in sorted(first):
        groups.setdefault(rel.split("/")[1], []).append(rel)
    for top, rels in sorted(groups.items()):
        imp.commit(
            "refs/heads/main", f"Lib: import {top} ({first_name})", [(r, first[r].read_bytes()) for r in rels]
        )
    held: dict[str, tuple[bytes, bytes]] = {}
    for (old_name, old), (new_name, new) in itertools.pairwise(trees):
        changes: list[tuple[str, bytes | None]] = []
        for rel in sorted(set(old) | set(new), key=_order):
            if rel not in new:
                changes.append((rel, None))
                continue
            data = new[rel].read_bytes()
            if rel not in old:
                changes.append((rel, data))
                continue
            before = old[rel].read_bytes()
            if before != data:
                changes.append((rel, data))
                last = (new_name, old_name) == (trees[-1][0], trees[-2][0])
                if last and len(held) < PR_FILES and 10 <= _changed_lines(before, data) <= 150:
                    held[rel] = (before, data)  # the PR: main keeps the older text
        changes = [(r, d) for r, d in changes if r not in held]
        size = max(1, -(-len(changes) // COMMITS_PER_RELEASE))
        for i in range(0, len(changes), size):
            batch = changes[i : i + size]
            imp.commit("refs/heads/main", f"Lib: sync {len(batch)} modules toward {new_name}", batch)
    rels = sorted(held)
    main_tip = imp.commits
    for n, part in enumerate((rels[0:7], rels[7:14], rels[14:])):
        imp.commit(
            "refs/heads/feature",
            f"Update {len(part)} modules to {trees[-1][0]} ({n + 1}/3)",
            [(r, held[r][1]) for r in part],
            parent=f":{main_tip}" if n == 0 else "",
        )
    imp.close()
    # a well-packed repository, as a hosting service serves it (deltas across releases)
    git(None, "--git-dir", str(bare), "repack", "-a", "-d", "-f", "-q", "--window=10", "--depth=50")


def cached_repository() -> Path:
    bare = CACHE / "cpython-lib.git"
    done = CACHE / "complete"
    if os.environ.get("BR_BENCH_REBUILD") or not done.exists():
        shutil.rmtree(CACHE, ignore_errors=True)
        CACHE.mkdir(parents=True)
        started = time.perf_counter()
        build_repository(bare)
        done.write_text("ok\n")
        print(f"(built the repository in {time.perf_counter() - started:.0f} s; cached in {CACHE})")
    return bare


@dataclass
class RepoFacts:
    files: int
    tree_mb: float
    pack_mb: float
    commits: int
    pr_files: int
    pr_lines: int


def repo_facts(bare: Path) -> RepoFacts:
    sizes = git(None, "--git-dir", str(bare), "ls-tree", "-r", "-l", "main").splitlines()
    tree = sum(int(line.split()[3]) for line in sizes)
    pack = sum(p.stat().st_size for p in (bare / "objects" / "pack").glob("*.pack"))
    commits = int(git(None, "--git-dir", str(bare), "rev-list", "--count", "--all"))
    numstat = git(None, "--git-dir", str(bare), "diff", "--numstat", "main", "feature").splitlines()
    lines = sum(int(a) + int(d) for a, d, _ in (row.split("\t") for row in numstat))
    return RepoFacts(len(sizes), tree / 1e6, pack / 1e6, commits, len(numstat), lines)


# ----------------------------------------------------------------------------------- measurements


def _timed_clone(url: str, header: str | None, dest: Path, *extra: str) -> float:
    env = {**os.environ, **GIT_ENV}
    if header:
        env |= {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader", "GIT_CONFIG_VALUE_0": header}
    started = time.perf_counter()
    subprocess.run(["git", "clone", "-q", *extra, url, str(dest)], env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    shutil.rmtree(dest)
    return elapsed


class Stages:
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}

    async def run(self, name: str, op: Callable[[], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        out = await op()
        self.times.setdefault(name, []).append(time.perf_counter() - started)
        return out

    def add(self, name: str, seconds: float) -> None:
        self.times.setdefault(name, []).append(seconds)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])


async def _async(value: Any) -> Any:
    return value


async def pipeline_once(
    source: GitSource,
    head: str,
    base: str,
    scratch: Path,
    st: Stages,
    prefix: str,
    cache: RepoCache | None = None,
) -> None:
    """One review outside the model, stage by stage (the same calls ``review_workspace`` makes)."""
    started = time.perf_counter()
    cm = workspace(source, head, base, scratch_root=scratch, cache=cache, lazy=cache is not None)
    ws: Workspace = await st.run(f"{prefix}workspace", cm.__aenter__)
    try:
        diff_text = await st.run(f"{prefix}diff", ws.diff)
        changeset = await st.run(
            f"{prefix}changeset",
            lambda: _async(parse_diff(diff_text, base_sha=ws.merge_base or "", head_sha=head)),
        )
        await st.run(f"{prefix}materialize", lambda: ws.materialize(f.path for f in changeset.files))
        findings = await st.run(f"{prefix}rules", lambda: _async(tuple(run_rules(changeset))))
        prompt = await st.run(f"{prefix}prompt budget", lambda: _async(budget_prompt(changeset, 24_000)))
        ctx = ReviewContext(
            repo="python/cpython-lib",
            head_sha=head,
            max_inline=10,
            fail_on=None,
            agent_results=(),
            offline_only=True,
            reviewed_files=len(changeset.reviewable_files),
            total_files=len(changeset.files),
            skipped=tuple((f.path, f.skip_reason or "") for f in changeset.skipped_files),
            omitted_from_prompt=prompt.omitted,
            seconds=0.0,
            notes=(),
            secrets=SECRETS,
            already_posted=frozenset(),
        )
        draft = await st.run(
            f"{prefix}assembly",
            lambda: _async(build_review(list(findings), changeset, head_reader(ws.path), ctx)),
        )
        await st.run(
            "render",
            lambda: _async(
                (to_markdown(draft), to_sarif(draft, tool_version=__version__), to_json(draft, changeset))
            ),
        )
        whole = await st.run(
            f"{prefix}review_workspace()",
            lambda: review_workspace(ws, ReviewInputs(repo="python/cpython-lib")),
        )
    finally:
        await st.run(f"{prefix}cleanup", lambda: cm.__aexit__(None, None, None))
    st.add(f"{prefix}total", time.perf_counter() - started - st.times[f"{prefix}review_workspace()"][-1])
    st.last_findings = len(whole.draft.findings)  # type: ignore[attr-defined]


class TimedRunner(ReviewJobRunner):
    """The App's job runner with its publish step timed (everything else is the real code)."""

    publish: list[float]

    async def _publish(self, *args: Any, **kwargs: Any) -> Published:
        started = time.perf_counter()
        try:
            return await super()._publish(*args, **kwargs)
        finally:
            self.publish.append(time.perf_counter() - started)


def _du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


async def _pipelines(http: GitSource, local: GitSource, head: str, base: str, scratch: Path) -> Stages:
    st = Stages()
    for i in range(RUNS + 1):
        await pipeline_once(http, head, base, scratch, st, "")
        await pipeline_once(local, head, base, scratch, st, "local ")
        if i == 0:  # warm-up: page cache, imports, the rules' compiled patterns
            st.times = {k: [] for k in st.times}
    async with workspace(http, head, base, scratch_root=scratch) as ws:
        st.fetched_mb = _du_mb(ws.git_dir)  # type: ignore[attr-defined]
    return st


def _push_commit(bare: Path, parent: str, n: int) -> str:
    """A new commit on ``parent`` in the served repository, changing one file (a push to the PR)."""
    env = {**os.environ, **GIT_ENV, "GIT_INDEX_FILE": str(bare / f"bench-index-{n}")}

    def run(*args: str, stdin: bytes | None = None) -> str:
        out = subprocess.run(
            ["git", "--git-dir", str(bare), *args], env=env, input=stdin, check=True, capture_output=True
        )
        return out.stdout.decode().strip()

    run("read-tree", parent)
    blob = run("hash-object", "-w", "--stdin", stdin=f"# push {n}\n".encode())
    run("update-index", "--add", "--cacheinfo", f"100644,{blob},Lib/bench_push_{n}.py")
    tree = run("write-tree")
    os.unlink(bare / f"bench-index-{n}")
    return run("commit-tree", tree, "-p", parent, "-m", f"push {n}")


async def _cached(http: GitSource, bare: Path, head: str, base: str, scratch: Path, root: Path) -> Stages:
    """Issue 10's repository cache: a first review into an empty cache, then second reviews of the
    same repository (the same head again, and a new push on top of it), each its own cache state."""
    st = Stages()
    for i in range(RUNS + 1):
        cache = RepoCache(root / f"cold-{i}", 10**10)
        await pipeline_once(http, head, base, scratch, st, "cold ", cache)
        await pipeline_once(http, head, base, scratch, st, "same ", cache)
        pushed = _push_commit(bare, head, i)
        await pipeline_once(http, pushed, base, scratch, st, "push ", cache)
        remove_tree(root / f"cold-{i}")
        if i == 0:
            st.times = {k: [] for k in st.times}
    return st


async def _app_jobs(fake: FakeGitHub, repo: Any, pull: Any, tmp: Path) -> tuple[list[float], list[float]]:
    store = open_store(f"sqlite:///{tmp / 'store.sqlite3'}", tmp)
    app = GitHubApp(
        private_key=fake.private_key_pem, app_id=fake.app_id, base_url=fake.url, write_interval=0.0
    )
    deps = JobDeps(
        github=app, ledger=store.ledger, provider_factory=lambda: None, scratch_root=tmp / "scratch"
    )
    runner = TimedRunner(deps)
    runner.publish = []
    whole: list[float] = []
    try:
        for i in range(RUNS + 1):
            pr = PullRequestRef(repo.owner, repo.name, pull.number, repo.installation_id, repo.id)
            job = ReviewJob(pr=pr, head_sha=pull.head_sha, trigger="opened", delivery_id=f"bench-{i}")
            started = time.perf_counter()
            result = await runner(ClaimedJob(id=f"job-{i}", job=job, attempt=1, lease_token="t"))
            whole.append(time.perf_counter() - started)
            if not result.startswith("posted"):
                print(f"  App job {i}: {result}")
    finally:
        await store.close()
    return whole[1:], runner.publish[1:]  # the first job is a warm-up


def main() -> None:
    logging.getLogger("bot").setLevel(logging.ERROR)
    bare = cached_repository()
    facts = repo_facts(bare)
    print(
        f"repository: CPython Lib/*.py (pyenv 2.7 → 3.13), {facts.files} files, {facts.tree_mb:.1f} MB at "
        f"main, {facts.commits} commits, pack {facts.pack_mb:.1f} MB; PR: {facts.pr_files} files, "
        f"{facts.pr_lines} changed lines (real 3.12.1 → 3.13.0 diffs)"
    )
    with (
        tempfile.TemporaryDirectory(prefix="br-bench-pipe-") as tmp_name,
        FakeGitHub(Path(tmp_name) / "fake") as fake,
    ):
        tmp = Path(tmp_name)
        (tmp / "scratch").mkdir()
        inst = fake.add_installation("python")
        repo = fake.add_repo(inst, "python", "cpython-lib")
        git(None, "--git-dir", str(bare), "push", "-q", str(repo.bare), "main:main", "feature:feature")
        pull = fake.add_pull(repo, head_ref="feature", title="Update 20 modules to 3.13.0")
        token = fake.add_token(repo, permissions={"contents": "read", "metadata": "read"})
        url = fake.clone_url(repo)
        http = GitSource.https(url, token)

        dest = tmp / "clone"
        git(None, "clone", "-q", "--no-local", str(bare), str(dest))
        clone_mb = _du_mb(dest / ".git")
        shutil.rmtree(dest)
        clone_http: list[float] = []
        clone_local: list[float] = []
        for i in range(4):  # the first of each is a warm-up
            t = _timed_clone(url, http.auth_header, dest)
            clone_http += [t] if i else []
            t = _timed_clone(str(bare), None, dest, "--no-local")
            clone_local += [t] if i else []

        st = asyncio.run(
            _pipelines(http, GitSource.local(bare), pull.head_sha, pull.base_sha, tmp / "scratch")
        )
        app_whole, app_publish = asyncio.run(_app_jobs(fake, repo, pull, tmp))
        cached = asyncio.run(
            _cached(http, repo.bare, pull.head_sha, pull.base_sha, tmp / "scratch", tmp / "cache")
        )

    clone = statistics.median(clone_http)
    total = st.median("total")
    print(
        "transport: git smart HTTP on 127.0.0.1 (fake GitHub → git http-backend), token in http.extraHeader"
    )
    print(f"  full git clone (checkout included){'':19}{median_ms(clone_http)} ({clone_mb:.1f} MB .git)")
    print(f"  pipeline outside the model, median of {RUNS}:")
    fetched = f"({st.fetched_mb:.1f} MB git dir)"  # type: ignore[attr-defined]
    rows = [
        ("workspace", "workspace: init, fetch by SHA, merge base, checkout", fetched),
        ("diff", "git diff merge-base..head", ""),
        ("changeset", "changeset (parse + filters)", ""),
        ("rules", "offline rules", ""),
        ("prompt budget", "prompt budget", ""),
        ("assembly", "review assembly", f"({st.last_findings} findings)"),  # type: ignore[attr-defined]
        ("render", "render Markdown + SARIF + JSON", ""),
        ("cleanup", "workspace removal", ""),
        ("total", "total of the stages above", ""),
        ("review_workspace()", "review_workspace() as one call (diff → assembly)", ""),
    ]
    for key, label, note in rows:
        print(f"    {label:<52} {median_ms(st.times[key])} {note}")
    print(
        f"  ratio pipeline / full clone = {total / clone:.3f} (target <= 0.2); "
        f"pipeline {total * 1000:.0f} ms (target <= 1000 ms)"
    )
    print(f"  GitHub App job, offline (mint, re-checks, workspace, review, publish): {median_ms(app_whole)}")
    print(f"    of which publish (review + check run, write pacing off)   {median_ms(app_publish)}")
    print("  repository cache (a persistent bare repository per GitHub repository; issue 10 item 2):")
    for prefix, label, target in (
        ("cold ", "first review, empty cache", 1.0),
        ("same ", "second review, same head (re-run)", 0.1),
        ("push ", "second review, a new push on the PR", 0.1),
    ):
        t = cached.median(f"{prefix}total")
        w = cached.median(f"{prefix}workspace")
        print(
            f"    {label:<40} total {t * 1000:6.0f} ms (workspace {w * 1000:4.0f} ms), "
            f"ratio {t / clone:.3f} (target <= {target}{'' if target == 1.0 else ' and <= 1000 ms'})"
        )
    local_total = st.median("local total")
    print(
        f"local path for reference: git clone --no-local {median_ms(clone_local).strip()}, workspace "
        f"{median_ms(st.times['local workspace']).strip()}, pipeline total {local_total * 1000:.0f} ms, "
        f"ratio {local_total / statistics.median(clone_local):.3f}"
    )


if __name__ == "__main__":
    main()
