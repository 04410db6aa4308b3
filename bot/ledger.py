"""Model tokens spent per installation per UTC day (D-04), checked before any model call.

The SQLite ledger lives beside the embedded queue; with Postgres, workers on several machines share
the Postgres ledger. ``claim_notice`` is true once per installation and day, so the "budget spent"
notice is posted once, not on every review.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol


def utc_day(now: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if now is None else now))


class TokenLedger(Protocol):
    async def spent(self, installation: int) -> int: ...

    async def add(self, installation: int, tokens: int) -> None: ...

    async def claim_notice(self, installation: int) -> bool:
        """True the first time it is asked on a day for an installation; false after that."""
        ...

    async def has_budget(self, installation: int, daily_budget: int) -> bool: ...

    async def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS token_usage (
    installation INTEGER NOT NULL,
    day TEXT NOT NULL,
    tokens INTEGER NOT NULL DEFAULT 0,
    noticed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (installation, day)
)
"""


class SQLiteLedger:
    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.execute(_SCHEMA)

    def _spent(self, installation: int) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT tokens FROM token_usage WHERE installation=? AND day=?", (installation, utc_day())
            ).fetchone()
        return int(row[0]) if row else 0

    def _add(self, installation: int, tokens: int) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO token_usage (installation, day, tokens) VALUES (?, ?, ?) "
                "ON CONFLICT (installation, day) DO UPDATE SET tokens = tokens + excluded.tokens",
                (installation, utc_day(), max(0, tokens)),
            )

    def _claim_notice(self, installation: int) -> bool:
        with self._lock:
            self._conn.execute(
                "INSERT INTO token_usage (installation, day) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (installation, utc_day()),
            )
            cur = self._conn.execute(
                "UPDATE token_usage SET noticed=1 WHERE installation=? AND day=? AND noticed=0",
                (installation, utc_day()),
            )
            return cur.rowcount == 1

    async def spent(self, installation: int) -> int:
        return await asyncio.to_thread(self._spent, installation)

    async def add(self, installation: int, tokens: int) -> None:
        await asyncio.to_thread(self._add, installation, tokens)

    async def claim_notice(self, installation: int) -> bool:
        return await asyncio.to_thread(self._claim_notice, installation)

    async def has_budget(self, installation: int, daily_budget: int) -> bool:
        return await self.spent(installation) < daily_budget

    async def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresLedger:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._ready = False

    async def _one(self, sql: str, args: tuple[object, ...]) -> tuple[object, ...] | None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
            if not self._ready:
                # concurrent CREATE TABLE IF NOT EXISTS races in the catalog: one creator at a time
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('backend_review_token_usage'))")
                    await conn.execute(_SCHEMA.replace("INTEGER NOT NULL,", "BIGINT NOT NULL,", 1))
                self._ready = True
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
        return None


def open_ledger(database_url: str, data_dir: Path) -> TokenLedger:
    if database_url.startswith(("postgresql://", "postgres://")):
        return PostgresLedger(database_url)
    data_dir.mkdir(parents=True, exist_ok=True)
    return SQLiteLedger(data_dir / "ledger.sqlite3")
