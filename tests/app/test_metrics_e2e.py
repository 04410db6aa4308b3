"""Issue 10 item 1: `/metrics` on the receiver and on a separate `worker`, scraped around a real review.

`serve --workers 0` receives; one `worker` process (its metrics on BACKEND_REVIEW_METRICS_PORT) reviews
against the fake GitHub and the scripted model. Both endpoints are scraped before and after, and the
counters that the review must move are checked (with the official exposition-format parser).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.app.conftest import OPENED_FIXTURE
from tests.app.test_e2e import E2E, EXE, _model_script, e2e
from tests.support.waiting import free_port, wait_for

__all__ = ["e2e"]  # the fixture, shared with test_e2e

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every label set that contains ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


@pytest.fixture
def worker(e2e: E2E) -> Iterator[int]:
    port = free_port()
    env = dict(e2e.serve.env, BACKEND_REVIEW_METRICS_PORT=str(port), BACKEND_REVIEW_WORKERS="1")
    with e2e.serve.log.open("ab") as err:
        proc = subprocess.Popen(
            [str(EXE), "worker"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            cwd=e2e.serve.log.parent,
        )
    e2e.serve.procs.append(proc)  # stopped, and its log checked for secrets, by the e2e fixture

    def healthy() -> bool:
        assert proc.poll() is None, e2e.serve.log.read_text()[-3000:]
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for("the worker's /healthz", healthy, timeout=20)
    yield port


def test_metrics_on_receiver_and_worker_move_after_a_real_review(e2e: E2E, worker: int) -> None:
    e2e.model.play(_model_script())
    e2e.serve.start(workers=0)
    receiver_url, worker_url = f"{e2e.serve.url}/metrics", f"http://127.0.0.1:{worker}/metrics"
    before_r, before_w = scrape(receiver_url), scrape(worker_url)

    delivery = e2e.fake.webhook(OPENED_FIXTURE, pr=e2e.pull)
    assert e2e.serve.post(delivery).status_code == 202
    assert e2e.serve.post(delivery).status_code == 200  # the redelivery: a duplicate
    wait_for("the review", lambda: e2e.fake.reviews_for(e2e.pull))
    wait_for("the check run to complete", lambda: e2e.check_runs() == ["completed"])
    wait_for("every token revoked", e2e.idle)
    wait_for(
        "the job to be recorded",
        lambda: value(scrape(worker_url), "backend_review_jobs_finished_total", result="done") >= 1,
    )
    after_r, after_w = scrape(receiver_url), scrape(worker_url)

    # receiver: deliveries by event and outcome, enqueue latency, queue depth by state and lane
    d = "backend_review_deliveries_total"
    created = dict(event="pull_request", outcome="accepted", status="202")
    assert value(after_r, d, **created) - value(before_r, d, **created) == 1
    assert (
        total(after_r, d, event="pull_request", status="200")
        - total(before_r, d, event="pull_request", status="200")
        == 1
    )
    assert (
        value(after_r, "backend_review_enqueue_seconds_count")
        - value(before_r, "backend_review_enqueue_seconds_count")
        == 2
    )
    assert ("backend_review_queue_jobs", (("lane", "automatic"), ("state", "pending"))) in after_r

    # worker: phases, the review and its findings, model tokens and cost, rate limit, job results
    for phase in ("fetch", "checkout", "rules", "model", "publish"):
        name = "backend_review_job_phase_seconds_count"
        assert value(after_w, name, phase=phase) - value(before_w, name, phase=phase) >= 1, phase
    assert (
        value(after_w, "backend_review_reviews_posted_total")
        - value(before_w, "backend_review_reviews_posted_total")
        == 1
    )
    (review,) = e2e.fake.reviews_for(e2e.pull)
    assert total(after_w, "backend_review_findings_posted_total") >= len(review.comments) > 0
    tokens = total(after_w, "backend_review_model_tokens_total", installation="other")
    assert tokens > 0 and tokens == total(after_w, "backend_review_model_tokens_total")  # bounded label
    assert total(after_w, "backend_review_model_cost_usd_total", installation="other") > 0
    remaining = value(after_w, "backend_review_github_rate_limit_remaining", installation="other")
    assert 0 < remaining < 5000
    assert value(after_w, "backend_review_jobs_finished_total", result="done") == 1
    assert value(after_w, "backend_review_job_retries_total") == 0
    assert value(after_w, "backend_review_jobs_dead_lettered_total") == 0
    assert value(after_w, "backend_review_queue_jobs", state="running", lane="automatic") == 0

    health = httpx.get(f"http://127.0.0.1:{worker}/healthz", timeout=5)
    assert health.status_code == 200 and health.text == "ok\n"
    assert httpx.get(f"http://127.0.0.1:{worker}/nope", timeout=5).status_code == 404
