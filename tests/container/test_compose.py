"""deploy/compose.yaml end to end (issue 13): Postgres, a receiver and a worker started by podman-compose
from the unchanged compose file (plus tests/container/compose.e2e.yaml), the worker reaching the fake
GitHub on the host through its egress network: the test creates that network (`<project>_egress`, which
podman-compose then uses as is) on a known subnet, and the fake listens on its gateway address, the
host's side of the bridge (not 0.0.0.0), over https with a throwaway CA the worker is given (plain http
is allowed for loopback git remotes only). A signed pull_request.opened gives exactly one review and a
completed check run; `down` then `up` keeps everything the stack needs (the Postgres volume: the
delivery dedupe, the jobs), and the restarted stack reviews the next push. Driven by `make compose-test`.
"""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bot import demo
from tests.conftest import WEBHOOKS
from tests.container.conftest import podman, wait_for
from tests.container.tls import server_tls
from tests.support.fake_github import FakeGitHub, FakePull
from tests.support.gitrepo import GitRepo, init_repo
from tests.support.waiting import free_port

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / "deploy" / "compose.yaml", Path(__file__).with_name("compose.e2e.yaml")]
OPENED = WEBHOOKS / "pull_request" / "opened.payload.json"
SYNCHRONIZE = WEBHOOKS / "pull_request" / "synchronize.payload.json"


@dataclass
class Stack:
    project: str
    env: dict[str, str]
    url: str
    fake: FakeGitHub
    work: GitRepo
    pull: FakePull
    log: Path
    anonymous: set[str] = field(default_factory=set)

    def compose(self, *args: str, timeout: float = 600) -> None:
        if args[0] == "down":  # podman-compose's down keeps anonymous volumes (the image's VOLUME /data)
            self.anonymous.update(self.volumes())
        files = [arg for f in FILES for arg in ("-f", str(f))]
        with self.log.open("a") as out:
            out.write(f"\n$ podman-compose {' '.join(args)}\n")
            out.flush()
            subprocess.run(
                ["podman-compose", "-p", self.project, *files, *args],
                env=self.env, cwd=ROOT / "deploy", stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                check=True, timeout=timeout,
            )  # fmt: skip

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def post(self, delivery: tuple[dict[str, str], bytes]) -> httpx.Response:
        headers, body = delivery
        return httpx.post(f"{self.url}/api/github/webhooks", headers=headers, content=body, timeout=20)

    def checks(self) -> list[tuple[str, str]]:
        with self.fake.lock:
            return [(c.head_sha, c.status) for c in self.fake.check_runs.values()]

    def volumes(self) -> list[str]:
        ids = podman("ps", "-a", "--quiet", "--filter", f"label=io.podman.compose.project={self.project}")
        if not ids.stdout.split():
            return []
        fmt = '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}'
        return podman("inspect", "--format", fmt, *ids.stdout.split(), check=False).stdout.split()

    def container_logs(self) -> str:
        names = podman("ps", "-a", "--filter", f"label=io.podman.compose.project={self.project}",
                       "--format", "{{.Names}}", check=False).stdout.split()  # fmt: skip
        logs = {n: podman("logs", n, check=False) for n in names}
        return "\n".join(f"--- {n}\n{out.stdout[-3000:]}{out.stderr[-3000:]}" for n, out in logs.items())


