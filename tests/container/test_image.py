"""The built image, run as compose runs it: read-only, no capabilities, no-new-privileges, a tmpfs /tmp,
the image's own UID 10001 (SECURITY.md §4, S-11; issue 13). `serve` keeps its SQLite queue in a volume
at /data (the image's VOLUME, owned by UID 10001). Driven by `make image-test`."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import WEBHOOKS
from tests.container.conftest import IMAGE, podman, wait_for
from tests.support.fake_github import FakeGitHub
from tests.support.waiting import free_port

pytestmark = pytest.mark.timeout(180)

HARDENED = [
    "--read-only",
    "--read-only-tmpfs=false",  # podman adds writable /run and /var/tmp otherwise; Docker does not
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--tmpfs=/tmp:size=16m,mode=1777",
    "--pids-limit=128",
]
OPENED = WEBHOOKS / "pull_request" / "opened.payload.json"

# Run inside the container as its user: every directory where a new file can be created, and every
# existing file that can be opened for writing (pseudo filesystems aside).
PROBE = r"""
import json, os
PSEUDO = ("/proc", "/sys", "/dev")
writable = []
for top, dirs, files in os.walk("/", onerror=None):
    if top.startswith(PSEUDO):
        dirs[:] = []
        continue
    probe = os.path.join(top, ".write-probe-%d" % os.getpid())
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError:
        pass
    else:
        os.unlink(probe)
        writable.append(top)
    for name in files:
        path = os.path.join(top, name)
        if not os.path.islink(path) and os.access(path, os.W_OK):
            writable.append(path)
print(json.dumps(writable))
"""


@dataclass
class Running:
    name: str
    url: str
    secret: str
    signer: FakeGitHub  # not started: only its signed fixture deliveries are used


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    secret = secrets.token_urlsafe(32)
    signer = FakeGitHub(tmp_path_factory.mktemp("signer"), webhook_secret=secret)
    name = f"backend-review-smoke-{secrets.token_hex(4)}"
    port = free_port()
    podman(
        "run", "--detach", "--name", name, *HARDENED, "--volume", f"{name}:/data",
        "--publish", f"127.0.0.1:{port}:3000",
        "--env", f"BACKEND_REVIEW_WEBHOOK_SECRET={secret}", "--env", "BACKEND_REVIEW_APP_ID=4242",
        IMAGE, "serve", "--workers", "0",
    )  # fmt: skip
    running = Running(name, f"http://127.0.0.1:{port}", secret, signer)

    def healthy() -> bool:
        state = podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
        assert state == "true", podman("logs", name, check=False).stderr[-3000:]
        try:
            return httpx.get(f"{running.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for("GET /healthz", healthy, timeout=60)
        yield running
    finally:
        logs = podman("logs", name, check=False)
        podman("rm", "--force", "--time", "5", name, check=False)
        podman("volume", "rm", "--force", name, check=False)
        assert secret not in logs.stdout + logs.stderr, "K-06: the webhook secret reached the log"


def test_help_runs_in_the_hardened_container() -> None:
    out = podman("run", "--rm", *HARDENED, IMAGE, "--help")
    assert "usage: backend-review" in out.stdout


def test_healthz_and_only_signed_webhooks_are_accepted(server: Running) -> None:
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    headers, body = server.signer.webhook(OPENED)
    url = f"{server.url}/api/github/webhooks"
    signed = httpx.post(url, headers=headers, content=body, timeout=10)
    assert 200 <= signed.status_code < 300, signed.text
    unsigned = {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}
    assert httpx.post(url, headers=unsigned, content=body, timeout=10).status_code == 401
    forged = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}
    assert httpx.post(url, headers=forged, content=body, timeout=10).status_code == 401


def test_s11_runs_as_uid_10001_without_capabilities_or_new_privileges(server: Running) -> None:
    lines = podman("exec", server.name, "cat", "/proc/1/status").stdout.splitlines()
    status = dict(line.split(":", 1) for line in lines)
    assert status["Uid"].split() == ["10001"] * 4 and status["Gid"].split() == ["10001"] * 4
    assert all(int(status[cap], 16) == 0 for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb"))
    assert status["NoNewPrivs"].strip() == "1"
    assert "backend-review" in podman("exec", server.name, "cat", "/proc/1/cmdline").stdout


def test_s11_writes_nothing_outside_its_tmpfs_and_data_volume(server: Running) -> None:
    writable: list[str] = json.loads(podman("exec", server.name, "python", "-c", PROBE).stdout)
    assert "/tmp" in writable and "/data" in writable  # both work for UID 10001
    outside = [p for p in writable if not p.startswith(("/tmp/", "/data/")) and p not in ("/tmp", "/data")]
    assert outside == []
    mounts = podman("exec", server.name, "cat", "/proc/self/mounts").stdout.splitlines()
    fstype = {m.split()[1]: m.split()[2] for m in mounts}
    assert fstype["/tmp"] == "tmpfs" and "/data" in fstype  # a volume
    assert any(m.split()[1] == "/" and "ro" in m.split()[3].split(",") for m in mounts)
