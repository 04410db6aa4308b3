"""Issue 10.4 / 9: a fleet on Postgres that survives kill -9.

One receiver and three `worker` processes on one fresh database; 9 PRs in 3 installations, each opened
and pushed twice, with redeliveries and out-of-order synchronize deliveries; a worker is SIGKILLed
and restarted every ~1.5 s during the burst. At the end: exactly one review per PR's final head, which
covers every file changed since the PR's previous review (or the whole PR), no head reviewed twice,
every check run completed, nothing pending or running, no GitHub error (422) on the way.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from tests.support.fleet import PG_DSN, Chaos, Fleet

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def _postgres() -> None:
    try:
        psycopg.connect(PG_DSN, connect_timeout=2).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"Postgres unreachable at {PG_DSN}: {exc}")


def test_fleet_on_postgres_survives_sigkill(tmp_path: Path) -> None:
    with Fleet(tmp_path, workers=3) as fleet:
        fleet.start()
        with Chaos(fleet, every=1.5):
            posts = fleet.burst()
            time.sleep(6)  # the kills go on while the backlog drains
        fleet.wait_settled(timeout=60)
        assert fleet.kills >= 3 and posts >= 30
        fake = fleet.fake
        assert fake is not None
        assert fake.errors == []
        for pr in fleet.prs:
            reviews = sorted(fake.reviews_for(pr.pull), key=lambda r: r.id)
            heads = Counter(r.commit_id for r in reviews)
            assert heads[pr.final_head] == 1, f"#{pr.pull.number}: {heads}"
            assert max(heads.values()) == 1, f"#{pr.pull.number}: a head reviewed twice: {heads}"
            final = reviews[-1]
            assert final.commit_id == pr.final_head
            shas = [sha for sha, _ in pr.commits]
            since = shas.index(reviews[-2].commit_id) + 1 if len(reviews) > 1 else 0
            expected = {path for _, path in pr.commits[since:]}
            covered = {str(c["path"]) for c in final.comments}
            assert expected <= covered, f"#{pr.pull.number}: {sorted(expected - covered)} not reviewed"
        with fake.lock:
            assert {c.status for c in fake.check_runs.values()} == {"completed"}
        states = fleet.queue_states()
        assert not states.get("pending") and not states.get("running")
        with fake.lock:  # K-02: every token a live process minted was revoked
            assert all(t.revoked or t.value in fleet.killed_tokens for t in fake.tokens)
