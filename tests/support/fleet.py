"""A fleet on one Postgres database: one `backend-review serve --workers 0` receiver and N `backend-review
worker` processes (real subprocesses) against the fake GitHub, fed a burst of signed deliveries.

Used by tests/app/test_fleet.py (with workers SIGKILLed and restarted during the burst) and by
``python -m bench fleet`` (reviews per minute). Every PR is opened at h0 and pushed ``pushes`` more
times; every commit adds one file with a finding of the offline rules (an HTTP call without a
timeout), so a review of a head posts a review, and which files it covers is visible in its comments.
The burst redelivers some deliveries (same id, as GitHub's "Redeliver" does) and posts some
synchronize deliveries after the next push's (GitHub guarantees no order).
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from tests.support.fake_github import FakeGitHub, FakePull
from tests.support.gitrepo import GitRepo, init_repo
from tests.support.waiting import free_port

ROOT = Path(__file__).resolve().parents[2]
EXE = ROOT / ".venv" / "bin" / "backend-review"
WEBHOOKS = ROOT / "tests" / "fixtures" / "webhooks" / "pull_request"
PG_DSN = os.environ.get("BR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

Delivery = tuple[dict[str, str], bytes]


def defect(name: str) -> str:
    return (
        "import requests\n\n\n"
        f"def {name}(event: dict) -> None:\n"
        f'    requests.post("https://{name}.internal/events", json=event, timeout=5, verify=False)\n'
    )


@dataclass
class FleetPR:
    pull: FakePull
    work: GitRepo
    branch: str
    commits: list[tuple[str, str]] = field(default_factory=list)  # (head sha, the file it added), in order

    @property
    def final_head(self) -> str:
        return self.commits[-1][0]


@dataclass
class Fleet:
    tmp: Path
    workers: int
    installations: int = 3
    repos_per_installation: int = 1
    prs_per_repo: int = 3
    pushes: int = 2
    slots: int = 2  # BACKEND_REVIEW_WORKERS of each worker process
    debounce: float = 1.0
    seed: int = 9
    fake: FakeGitHub | None = None
    prs: list[FleetPR] = field(default_factory=list)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    killed_tokens: set[str] = field(default_factory=set)
    kills: int = 0
    database: str = ""
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)

    # -- setting up ---------------------------------------------------------------------------

    def __enter__(self) -> Fleet:
        self.database = f"br_fleet_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.database}")
        self.fake = FakeGitHub(self.tmp / "fake", webhook_secret=secrets.token_urlsafe(40)).__enter__()
        self._repos()
        base = PG_DSN.rsplit("/", 1)[0]
        self.port = free_port()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.tmp),
            "LANG": "C.UTF-8",
            "BACKEND_REVIEW_WEBHOOK_SECRET": self.fake.webhook_secret,
            "BACKEND_REVIEW_APP_ID": str(self.fake.app_id),
            "BACKEND_REVIEW_PRIVATE_KEY": self.fake.private_key_pem,
            "BACKEND_REVIEW_GITHUB_API_URL": self.fake.url,
            "BACKEND_REVIEW_DATABASE_URL": f"{base}/{self.database}",
            "BACKEND_REVIEW_DEBOUNCE_SECONDS": str(self.debounce),
            "BACKEND_REVIEW_LEASE_SECONDS": "3",
            # a job whose workers keep being killed is retried, not dead-lettered after three kills
            "BACKEND_REVIEW_MAX_ATTEMPTS": "6",
            "BACKEND_REVIEW_WORKERS": str(self.slots),
            "BACKEND_REVIEW_LOG_REQUESTS": "false",
        }
        return self

    def __exit__(self, *exc: object) -> None:
        for name in list(self.procs):
            self._stop(name)
        assert self.fake is not None
        self.fake.__exit__(None, None, None)
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")

    def _repos(self) -> None:
        fake = self.fake
        assert fake is not None
        n = 0
        for i in range(self.installations):
            inst = fake.add_installation(f"org-{i}")
            for j in range(self.repos_per_installation):
                repo = fake.add_repo(inst, f"org-{i}", f"service-{j}")
                work = init_repo(self.tmp / f"work-{i}-{j}")
                work.commit("service", {"app/__init__.py": "", "README.md": "# service\n"})
                for k in range(self.prs_per_repo):
                    n += 1
                    branch = f"feature-{k}"
                    work.branch(branch, "main")
                    work.checkout(branch)
                    path = f"app/pr{n}_0.py"
                    sha = work.commit("first", {path: defect(f"pr{n}_0")})
                    repo.push(work, "main", branch)
                    pull = fake.add_pull(repo, head_ref=branch, title=f"Change {n}", body="")
                    self.prs.append(FleetPR(pull, work, branch, [(sha, path)]))
                    work.checkout("main")

    # -- processes ----------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> None:
        data = self.tmp / f"data-{name}"
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [str(EXE), *args],
            env={**self.env, "BACKEND_REVIEW_DATA_DIR": str(data)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=self.tmp,
        )
        log.close()
        self.procs[name] = proc

    def start(self) -> None:
        self._spawn("receiver", ["serve", "--workers", "0", "--port", str(self.port)])
        for n in range(self.workers):
            self._spawn(f"worker-{n}", ["worker"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.procs["receiver"].poll() is None, self.log("receiver")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("the receiver did not start")

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-4000:]

    def kill_and_restart(self, rng: random.Random) -> None:
        """SIGKILL one worker process and start a new one in its place (its tokens are never revoked)."""
        name = rng.choice([n for n in self.procs if n.startswith("worker-")])
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert self.fake is not None
        with self.fake.lock:
            self.killed_tokens.update(t.value for t in self.fake.tokens if not t.revoked)
        self.kills += 1
        self._spawn(name, ["worker"])

    def _stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    # -- the burst ----------------------------------------------------------------------------

    def _post(self, client: httpx.Client, delivery: Delivery) -> int:
        headers, body = delivery
        return client.post(f"http://127.0.0.1:{self.port}/webhook", headers=headers, content=body).status_code

    def _push(self, n: int, pr: FleetPR, k: int) -> Delivery:
        assert self.fake is not None
        before = pr.final_head
        pr.work.checkout(pr.branch)
        path = f"app/pr{n}_{k}.py"
        sha = pr.work.commit(f"push {k}", {path: defect(f"pr{n}_{k}")})
        pr.pull.repo.push(pr.work, pr.branch)
        self.fake.update_pull(pr.pull)
        pr.commits.append((sha, path))
        return self.fake.webhook(WEBHOOKS / "synchronize.payload.json", pr=pr.pull, before=before, after=sha)

    def burst(self, pause: float = 0.4) -> int:
        """Deliver every PR's opened event, then ``pushes`` rounds of pushes; returns the posts made."""
        assert self.fake is not None
        rng = random.Random(self.seed)
        sent: list[Delivery] = []
        held: list[Delivery] = []
        posts = 0
        with httpx.Client(timeout=10) as client:
            first = [self.fake.webhook(WEBHOOKS / "opened.payload.json", pr=pr.pull) for pr in self.prs]
            rng.shuffle(first)
            for delivery in first:
                assert self._post(client, delivery) in (200, 202)
                sent.append(delivery)
                posts += 1
            for k in range(1, self.pushes + 1):
                time.sleep(pause)
                batch = [self._push(n, pr, k) for n, pr in enumerate(self.prs, 1)]
                rng.shuffle(batch)
                # a few of this round's deliveries arrive only after the next round's (out of order)
                late = [d for d in batch if rng.random() < 0.3] if k < self.pushes else []
                for delivery in [*[d for d in batch if d not in late], *held]:
                    assert self._post(client, delivery) in (200, 202)
                    sent.append(delivery)
                    posts += 1
                held = late
                for delivery in rng.sample(sent, k=max(1, len(sent) // 8)):  # redeliveries: same id
                    assert self._post(client, delivery) == 200
                    posts += 1
            for delivery in held:
                assert self._post(client, delivery) in (200, 202)
                posts += 1
        return posts

    # -- the end state ------------------------------------------------------------------------

    def unsettled(self) -> list[str]:
        """Why the fleet is not done yet (empty when every final head is reviewed and all is quiet)."""
        assert self.fake is not None
        why = []
        for pr in self.prs:
            heads = [r.commit_id for r in self.fake.reviews_for(pr.pull)]
            if pr.final_head not in heads:
                why.append(f"#{pr.pull.number} of {pr.pull.repo.full_name}: final head not reviewed")
        with self.fake.lock:
            spinning = [c.id for c in self.fake.check_runs.values() if c.status != "completed"]
        if spinning:
            why.append(f"{len(spinning)} check runs not completed")
        live = self.queue_states()
        if live.get("pending") or live.get("running"):
            why.append(f"queue: {live}")
        return why

    def queue_states(self) -> Counter[str]:
        url = self.env["BACKEND_REVIEW_DATABASE_URL"]
        with psycopg.connect(url, autocommit=True) as conn:
            try:
                rows = conn.execute("SELECT state, count(*) FROM review_jobs GROUP BY state").fetchall()
            except psycopg.errors.UndefinedTable:
                return Counter()
        return Counter({str(state): int(count) for state, count in rows})

    def wait_settled(self, timeout: float) -> float:
        started = time.monotonic()
        while True:
            why = self.unsettled()
            if not why:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"not settled after {timeout:.0f} s: {why[:5]}")
            time.sleep(0.2)

    def reviews(self) -> int:
        assert self.fake is not None
        with self.fake.lock:
            return len(self.fake.reviews)


class Chaos:
    """SIGKILL a random worker every ``every`` seconds (and restart it) until stopped."""

    def __init__(self, fleet: Fleet, every: float, seed: int = 1) -> None:
        self._fleet = fleet
        self._every = every
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._fleet.kill_and_restart(self._rng)

    def __enter__(self) -> Chaos:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


__all__ = ["Chaos", "Fleet", "FleetPR", "defect", "free_port"]
