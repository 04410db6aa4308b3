"""`backend-review serve`, `worker` and `setup`: wiring settings, queue, GitHub, model and workers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from bot import metrics
from bot.checkout import check_git_version, git_env
from bot.errors import UsageError
from bot.ledger import TokenLedger
from bot.log import configure, get_logger
from bot.queue import ReviewQueue
from bot.settings import Settings, app_manifest
from bot.store import open_store

if TYPE_CHECKING:  # the worker side (githubkit, job code) stays out of a receiver-only process
    from bot.agent.providers import Provider
    from bot.manifest import CreatedApp
    from bot.worker import Worker

log = get_logger("bot.app")


def provider_factory(settings: Settings) -> Provider | None:
    """A fresh provider per job (its HTTP client is closed when the job ends), or None when offline."""
    from bot.model_choice import resolve

    choice = resolve(settings)
    return choice.provider() if choice else None


@dataclass
class Runtime:
    settings: Settings
    queue: ReviewQueue
    ledger: TokenLedger
    worker: Worker | None


def _git_warning() -> None:
    try:
        # K-03: the same scratch-built environment as every other git call, never os.environ
        out = subprocess.run(
            ["git", "--version"], capture_output=True, text=True, timeout=10, check=False, env=git_env()
        )
    except OSError:
        log.error("git is not installed")
        return
    warning = check_git_version(out.stdout)
    if warning:
        log.warning("git version", detail=warning)


@contextlib.asynccontextmanager
async def runtime(settings: Settings, *, workers: int) -> AsyncIterator[Runtime]:
    store = open_store(settings.database_url, settings.data_dir)
    try:
        worker = _build_worker(settings, store.queue, store.ledger, workers) if workers > 0 else None
        yield Runtime(settings, store.queue, store.ledger, worker)
    finally:
        await store.close()


def _check_model(settings: Settings) -> None:
    """Fail at start-up, not in the first job, on a bad model setting (without opening a client)."""
    from bot.model_choice import resolve

    resolve(settings)


def _build_worker(settings: Settings, queue: ReviewQueue, ledger: TokenLedger, workers: int) -> Worker:
    from bot.agent.runner import AgentBudgets
    from bot.github import GitHubApp
    from bot.jobs import JobDeps, JobLimits, ReviewJobRunner
    from bot.repocache import RepoCache
    from bot.worker import Worker, WorkerConfig

    settings.require_app()
    assert settings.private_key is not None
    _check_model(settings)
    app = GitHubApp(
        private_key=settings.private_key.get(),
        app_id=settings.app_id,
        client_id=settings.client_id,
        base_url=settings.github_api_url,
    )
    runner = ReviewJobRunner(
        JobDeps(
            github=app,
            ledger=ledger,
            provider_factory=lambda: provider_factory(settings),
            limits=JobLimits(
                max_files=settings.max_files,
                max_changed_lines=settings.max_changed_lines,
                max_diff_bytes=settings.max_diff_bytes,
                daily_token_budget=settings.daily_token_budget,
                max_attempts=settings.max_attempts,
            ),
            budgets=AgentBudgets(max_total_tokens=settings.max_tokens_per_review),
            git_base_url=settings.git_base_url,
            repo_cache=RepoCache(settings.data_dir / "repos", settings.repo_cache_bytes, evict_interval=30)
            if settings.repo_cache_bytes > 0
            else None,
            lease_check=lambda claimed: queue.heartbeat(claimed, settings.lease_seconds),
        )
    )
    return Worker(
        queue,
        runner,
        on_dead=runner.on_dead,
        config=WorkerConfig(
            concurrency=workers,
            max_attempts=settings.max_attempts,
            lease_seconds=settings.lease_seconds,
            grace_seconds=settings.drain_seconds,
        ),
    )


def _settings(environ: Mapping[str, str], args: argparse.Namespace) -> Settings:
    settings = Settings.from_env(environ)
    overrides: dict[str, object] = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
    if getattr(args, "workers", None) is not None:
        overrides["workers"] = args.workers
    settings = replace(settings, **overrides)  # type: ignore[arg-type]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    configure(settings.log_level)
    for warning in settings.warnings:
        log.warning("settings", detail=warning)
    return settings


class WorkerThread:
    """The review workers of `serve`, on their own thread and a stdlib asyncio loop.

    uvloop (libuv) starts children with fork(), which blocks its loop ~12 ms in a process this size;
    CPython's loop uses vfork. Every review starts git and rg several times, so the workers get the
    stdlib loop and the receiver keeps uvloop + httptools, answering webhooks while reviews run. The
    worker side opens its own queue handle: a Postgres pool belongs to the loop that first used it.
    """

    def __init__(self, settings: Settings, workers: int) -> None:
        self._settings = settings
        self._workers = workers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._worker: Worker | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="review-workers", daemon=True)

    def start(self) -> None:
        """Start and wait until the workers run; a configuration error is raised here, in the caller."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def notify(self) -> None:
        """Called on the receiver's loop after an enqueue: wake an idle worker slot now."""
        if self._loop is not None and self._worker is not None:
            self._loop.call_soon_threadsafe(self._worker.notify)

    def stop(self) -> None:
        """Stop claiming, let running reviews finish within the grace period, and join."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # the thread's end: report it to start() or the log
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
            else:
                log.error("review workers stopped", exc_info=True)

    async def _run(self) -> None:
        async with runtime(self._settings, workers=self._workers) as rt:
            assert rt.worker is not None
            self._loop, self._stop, self._worker = asyncio.get_running_loop(), asyncio.Event(), rt.worker
            self._ready.set()
            await rt.worker.run(self._stop)


RECEIVER_SHUTDOWN_SECONDS = 5.0
"""On a stop, how long in-flight webhook requests may take before `serve` closes them (then the drain)."""


async def _serve(settings: Settings) -> None:
    import uvicorn

    from bot.server import create_app, uvicorn_config

    class Server(uvicorn.Server):
        """uvicorn's server without its signal handling: after its own shutdown uvicorn re-raises the
        stop signal, which killed `serve` (status -15) before its workers drained. `_serve` handles
        the signals instead, for the whole shutdown."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    settings.require_serve()
    if settings.workers > 0:
        _require_reviewing(settings)  # a missing setting is the only line printed, before any warning
    _git_warning()
    metrics.enable(settings.metrics_installations)  # /metrics on the receiver (and its review workers)
    workers = WorkerThread(settings, settings.workers) if settings.workers > 0 else None
    if workers is not None:
        await asyncio.to_thread(workers.start)
    store = open_store(settings.database_url, settings.data_dir)
    loop = asyncio.get_running_loop()
    try:
        app = create_app(settings, store.queue, on_enqueued=workers.notify if workers else None)
        server = Server(uvicorn_config(app, settings, timeout_graceful_shutdown=RECEIVER_SHUTDOWN_SECONDS))

        def on_signal(sig: signal.Signals) -> None:
            log.info("stopping", signal=sig.name, drain_seconds=settings.drain_seconds)
            server.should_exit = True  # stop accepting; then the workers drain (finally below)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        log.info(
            "serving",
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            model=settings.model or "offline",
        )
        await server.serve()
    finally:
        if workers is not None:
            await asyncio.to_thread(workers.stop)
        await store.close()
        log.info("stopped")


