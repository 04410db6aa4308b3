"""Reviews per minute of a fleet on Postgres: one receiver and 1 or 3 `worker` processes.

Run: ``.venv/bin/python -m bench fleet`` (``BR_BENCH_FLEET_PRS`` pull requests per installation,
default 4; 3 installations). The harness is the fleet test's (``tests.support.fleet``): real
subprocesses, the fake GitHub over loopback (its git smart HTTP included), offline rules (no model),
each worker process with 2 slots. Every PR is opened and pushed twice within ~1 s, with redeliveries
and out-of-order deliveries; the clock runs from the first delivery until every final head is
reviewed and the queue is empty. No kills here (the test does that). Needs Postgres on
127.0.0.1:5432 (``BR_TEST_POSTGRES`` overrides the DSN).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import psycopg

from tests.support.fleet import PG_DSN, Fleet


def _run(workers: int, prs_per_repo: int) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="br-fleet-") as tmp,
        Fleet(Path(tmp), workers=workers, prs_per_repo=prs_per_repo) as fleet,
    ):
        fleet.start()
        time.sleep(2.0)  # the workers' start-up is not part of the figure
        started = time.monotonic()
        posts = fleet.burst()
        fleet.wait_settled(timeout=600)
        seconds = time.monotonic() - started
        reviews = fleet.reviews()
        states = fleet.queue_states()
        print(
            f"workers={workers} (x2 slots)  prs={len(fleet.prs)}  deliveries={posts}  "
            f"jobs={sum(states.values())} (done {states.get('done', 0)})  reviews={reviews}  "
            f"{seconds:.1f} s  {reviews / seconds * 60:.0f} reviews/min",
            flush=True,
        )


def main() -> None:
    try:
        psycopg.connect(PG_DSN, connect_timeout=2).close()
    except psycopg.OperationalError:
        print(f"fleet  skipped: {PG_DSN} unreachable")
        return
    prs = int(os.environ.get("BR_BENCH_FLEET_PRS", "4"))
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for workers in (1, 3):
        _run(workers, prs)


if __name__ == "__main__":
    main()