def _start_fake(fake: FakeGitHub) -> bool:
    try:
        fake.start()  # the gateway address exists once the stack's first container joined the network
    except OSError:
        return False
    return True


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    project = f"backend-review-e2e-{secrets.token_hex(3)}"
    octet = random.randint(1, 254)  # a subnet unlikely to be taken by a concurrent run
    subnet, gateway = f"10.213.{octet}.0/24", f"10.213.{octet}.1"
    secret = secrets.token_urlsafe(32)
    fake_port = free_port()
    tls, ca_file = server_tls(gateway, tmp_path)
    fake = FakeGitHub(tmp_path / "fake", webhook_secret=secret, host=gateway, port=fake_port, tls=tls)
    inst = fake.add_installation("octo-org")
    repo = fake.add_repo(inst, "octo-org", "orders-service")
    work = init_repo(tmp_path / "work")
    work.commit("orders service", dict(demo.BASE))
    work.branch("feature")
    work.commit(demo.PR_TITLE, dict(demo.PR))
    repo.push(work, "main", "feature")
    pull = fake.add_pull(repo, head_ref="feature", title=demo.PR_TITLE, body=demo.PR_BODY)
    key = tmp_path / "app.pem"
    key.write_text(fake.private_key_pem)
    os.chown(key, 10001, 10001)  # deploy/README.md: readable by the container UID only
    key.chmod(0o400)
    port = free_port()
    env = {
        **os.environ,
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "BACKEND_REVIEW_APP_ID": str(fake.app_id),
        "BACKEND_REVIEW_WEBHOOK_SECRET": secret,
        "APP_PRIVATE_KEY_FILE": str(key),
        "BACKEND_REVIEW_GITHUB_API_URL": f"https://{gateway}:{fake_port}",
        "E2E_CA_FILE": str(ca_file),
        "RECEIVER_PUBLISH_PORT": str(port),
    }
    assert env.get("POSTGRES_IMAGE"), "compose-test.sh names the Postgres stand-in"
    stack = Stack(project, env, f"http://127.0.0.1:{port}", fake, work, pull, tmp_path / "compose.log")
    podman("network", "create", "--subnet", subnet, "--label", f"io.podman.compose.project={project}",
           f"{project}_egress")  # fmt: skip
    try:
        stack.compose("up", "-d", "--no-build")
        wait_for("the egress network's gateway", lambda: _start_fake(fake), timeout=60)
        wait_for("the receiver's /healthz", stack.healthy, timeout=120, on_timeout=[stack.container_logs()])
        yield stack
        logs = stack.container_logs()
        canaries = [secret, env["POSTGRES_PASSWORD"], *(t.value for t in fake.tokens)]
        assert not [c for c in canaries if c in logs], "K-06: a secret reached a container log"
        assert fake.errors == []
    except BaseException:
        print(stack.log.read_text(errors="replace")[-6000:], stack.container_logs(), sep="\n")
        raise
    finally:
        try:
            stack.compose("down", "--volumes", timeout=300)
            for volume in stack.anonymous:
                podman("volume", "rm", "--force", volume, check=False)
        finally:
            fake.stop()
            networks = podman(
                "network", "ls", "--quiet", "--filter", f"label=io.podman.compose.project={project}"
            )
            for network in networks.stdout.split():
                podman("network", "rm", "--force", network, check=False)


def test_opened_review_then_down_and_up_keeps_the_queue(stack: Stack) -> None:
    fake, pull = stack.fake, stack.pull
    delivery = fake.webhook(OPENED, pr=pull)
    first = stack.post(delivery)
    assert first.status_code == 202, first.text
    more = [stack.container_logs()]
    wait_for("the review", lambda: fake.reviews_for(pull), timeout=300, on_timeout=more)
    wait_for("a completed check run", lambda: stack.checks() == [(pull.head_sha, "completed")], timeout=120)
    time.sleep(3)  # a duplicate job would have run by now
    (review,) = fake.reviews_for(pull)
    assert review.commit_id == pull.head_sha and review.comments  # the offline rules' findings
    (check,) = fake.check_runs.values()
    assert check.conclusion == "neutral" and check.annotations

    # down keeps the named Postgres volume: the next up still knows this delivery (W-04) ...
    stack.compose("down")
    stack.compose("up", "-d", "--no-build")
    wait_for(
        "the receiver's /healthz after up", stack.healthy, timeout=120, on_timeout=[stack.container_logs()]
    )
    again = stack.post(delivery)
    assert again.status_code == 200, again.text  # a duplicate, not a new job
    # ... and the restarted worker reviews the next push
    before = pull.head_sha
    stack.work.checkout("feature")
    stack.work.commit("paginate users", {"app/pagination.py": "PAGE_SIZE = 50\n"})
    pull.repo.push(stack.work, "feature")
    fake.update_pull(pull)
    pushed = stack.post(fake.webhook(SYNCHRONIZE, pr=pull, before=before, after=pull.head_sha))
    assert pushed.status_code == 202, pushed.text
    wait_for(
        "the new head's check run to complete",
        lambda: (pull.head_sha, "completed") in stack.checks(),
        timeout=300,
        on_timeout=[stack.container_logs()],
    )
    time.sleep(3)
    assert sorted(stack.checks()) == sorted([(before, "completed"), (pull.head_sha, "completed")])
    assert [r.commit_id for r in fake.reviews_for(pull)].count(before) == 1
