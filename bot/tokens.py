"""The job's token broker: one read and one write installation token per job (K-02).

Each is minted on first use, reused for the rest of the job, and both are revoked when the job ends,
on success, failure or cancellation. Before this broker a normal review minted and revoked four
tokens (a session per step); now it mints at most two.
"""

from __future__ import annotations

import contextlib
from types import TracebackType

from bot.github import GitHubApp, GitHubClient
from bot.models import ReviewJob


class JobTokens:
    """``read()`` for fetching (PR state, config, permission, the clone); ``write()`` for publishing."""

    def __init__(self, app: GitHubApp, job: ReviewJob) -> None:
        self._app = app
        self._job = job
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[bool, GitHubClient] = {}

    async def read(self) -> GitHubClient:
        return await self._client(write=False)

    async def write(self) -> GitHubClient:
        return await self._client(write=True)

    async def _client(self, *, write: bool) -> GitHubClient:
        client = self._clients.get(write)
        if client is None:
            session = self._app.installation_session(self._job, write=write)
            client = self._clients[write] = await self._stack.enter_async_context(session)
        return client

    async def __aenter__(self) -> JobTokens:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._clients.clear()
        await self._stack.aclose()  # revokes every token this job minted


__all__ = ["JobTokens"]
