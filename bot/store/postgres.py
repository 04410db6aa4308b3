"""The Postgres store: ONE connection pool per store, shared by the queue and the ledger.

The pool opens lazily (on the first call, inside the caller's event loop) and migrates the schema
before anyone uses it, under the advisory lock the queue's ``claim`` takes, so that processes starting
at once, and releases before the store (which took the same lock to create their schema), migrate one
at a time.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from bot.store.migrations import POSTGRES, SCHEMA_MIGRATIONS, Migration, SchemaTooNewError, pending

ADVISORY_LOCK = 0x6272_636C_6169_6D  # "brclaim": the global claim lock's key, also held while migrating

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


async def recorded_version(conn: AsyncConnection[Any]) -> int:
    """The schema version on record; 0 for an empty or an unversioned database."""
    cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    row = await cur.fetchone()
    if row is None or not row[0]:
        return 0
    cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(conn: AsyncConnection[Any], migrations: tuple[Migration, ...] = POSTGRES) -> None:
    """Apply every migration above the recorded version, one transaction each, under the lock."""
    for migration in pending(await recorded_version(conn), migrations):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK,))
            # Read again under the lock, after a statement that locks the table: an advisory lock does
            # not refresh the catalog snapshot, so to_regclass could still miss a table just created.
            await conn.execute(SCHEMA_MIGRATIONS)
            cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
            row = await cur.fetchone()
            if migration not in pending(int(row[0]) if row else 0, migrations):
                continue  # another process applied it while we waited for the lock
            for statement in migration.sql:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                (migration.version, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
            )


class PgPool:
    """The store's pool: opened, and the schema migrated, on first use; closed with the store."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 16,
        migrations: tuple[Migration, ...] = POSTGRES,
    ) -> None:
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"invalid schema name: {schema!r}")
        self._dsn = dsn
        self._schema = schema
        self._min_size = min_size
        self._max_size = max_size
        self._migrations = migrations
        self._pool: AsyncConnectionPool | None = None
        self._opening = asyncio.Lock()
        self._closed = False
        self._refused: SchemaTooNewError | None = None

    async def get(self) -> AsyncConnectionPool:
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                if self._closed:
                    raise RuntimeError("store is closed")
                if self._refused is not None:  # a newer database stays newer: no reconnecting per call
                    raise SchemaTooNewError(self._refused.recorded, self._refused.known)
                # autocommit: a lone statement (br_enqueue, reads) is its own transaction, one round trip.
                kwargs: dict[str, Any] = {"autocommit": True}
                if self._schema is not None:
                    kwargs["options"] = f"-c search_path={self._schema}"
                pool = AsyncConnectionPool(
                    self._dsn, kwargs=kwargs, min_size=self._min_size, max_size=self._max_size, open=False
                )
                await pool.open(wait=True)
                try:
                    async with pool.connection() as conn:
                        await migrate(conn, self._migrations)
                except BaseException as exc:
                    await pool.close()
                    if isinstance(exc, SchemaTooNewError):
                        self._refused = exc
                    raise
                self._pool = pool
        return self._pool

    def stats(self) -> dict[str, int]:
        """psycopg_pool's counters (``connections_num``: connections opened so far), {} before opening."""
        return self._pool.get_stats() if self._pool is not None else {}

    async def close(self) -> None:
        self._closed = True
        async with self._opening:
            if self._pool is not None:
                await self._pool.close()
                self._pool = None


__all__ = ["ADVISORY_LOCK", "PgPool", "migrate", "recorded_version"]
