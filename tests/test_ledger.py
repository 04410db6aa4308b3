"""D-04: the daily model-token ledger per installation, on SQLite and on Postgres (one contract)."""

from __future__ import annotations

import asyncio
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from bot.ledger import TokenLedger, utc_day
from bot.store import open_store
from bot.store.ledger import PostgresLedger, SQLiteLedger
from tests.test_queue_contract import PG_DSN, _pg_unreachable


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], TokenLedger]]:
    """Ledgers that share one store: two handles model two workers (or two machines)."""
    if request.param == "sqlite":
        yield lambda: SQLiteLedger(tmp_path / "ledger.sqlite3")
        return
    reason = _pg_unreachable()
    if reason:
        pytest.skip(reason)
    schema = f"br_ledger_{uuid.uuid4().hex}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    options = urllib.parse.quote(f"-csearch_path={schema}")
    try:
        yield lambda: PostgresLedger(f"{PG_DSN}?options={options}")
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_d04_spend_accumulates_per_installation_across_handles(
    ledger_factory: Callable[[], TokenLedger],
) -> None:
    async def main() -> None:
        a, b = ledger_factory(), ledger_factory()
        try:
            assert await a.spent(1) == 0 and await a.has_budget(1, 1000)
            await a.add(1, 600)
            await b.add(1, 500)
            await b.add(2, 10)
            await a.add(1, -50)  # a negative count never refunds
            assert await b.spent(1) == 1100 and await a.spent(2) == 10
            assert not await a.has_budget(1, 1000) and await a.has_budget(2, 1000)
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_d04_budget_notice_is_claimed_once_per_installation_and_day(
    ledger_factory: Callable[[], TokenLedger],
) -> None:
    async def main() -> list[bool]:
        a, b = ledger_factory(), ledger_factory()
        try:
            claims = await asyncio.gather(*(h.claim_notice(7) for h in (a, b, a, b)))
            return [*claims, await a.claim_notice(8)]
        finally:
            await a.close()
            await b.close()

    claims = asyncio.run(main())
    assert claims[:4].count(True) == 1 and claims[4] is True


def test_open_store_picks_the_ledger_backend(tmp_path: Path) -> None:
    sqlite = open_store(f"sqlite:///{tmp_path / 'queue.sqlite3'}", tmp_path / "data")
    # the ledger is in the queue's file now, not a file of its own
    assert isinstance(sqlite.ledger, SQLiteLedger) and not (tmp_path / "data" / "ledger.sqlite3").exists()
    asyncio.run(sqlite.close())
    assert isinstance(open_store("postgresql://u@h/db", tmp_path).ledger, PostgresLedger)
    assert len(utc_day()) == 10
