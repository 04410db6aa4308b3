"""Durable review queues: ``open_queue("sqlite:///path/queue.db")`` or ``open_queue("postgresql://…")``."""

from __future__ import annotations

from bot.queue.base import (
    ClaimedJob,
    EnqueueOutcome,
    EnqueueResult,
    JobRecord,
    JobState,
    ReviewQueue,
)


def open_queue(database_url: str) -> ReviewQueue:
    """The queue behind ``database_url``; backends connect lazily (Postgres) or at once (SQLite).

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (SQLAlchemy's convention) or
    ``postgresql://user@host:port/db`` (also ``postgres://``; libpq parameters such as
    ``?options=-csearch_path%3Dname`` pass through).
    """
    scheme, sep, rest = database_url.partition("://")
    if sep and scheme == "sqlite":
        from bot.queue.sqlite import SQLiteQueue

        path = rest.removeprefix("/")
        if not path:
            raise ValueError("sqlite URL has no path: use sqlite:///path/to/queue.db")
        return SQLiteQueue(path)
    if sep and scheme in ("postgresql", "postgres"):
        # Imported here: the embedded default never loads psycopg.
        from bot.queue.postgres import PostgresQueue

        return PostgresQueue(database_url)
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:///… or postgresql://…")


__all__ = [
    "ClaimedJob",
    "EnqueueOutcome",
    "EnqueueResult",
    "JobRecord",
    "JobState",
    "ReviewQueue",
    "open_queue",
]
