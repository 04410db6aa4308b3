"""The token ledger's backends, in the store's database (see ``bot.ledger`` for what it counts).

SQLite: the ``token_usage`` table of the queue's file, on the queue's writer thread (one connection per
store). Postgres: the store's pool.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from bot.ledger import utc_day

if TYPE_CHECKING:  # the embedded default never loads psycopg
    from bot.store.postgres import PgPool
    from bot.store.sqlite_queue import SQLiteQueue


class SQLiteLedger:
    def __init__(self, source: SQLiteQueue | str | Path) -> None:
        """On the store's writer thread, or (given a path) on a writer of its own that ``close`` stops."""
        from bot.store.sqlite_queue import SQLiteQueue

        self._owns_queue = not isinstance(source, SQLiteQueue)
        self._queue = source if isinstance(source, SQLiteQueue) else SQLiteQueue(source)

    async def spent(self, installation: int) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT tokens FROM token_usage WHERE installation=? AND day=?", (installation, utc_day())
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._queue._submit(op)

    async def add(self, installation: int, tokens: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO token_usage (installation, day, tokens) VALUES (?, ?, ?) "
                "ON CONFLICT (installation, day) DO UPDATE SET tokens = tokens + excluded.tokens",
                (installation, utc_day(), max(0, tokens)),
            )

        await self._queue._submit(op)

    async def claim_notice(self, installation: int) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "INSERT INTO token_usage (installation, day) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (installation, utc_day()),
            )
            cur = conn.execute(
                "UPDATE token_usage SET noticed=1 WHERE installation=? AND day=? AND noticed=0",
                (installation, utc_day()),
            )
            return cur.rowcount == 1

        return await self._queue._submit(op)

    async def has_budget(self, installation: int, daily_budget: int) -> bool:
        return await self.spent(installation) < daily_budget

    async def close(self) -> None:
        if self._owns_queue:
            await self._queue.close()


class PostgresLedger:
    def __init__(self, source: PgPool | str) -> None:
        """On the store's pool, or (given a DSN) on a pool of its own that ``close`` closes."""
        from bot.store.postgres import PgPool

        self._owns_pool = not isinstance(source, PgPool)
        self._pool = source if isinstance(source, PgPool) else PgPool(source)

    async def _one(self, sql: str, args: tuple[object, ...]) -> tuple[object, ...] | None:
        pool = await self._pool.get()
        async with pool.connection() as conn:
            cur = await conn.execute(sql, args)
            return await cur.fetchone() if cur.description else None

    async def spent(self, installation: int) -> int:
        row = await self._one(
            "SELECT tokens FROM token_usage WHERE installation=%s AND day=%s", (installation, utc_day())
        )
        return int(str(row[0])) if row else 0

    async def add(self, installation: int, tokens: int) -> None:
        await self._one(
            "INSERT INTO token_usage (installation, day, tokens) VALUES (%s, %s, %s) "
            "ON CONFLICT (installation, day) DO UPDATE SET tokens = token_usage.tokens + excluded.tokens",
            (installation, utc_day(), max(0, tokens)),
        )

    async def claim_notice(self, installation: int) -> bool:
        row = await self._one(
            "INSERT INTO token_usage (installation, day, noticed) VALUES (%s, %s, 1) "
            "ON CONFLICT (installation, day) DO UPDATE SET noticed = 1 WHERE token_usage.noticed = 0 "
            "RETURNING 1",
            (installation, utc_day()),
        )
        return row is not None

    async def has_budget(self, installation: int, daily_budget: int) -> bool:
        return await self.spent(installation) < daily_budget

    async def close(self) -> None:
        if self._owns_pool:
            await self._pool.close()


__all__ = ["PostgresLedger", "SQLiteLedger"]
