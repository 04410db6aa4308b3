"""The repository cache (issue 10 item 2) with real git over smart HTTP from the fake GitHub: only missing
objects are fetched, the token never lands in the cache, concurrent jobs share it, a corrupt or tampered
cache heals, LRU eviction keeps it under its cap, and the checkout hardening is unchanged."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.checkout import GitSource, Workspace, workspace
from bot.errors import BudgetExceeded
from bot.repocache import CONFIG, RepoCache, cache_key
from tests.support.fake_github import FakeGitHub, FakeRepo
from tests.support.gitrepo import GitRepo, init_repo


@dataclass
class Served:
    fake: FakeGitHub
    inst: Any
    repo: FakeRepo
    work: GitRepo
    token: str
    tmp: Path

    @property
    def source(self) -> GitSource:
        return GitSource.https(self.fake.clone_url(self.repo), self.token)

    def push(self, files: dict[str, str | bytes], branch: str = "feature") -> str:
        sha = self.work.commit("change", files)
        self.repo.push(self.work, branch)
        return sha


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with FakeGitHub(tmp_path / "fake") as fake:
        inst = fake.add_installation("octo-org")
        repo = fake.add_repo(inst, "octo-org", "orders")
        work = init_repo(tmp_path / "work")
        work.commit("base", {f"pkg/m{i}.py": f"x = {i}\n" * 50 for i in range(40)})
        work.branch("feature")
        repo.push(work, "main", "feature")
        token = fake.add_token(repo, permissions={"contents": "read", "metadata": "read"})
        (tmp_path / "scratch").mkdir()
        yield Served(fake, inst, repo, work, token, tmp_path)


def _review(s: Served, cache: RepoCache, head: str, base: str | None = None, **kw: object) -> tuple[str, str]:
    async def main() -> tuple[str, str]:
        async with workspace(s.source, head, base, scratch_root=s.tmp / "scratch", cache=cache, **kw) as ws:  # type: ignore[arg-type]
            return await ws.diff() if base else "", (ws.path / "pkg" / "m1.py").read_text()

    return asyncio.run(main())


def _base(s: Served) -> str:
    return s.work.git("rev-parse", "main")


def _entry(cache: RepoCache, s: Served) -> Path:
    return cache.root / cache_key(s.fake.clone_url(s.repo))


def _generation(cache: RepoCache, s: Served) -> Path:
    entry = _entry(cache, s)
    return entry / (entry / "current").read_text().strip()


def _pack_objects(gen: Path) -> list[int]:
    """Objects per pack in the generation, oldest first."""
    counts = []
    packs = sorted((gen / "objects" / "pack").glob("*.idx"), key=lambda p: p.stat().st_mtime_ns)
    for idx in packs:
        with idx.open("rb") as fh:
            out = subprocess.run(["git", "show-index"], stdin=fh, capture_output=True, check=True)
        counts.append(len(out.stdout.splitlines()))
    return counts


def test_second_review_fetches_only_the_missing_objects(served: Served) -> None:
    cache = RepoCache(served.tmp / "cache", 10**9)
    base = _base(served)
    first = served.push({"pkg/m1.py": "x = 'first'\n"})
    diff, text = _review(served, cache, first, base)
    assert "x = 'first'" in diff and text == "x = 'first'\n"
    second = served.push({"pkg/m1.py": "x = 'second'\n"})
    diff, text = _review(served, cache, second, base)
    assert "x = 'second'" in diff and text == "x = 'second'\n"
    counts = _pack_objects(_generation(cache, served))
    # the new commit, its root and pkg trees, the new blob (and at most one more): never the whole tree again
    assert counts[0] > 40 and len(counts) == 2 and counts[1] <= 5, counts
    wants = [r.wants for r in served.fake.git_requests if r.wants]
    assert wants[-1] == [second], wants  # by SHA, only what was missing
    _review(served, cache, second, base)  # the same head again: nothing to fetch at all
    assert [r.wants for r in served.fake.git_requests if r.wants] == wants


def test_k02_s12_the_token_never_lands_in_the_cache(served: Served) -> None:
    cache = RepoCache(served.tmp / "cache", 10**9)
    _review(served, cache, served.push({"pkg/m1.py": "y = 1\n"}), _base(served))
    basic = base64.b64encode(f"x-access-token:{served.token}".encode())
    for path in cache.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for needle in (served.token.encode(), basic, b"x-access-token", b"AUTHORIZATION", b"extraheader"):
                assert needle.lower() not in data.lower(), (path, needle)
    assert (_generation(cache, served) / "config").read_bytes() == CONFIG


def test_concurrent_jobs_share_one_cache_safely(served: Served) -> None:
    cache = RepoCache(served.tmp / "cache", 10**9)
    base = _base(served)
    heads = [served.push({"pkg/m1.py": f"x = 'head {i}'\n"}) for i in range(6)]

    async def one(head: str) -> str:
        async with workspace(
            served.source, head, base, scratch_root=served.tmp / "scratch", cache=cache
        ) as ws:
            await asyncio.sleep(0.05)  # hold the lease while others fetch
            return (ws.path / "pkg" / "m1.py").read_text()

    async def main() -> list[str]:
        return await asyncio.gather(*(one(h) for h in heads))

    texts = asyncio.run(main())
    assert texts == [f"x = 'head {i}'\n" for i in range(6)]
    entry = _entry(cache, served)
    assert sorted(p.name for p in entry.glob("g-*") if p.is_dir()) == [_generation(cache, served).name]
    assert os.listdir(served.tmp / "scratch") == []


def _corrupt_pack(gen: Path) -> None:
    pack = max((gen / "objects" / "pack").glob("*.pack"), key=lambda p: p.stat().st_size)
    data = bytearray(pack.read_bytes())
    for i in range(200, len(data) - 40, 97):
        data[i] ^= 0xFF
    pack.chmod(0o600)
    pack.write_bytes(bytes(data))


def _plant_alternates(gen: Path) -> None:
    (gen / "objects" / "info" / "alternates").write_text("/tmp/another-customer.git/objects\n")


def _plant_hook(gen: Path) -> None:
    (gen / "hooks").mkdir()
    (gen / "hooks" / "post-checkout").write_text("#!/bin/sh\ntouch /tmp/pwned\n")


def _change_config(gen: Path) -> None:
    (gen / "config").write_bytes(CONFIG + b"[core]\n\tfsmonitor = /tmp/pwn.sh\n")


def _delete_objects(gen: Path) -> None:
    for path in (gen / "objects" / "pack").iterdir():
        path.chmod(0o600)
        path.unlink()


def _loose_object(gen: Path) -> None:
    (gen / "objects" / "ab").mkdir()
    (gen / "objects" / "ab" / ("c" * 38)).write_bytes(b"not an object")


@pytest.mark.parametrize(
    "damage", [_corrupt_pack, _plant_alternates, _plant_hook, _change_config, _delete_objects, _loose_object]
)
def test_a_corrupt_or_tampered_cache_is_re_seeded(served: Served, damage: object) -> None:
    cache = RepoCache(served.tmp / "cache", 10**9)
    base = _base(served)
    head = served.push({"pkg/m1.py": "x = 'ok'\n"})
    _review(served, cache, head, base)
    before = _generation(cache, served)
    damage(before)  # type: ignore[operator]
    diff, text = _review(served, cache, head, base)
    assert text == "x = 'ok'\n" and "x = 'ok'" in diff
    after = _generation(cache, served)
    assert after != before and not before.exists()
    assert (after / "config").read_bytes() == CONFIG and not (after / "hooks").exists()


def test_debris_of_a_killed_fetch_is_cleared(served: Served) -> None:
    cache = RepoCache(served.tmp / "cache", 10**9)
    base = _base(served)
    _review(served, cache, served.push({"pkg/m1.py": "x = 1\n"}), base)
    gen = _generation(cache, served)
    (gen / "shallow.lock").write_text("")
    (gen / "objects" / "pack" / "tmp_pack_XXXX").write_bytes(b"partial")
    head = served.push({"pkg/m1.py": "x = 2\n"})
    assert _review(served, cache, head, base)[1] == "x = 2\n"
    assert _generation(cache, served) == gen  # cleaned, not re-seeded
    assert not (gen / "shallow.lock").exists()


def test_lru_eviction_keeps_the_cache_under_its_cap_and_spares_entries_in_use(served: Served) -> None:
    cache = RepoCache(served.tmp / "cache", 1)  # a 1-byte cap: every entry not in use goes
    base = _base(served)
    head = served.push({"pkg/m1.py": "x = 1\n"})
    other = served.fake.add_repo(served.inst, "octo-org", "other")
    other.push(served.work, "main", "feature")
    other_source = GitSource.https(
        served.fake.clone_url(other), served.fake.add_token(other, permissions={"contents": "read"})
    )
    other_entry = cache.root / cache_key(served.fake.clone_url(other))

    async def main() -> tuple[bool, bool, bool]:
        async with workspace(
            served.source, head, base, scratch_root=served.tmp / "scratch", cache=cache
        ) as ws:
            # another repository is reviewed meanwhile: it is evicted after its job, the one in use is not
            async with workspace(other_source, head, base, scratch_root=served.tmp / "scratch", cache=cache):
                pass
            in_use_kept = _entry(cache, served).exists()
            assert await ws.diff()  # its objects are still readable
        return in_use_kept, other_entry.exists(), _entry(cache, served).exists()

    kept, other_kept, after = asyncio.run(main())
    assert kept is True and other_kept is False
    assert after is False  # evicted once released


def test_lru_eviction_removes_the_least_recently_used_first(served: Served) -> None:
    base = _base(served)
    head = served.push({"pkg/m1.py": "x = 1\n"})
    other = served.fake.add_repo(served.inst, "octo-org", "other")
    other.push(served.work, "main", "feature")
    other_source = GitSource.https(
        served.fake.clone_url(other), served.fake.add_token(other, permissions={"contents": "read"})
    )
    roomy = RepoCache(served.tmp / "cache", 10**9)
    _review(served, roomy, head, base)
    size = sum(p.stat().st_size for p in roomy.root.rglob("*") if p.is_file())
    cache = RepoCache(served.tmp / "cache", int(size * 1.5))  # room for one entry, not two

    async def review_other() -> None:
        async with workspace(other_source, head, base, scratch_root=served.tmp / "scratch", cache=cache):
            pass

    asyncio.run(review_other())
    assert not _entry(cache, served).exists()  # the older entry went
    assert (cache.root / cache_key(served.fake.clone_url(other))).exists()


def test_caps_and_hardening_apply_unchanged_with_the_cache(served: Served) -> None:
    cache = RepoCache(served.tmp / "cache", 10**9)
    head = served.push({"/".join(["d"] * 300) + "/leaf.py": "x = 1\n", "link": "x"})
    with pytest.raises(BudgetExceeded):
        _review(served, cache, head, _base(served))
    assert os.listdir(served.tmp / "scratch") == []


def test_workspace_with_cache_is_an_ordinary_workspace(served: Served) -> None:
    cache = RepoCache(served.tmp / "cache", 10**9)
    base = _base(served)
    head = served.push({"pkg/m1.py": "x = 'w'\n"})

    async def main() -> Workspace:
        async with workspace(
            served.source, head, base, scratch_root=served.tmp / "scratch", cache=cache
        ) as ws:
            assert ws.merge_base == base
            assert not (ws.path / ".git").exists() and ws.git_dir.parent == ws.path.parent
            assert await ws.is_ancestor(base)
            return ws

    ws = asyncio.run(main())
    assert not ws.path.parent.exists()


def test_corruption_found_only_by_git_heals_within_the_same_job(served: Served) -> None:
    """Damage the cheap check cannot see (size, mtime and inode kept): git fails, the deep check
    confirms it, and the job re-seeds and succeeds."""
    cache = RepoCache(served.tmp / "cache", 10**9)
    base = _base(served)
    head = served.push({"pkg/m1.py": "x = 'deep'\n"})
    _review(served, cache, head, base)
    before = _generation(cache, served)
    for pack in (before / "objects" / "pack").glob("*.pack"):
        st = pack.stat()
        pack.chmod(0o600)
        with pack.open("r+b") as fh:  # in place: the same inode and size
            data = bytearray(fh.read())
            for i in range(12, len(data) - 20):
                data[i] ^= 0x5A
            fh.seek(0)
            fh.write(bytes(data))
        os.utime(pack, ns=(st.st_atime_ns, st.st_mtime_ns))
    diff, text = _review(served, cache, head, base)
    assert text == "x = 'deep'\n" and "x = 'deep'" in diff
    assert _generation(cache, served) != before


def test_lazy_workspace_writes_only_what_is_read(served: Served) -> None:
    cache = RepoCache(served.tmp / "cache", 10**9)
    base = _base(served)
    head = served.push({"pkg/m1.py": "x = 'lazy'\n", "pkg/new.py": "y = 1\n"})

    async def main() -> None:
        scratch = served.tmp / "scratch"
        async with workspace(served.source, head, base, scratch_root=scratch, cache=cache, lazy=True) as ws:
            assert list(ws.path.iterdir()) == []
            await ws.materialize(["pkg/m1.py", "pkg/new.py", "pkg/deleted.py", "-rf", "../x"])
            assert sorted(p.name for p in (ws.path / "pkg").iterdir()) == ["m1.py", "new.py"]
            assert (ws.path / "pkg" / "m1.py").read_text() == "x = 'lazy'\n"
            await ws.materialize_all()
            assert len(list((ws.path / "pkg").iterdir())) == 41
            assert not (ws.path / ".git").exists()

    asyncio.run(main())


_WORKER = """
import asyncio, sys
from pathlib import Path
from bot.checkout import GitSource, workspace
from bot.repocache import RepoCache

url, token, root, scratch, base, *heads = sys.argv[1:]

async def main() -> None:
    cache = RepoCache(Path(root), 10**9)
    for head in heads:
        source = GitSource.https(url, token)
        async with workspace(source, head, base, scratch_root=Path(scratch), cache=cache) as ws:
            print(head, (ws.path / "pkg" / "m1.py").read_text().strip(), flush=True)

asyncio.run(main())
"""


def test_worker_processes_share_one_cache(served: Served) -> None:
    """Three processes review interleaved heads of one repository through one cache at once."""
    base = _base(served)
    heads = [served.push({"pkg/m1.py": f"x = {i}\n"}) for i in range(6)]
    root = served.tmp / "cache"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                served.fake.clone_url(served.repo),
                served.token,
                str(root),
                str(served.tmp / "scratch"),
                base,
                *heads[k::2],
                *heads[: k + 1],
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[1],
        )
        for k in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
        for line in out.decode().splitlines():
            sha, text = line.split(" ", 1)
            assert text == f"x = {heads.index(sha)}"
    cache = RepoCache(root, 10**9)
    live = _generation(cache, served)
    assert [p for p in _entry(cache, served).glob("g-*") if p.is_dir()] == [live]
    assert os.listdir(served.tmp / "scratch") == []
