"""deploy/ follows SECURITY.md §4: split secrets, read-only non-root containers, hardened units, git pin."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.settings import PREFIX

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
WORKER_ONLY = {PREFIX + "PRIVATE_KEY", PREFIX + "PRIVATE_KEY_PATH", PREFIX + "MODEL_API_KEY"}
RECEIVER_ONLY = {PREFIX + "WEBHOOK_SECRET", PREFIX + "WEBHOOK_SECRET_PREVIOUS"}


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _unit(name: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / name).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            directives.setdefault(key, []).append(value)
    return directives


def test_k04_receiver_and_worker_hold_disjoint_secrets() -> None:
    services = _compose()["services"]
    receiver, worker = services["receiver"], services["worker"]
    assert receiver["command"] == ["serve", "--workers", "0"]
    assert worker["command"] == ["worker"]
    assert not set(receiver["environment"]) & WORKER_ONLY and "secrets" not in receiver
    assert not set(worker["environment"]) & RECEIVER_ONLY
    assert worker["secrets"] == ["app_private_key"]
    assert receiver["environment"][PREFIX + "DATABASE_URL"] == worker["environment"][PREFIX + "DATABASE_URL"]
    assert worker["environment"][PREFIX + "DATABASE_URL"].startswith("postgresql://")


def test_s11_app_containers_are_read_only_unprivileged_and_capped() -> None:
    compose = _compose()
    for name in ("receiver", "worker"):
        svc = compose["services"][name]
        assert svc["read_only"] is True
        assert svc["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in svc["security_opt"]
        assert svc["user"] == "10001:10001"
        assert isinstance(svc["pids_limit"], int) and svc["mem_limit"]
        mounts = {m.split(":", 1)[0]: m.split(":", 1)[1] for m in svc["tmpfs"]}
        assert re.search(r"size=\d+[kmg]", mounts["/tmp"]) and "/data" not in mounts
    assert compose["networks"]["db"]["internal"] is True
    assert "egress" not in compose["services"]["receiver"]["networks"]


def test_systemd_units_are_hardened() -> None:
    for name in ("backend-review-serve.service", "backend-review-worker.service"):
        unit = _unit(name)
        for key, value in {
            "DynamicUser": "yes",
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "PrivateTmp": "yes",
            "ProtectProc": "invisible",
            "CapabilityBoundingSet": "",
        }.items():
            assert unit.get(key) == [value], (name, key)
        assert unit["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
        assert unit["MemoryMax"] and unit["TasksMax"] and unit["IPAddressDeny"]
    serve, worker = _unit("backend-review-serve.service"), _unit("backend-review-worker.service")
    assert serve["ExecStart"][0].endswith("backend-review serve --workers 0")
    assert serve["IPAddressDeny"] == ["any"]
    assert worker["ExecStart"][0].endswith("backend-review worker")
    assert "link-local" in worker["IPAddressDeny"][0].split()  # 169.254.169.254, instance metadata
    assert worker["LoadCredential"] and f"{PREFIX}PRIVATE_KEY_PATH=%d/app-key.pem" in worker["Environment"]


def test_s01_dockerfile_pins_patched_git_and_runs_unprivileged() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM \S+ AS build$", text, re.M) and re.search(r"^FROM \S+ AS runtime$", text, re.M)
    assert "ARG GIT_MIN_DEBIAN_VERSION=1:2.39.5-0+deb12u3" in text
    assert 'dpkg --compare-versions "$installed" ge "$GIT_MIN_DEBIAN_VERSION"' in text
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["backend-review"\]$', text, re.M)


# tmpfs options both Docker and podman accept (podman rejects uid=, gid= and nr_inodes=; Docker rejects U)
PORTABLE_TMPFS_OPTIONS = {"size", "mode", "rw", "ro", "noexec", "exec", "nosuid", "suid", "nodev", "dev"}


def test_compose_tmpfs_options_work_with_docker_and_podman() -> None:
    for name, svc in _compose()["services"].items():
        for mount in svc.get("tmpfs", []):
            _, _, options = mount.partition(":")
            keys = {option.split("=", 1)[0] for option in options.split(",") if option}
            assert keys <= PORTABLE_TMPFS_OPTIONS, (name, mount)


def test_base_images_are_pinned_by_digest() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    (default,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", default)
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    postgres = _compose()["services"]["postgres"]["image"]
    assert re.fullmatch(r"\$\{POSTGRES_IMAGE:-postgres:16-bookworm@sha256:[0-9a-f]{64}\}", postgres)


def test_image_installs_the_hashed_lock_without_resolving() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install --no-deps --require-hashes -r /src/requirements/lock.txt" in text
    assert "pip install --no-deps /src" in text
    assert "!requirements/lock.txt" in (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")


def test_compose_interpolation_means_the_same_to_docker_and_podman_compose() -> None:
    lines = (DEPLOY / "compose.yaml").read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    # podman-compose leaves ${NAME:-} / ${NAME-} (an empty default) unexpanded: the literal reaches the app
    assert not re.findall(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-\}", text)
    # and every optional ${NAME} is defined (empty) in env.example, so Docker has nothing to warn about
    optional = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
    example = {
        line.split("=", 1)[0] for line in (DEPLOY / "env.example").read_text().splitlines() if "=" in line
    }
    assert optional - {"POSTGRES_PASSWORD"} <= example
