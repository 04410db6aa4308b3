"""The store: one database for the queue and the token ledger, with a versioned schema.

``open_store("sqlite:///path/queue.sqlite3", data_dir)`` or ``open_store("postgresql://…", data_dir)``.
Everything that opens a database connection lives in this package: one SQLite writer connection
(``sqlite.connect``) or one Postgres pool (``postgres.PgPool``) per store, shared by the queue and the
ledger, migrated (``migrations``) before first use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bot.ledger import TokenLedger
from bot.queue.base import ReviewQueue
from bot.store.migrations import SchemaTooNewError


@dataclass(frozen=True, slots=True)
class Store:
    queue: ReviewQueue
    ledger: TokenLedger
    _close: Callable[[], Awaitable[None]]

    async def close(self) -> None:
        await self.ledger.close()
        await self.queue.close()
        await self._close()


async def _nothing() -> None:
    return None


def open_store(database_url: str, data_dir: Path) -> Store:
    """The store behind ``database_url``; Postgres connects lazily, SQLite at once.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (SQLAlchemy's convention) or
    ``postgresql://user@host:port/db`` (also ``postgres://``; libpq parameters such as
    ``?options=-csearch_path%3Dname`` pass through). With SQLite, a ledger file of an earlier release
    in ``data_dir`` is imported into the store once. Raises :class:`SchemaTooNewError` for a database
    written by a newer release.
    """
    scheme, sep, rest = database_url.partition("://")
    if sep and scheme == "sqlite":
        from bot.store.ledger import SQLiteLedger
        from bot.store.sqlite import import_legacy_ledger
        from bot.store.sqlite_queue import SQLiteQueue

        path = rest.removeprefix("/")
        if not path:
            raise ValueError("sqlite URL has no path: use sqlite:///path/to/queue.db")
        import_legacy_ledger(path, data_dir)
        queue = SQLiteQueue(path)
        return Store(queue, SQLiteLedger(queue), _nothing)
    if sep and scheme in ("postgresql", "postgres"):
        # Imported here: the embedded default never loads psycopg.
        from bot.store.ledger import PostgresLedger
        from bot.store.postgres import PgPool
        from bot.store.postgres_queue import PostgresQueue

        pool = PgPool(database_url)
        return Store(PostgresQueue(pool), PostgresLedger(pool), pool.close)
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:///… or postgresql://…")


__all__ = ["SchemaTooNewError", "Store", "open_store"]