def run_serve(args: argparse.Namespace) -> int:
    import uvloop

    settings = _settings(os.environ, args)
    uvloop.run(_serve(settings))  # the receiver: uvloop + httptools (the workers run on their own loop)
    return 0


def _require_reviewing(settings: Settings) -> None:
    settings.require_app()
    _check_model(settings)


async def _work(settings: Settings) -> None:
    _require_reviewing(settings)  # a missing setting is the only line printed, before any warning
    _git_warning()
    async with runtime(settings, workers=max(1, settings.workers)) as rt:
        assert rt.worker is not None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("worker process started", workers=settings.workers, model=settings.model or "offline")
        metrics.enable(settings.metrics_installations)
        endpoint = None
        if settings.metrics_port:  # the worker's /metrics and /healthz on its own small port
            endpoint = await metrics.serve_http(
                settings.host, settings.metrics_port, rt.queue, lambda: not stop.is_set()
            )
            log.info("worker metrics", host=settings.host, port=settings.metrics_port)
        try:
            await rt.worker.run(stop)
        finally:
            if endpoint is not None:
                endpoint.close()


def run_worker(args: argparse.Namespace) -> int:
    settings = _settings(os.environ, args)
    asyncio.run(_work(settings))  # the stdlib loop: see WorkerThread on why not uvloop
    return 0


def run_setup(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    from bot.setup_flow import api_url_for

    env = os.environ if environ is None else environ
    github_url = args.github_url or env.get("BACKEND_REVIEW_GITHUB_URL") or "https://github.com"
    api = env.get("BACKEND_REVIEW_GITHUB_API_URL") or api_url_for(github_url)
    if args.manifest:
        if not args.url:
            raise UsageError("--manifest needs --url: the public https base URL GitHub sends webhooks to")
        json.dump(app_manifest(args.url), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if args.code:
        from bot.manifest import fetch_credentials, write_credentials

        created = write_credentials(asyncio.run(fetch_credentials(api, args.code)), Path(args.dir), api)
    else:
        created = asyncio.run(_setup_in_browser(args, github_url, api))
    print(
        f"Created the GitHub App {created.slug} (id {created.app_id}).\n"
        f"Wrote {created.key_path} and {created.env_path} (readable by you only).\n"
        f"Next: install it ({created.html_url}/installations/new), then run\n"
        f"  set -a; . {created.env_path}; set +a; backend-review serve"
    )
    return 0


async def _setup_in_browser(args: argparse.Namespace, github_url: str, api: str) -> CreatedApp:
    from bot.setup_flow import SetupFlow, run_setup_server

    if args.url:
        app_manifest(args.url)  # a bad --url fails here, not in the browser
    flow = SetupFlow(
        manifest_for=app_manifest,
        github_url=github_url,
        api_url=api,
        dest=Path(args.dir),
        public_url=args.url,
        org=args.org,
    )

    def ready(url: str) -> None:
        print(
            f'Open {url} in a browser signed in to {github_url} and click "Register GitHub App".\n'
            f"Waiting for GitHub to send you back (Ctrl-C to stop)…",
            flush=True,
        )
        if args.open:
            import webbrowser

            webbrowser.open(url)

    return await run_setup_server(flow, port=args.port, wait_seconds=args.timeout, on_ready=ready)
