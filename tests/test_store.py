"""The store: one database for the queue and the ledger, with a versioned schema (issue 11, item 4).

Each backend migrates from an empty database and from the schema before versions (the fixtures in
tests/fixtures/store/ were dumped from that code), re-opens without change, refuses a database of a
newer release, and shares one connection (SQLite writer) or one pool (Postgres) per store.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bot.ledger import utc_day
from bot.queue.base import EnqueueOutcome
from bot.store import SchemaTooNewError, Store, open_store
from bot.store import postgres as pg_store
from bot.store import sqlite as sqlite_store
from bot.store.ledger import PostgresLedger
from bot.store.migrations import POSTGRES, SQLITE, Migration, pending
from bot.store.postgres_queue import PostgresQueue
from tests.test_queue_contract import PG_DSN, _pg_unreachable, job

FIXTURES = Path(__file__).parent / "fixtures" / "store"


def sqlite_objects(path: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        return {(kind, name) for kind, name in rows}


def sqlite_versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def today_sqlite(path: Path) -> None:
    """A queue file as the code before the store left it, with a delivery on record."""
    with sqlite3.connect(path) as conn:
        conn.executescript((FIXTURES / "sqlite_v1.sql").read_text())
        conn.execute("INSERT INTO review_deliveries (id, received_at) VALUES ('d-old', ?)", (time.time(),))


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    for migrations in (SQLITE, POSTGRES):
        assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))


def test_pending_is_everything_above_the_recorded_version_and_refuses_a_newer_one() -> None:
    three = (Migration(1, ()), Migration(2, ()), Migration(3, ()))
    assert [m.version for m in pending(0, three)] == [1, 2, 3]
    assert [m.version for m in pending(2, three)] == [3]
    assert pending(3, three) == ()
    with pytest.raises(SchemaTooNewError, match=r"version 4 .* up to 3"):
        pending(4, three)


# -- SQLite ---------------------------------------------------------------------------------------


def test_sqlite_migrates_an_empty_database_to_todays_schema_plus_the_ledger(tmp_path: Path) -> None:
    today = tmp_path / "today.sqlite3"
    today_sqlite(today)
    db = tmp_path / "queue.sqlite3"
    store = open_store(f"sqlite:///{db}", tmp_path)
    asyncio.run(store.close())
    assert sqlite_versions(db) == [1]
    assert sqlite_objects(db) == sqlite_objects(today) | {
        ("table", "token_usage"),
        ("table", "schema_migrations"),
    }


def test_sqlite_database_of_todays_schema_is_stamped_not_recreated(tmp_path: Path) -> None:
    db = tmp_path / "queue.sqlite3"
    today_sqlite(db)

    async def main() -> None:
        store = open_store(f"sqlite:///{db}", tmp_path)
        try:
            again = await store.queue.enqueue(job(delivery="d-old"))
            assert again.outcome is EnqueueOutcome.DUPLICATE_DELIVERY  # the row survived
            await store.ledger.add(7, 5)
            assert await store.ledger.spent(7) == 5
        finally:
            await store.close()

    asyncio.run(main())
    assert sqlite_versions(db) == [1]


def test_sqlite_reopen_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "queue.sqlite3"

    async def session(n: int) -> None:
        store = open_store(f"sqlite:///{db}", tmp_path)
        try:
            await store.queue.enqueue(job(n, delivery=f"d-{n}"))
            await store.ledger.add(7, 10)
        finally:
            await store.close()

    for n in (1, 2, 3):
        asyncio.run(session(n))
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM review_jobs").fetchone() == (3,)
        assert conn.execute("SELECT tokens FROM token_usage").fetchone() == (30,)
    assert sqlite_versions(db) == [1]


def test_sqlite_refuses_a_database_of_a_newer_release(tmp_path: Path) -> None:
    db = tmp_path / "queue.sqlite3"
    asyncio.run(open_store(f"sqlite:///{db}", tmp_path).close())
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 'later')")
    before = sqlite_objects(db)
    with pytest.raises(SchemaTooNewError, match="version 99"):
        open_store(f"sqlite:///{db}", tmp_path)
    assert sqlite_objects(db) == before and sqlite_versions(db) == [1, 99]


def test_sqlite_applies_only_the_migrations_above_the_recorded_one(tmp_path: Path) -> None:
    db = tmp_path / "queue.sqlite3"
    asyncio.run(open_store(f"sqlite:///{db}", tmp_path).close())
    later = (*SQLITE, Migration(2, ("CREATE TABLE later (x INTEGER)",)))
    for _ in range(2):  # the second run finds nothing to do (a re-run CREATE TABLE would fail)
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            sqlite_store.migrate(conn, later)
        finally:
            conn.close()
    assert sqlite_versions(db) == [1, 2] and ("table", "later") in sqlite_objects(db)


def test_sqlite_ledger_shares_the_queue_file_and_its_writer(tmp_path: Path) -> None:
    db = tmp_path / "queue.sqlite3"

    async def main() -> None:
        store = open_store(f"sqlite:///{db}", tmp_path)
        try:
            await store.ledger.add(3, 42)
            await store.queue.enqueue(job())
            assert store.ledger._queue is store.queue
        finally:
            await store.close()

    asyncio.run(main())
    assert not [p.name for p in tmp_path.iterdir() if "ledger" in p.name]  # no file of its own
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT installation, tokens FROM token_usage").fetchall() == [(3, 42)]


def test_sqlite_legacy_ledger_file_is_imported_once_and_renamed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    legacy = data / "ledger.sqlite3"
    with sqlite3.connect(legacy) as conn:
        conn.executescript((FIXTURES / "sqlite_ledger_v1.sql").read_text())
        conn.execute("INSERT INTO token_usage VALUES (7, ?, 500, 1), (8, '2020-01-01', 9, 0)", (utc_day(),))
    db = data / "queue.sqlite3"

    async def main() -> tuple[int, bool, int]:
        store = open_store(f"sqlite:///{db}", data)
        try:
            await store.ledger.add(7, 20)
            return (
                await store.ledger.spent(7),
                await store.ledger.claim_notice(7),
                await store.ledger.spent(8),
            )
        finally:
            await store.close()

    assert asyncio.run(main()) == (520, False, 0)  # counted, the notice already posted today
    assert not legacy.exists() and (data / "ledger.sqlite3.imported").is_file()
    assert asyncio.run(main()) == (540, False, 0)  # not imported twice
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT tokens FROM token_usage WHERE installation = 8").fetchone() == (9,)


def test_sqlite_legacy_ledger_is_imported_once_by_processes_starting_together(tmp_path: Path) -> None:
    legacy = tmp_path / "ledger.sqlite3"
    with sqlite3.connect(legacy) as conn:
        conn.executescript((FIXTURES / "sqlite_ledger_v1.sql").read_text())
        conn.execute("INSERT INTO token_usage VALUES (7, ?, 500, 0)", (utc_day(),))
    db = tmp_path / "queue.sqlite3"
    start = threading.Barrier(4)

    def process() -> None:  # serve's receiver and its workers each open a store at start-up
        start.wait()
        sqlite_store.import_legacy_ledger(db, tmp_path)

    threads = [threading.Thread(target=process) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT tokens FROM token_usage WHERE installation = 7").fetchone() == (500,)


# -- Postgres -------------------------------------------------------------------------------------


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh, empty schema (dropped afterwards); the store reaches it through search_path."""
    reason = _pg_unreachable()
    if reason:
        pytest.skip(reason)
    schema = f"br_store_{uuid.uuid4().hex}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def pg_url(schema: str) -> str:
    return f"{PG_DSN}?options={urllib.parse.quote(f'-csearch_path={schema}')}"


def pg_query(schema: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(pg_url(schema), autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def pg_objects(schema: str) -> set[tuple[str, str]]:
    return {
        (str(kind), str(name))
        for kind, name in pg_query(
            schema,
            "SELECT c.relkind::text, c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = '{schema}' UNION SELECT 'f', p.proname || '/' || p.pronargs FROM pg_proc p "
            f"JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = '{schema}'",
        )
    }


def pg_versions(schema: str) -> list[object]:
    return [v for (v,) in pg_query(schema, "SELECT version FROM schema_migrations ORDER BY version")]


def today_postgres(schema: str) -> None:
    with psycopg.connect(pg_url(schema), autocommit=True) as conn:
        conn.execute((FIXTURES / "postgres_v1.sql").read_text())
        conn.execute(
            "INSERT INTO review_deliveries (id, received_at) VALUES ('d-old', extract(epoch from now()))"
        )
        conn.execute("INSERT INTO token_usage (installation, day, tokens) VALUES (7, %s, 100)", (utc_day(),))


async def touch(store: Store) -> None:
    await store.queue.state("nothing")  # the pool opens (and migrates) on first use


@pytest.mark.postgres
def test_postgres_migrates_an_empty_database_to_todays_schema(pg_schema: str, tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(pg_url(pg_schema), tmp_path)
        try:
            await touch(store)
        finally:
            await store.close()

    asyncio.run(main())
    migrated = pg_objects(pg_schema)
    assert pg_versions(pg_schema) == [1]
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {pg_schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {pg_schema}")
    today_postgres(pg_schema)
    assert migrated - {("r", "schema_migrations"), ("i", "schema_migrations_pkey")} == pg_objects(pg_schema)


@pytest.mark.postgres
def test_postgres_database_of_todays_schema_is_stamped_not_recreated(pg_schema: str, tmp_path: Path) -> None:
    today_postgres(pg_schema)

    async def main() -> None:
        store = open_store(pg_url(pg_schema), tmp_path)
        try:
            again = await store.queue.enqueue(job(delivery="d-old"))
            assert again.outcome is EnqueueOutcome.DUPLICATE_DELIVERY  # the rows survived
            assert await store.ledger.spent(7) == 100
        finally:
            await store.close()

    asyncio.run(main())
    assert pg_versions(pg_schema) == [1]


@pytest.mark.postgres
def test_postgres_reopen_is_idempotent_and_concurrent_opens_migrate_once(
    pg_schema: str, tmp_path: Path
) -> None:
    async def main() -> None:
        stores = [open_store(pg_url(pg_schema), tmp_path) for _ in range(4)]
        try:
            await asyncio.gather(*(touch(s) for s in stores))  # four processes starting at once
            await asyncio.gather(*(s.queue.enqueue(job(n, delivery=f"d-{n}")) for n, s in enumerate(stores)))
        finally:
            for s in stores:
                await s.close()

    asyncio.run(main())
    asyncio.run(main())
    assert pg_versions(pg_schema) == [1]
    assert pg_query(pg_schema, "SELECT count(*) FROM review_jobs") == [(4,)]


@pytest.mark.postgres
def test_postgres_refuses_a_database_of_a_newer_release(pg_schema: str, tmp_path: Path) -> None:
    today_postgres(pg_schema)
    with psycopg.connect(pg_url(pg_schema), autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        conn.execute("INSERT INTO schema_migrations VALUES (1, 'then'), (99, 'later')")
    before = pg_objects(pg_schema)

    async def main() -> None:
        store = open_store(pg_url(pg_schema), tmp_path)
        try:
            with pytest.raises(SchemaTooNewError, match="version 99"):
                await touch(store)
            assert pg_objects(pg_schema) == before and pg_versions(pg_schema) == [1, 99]
            pg_query(pg_schema, "DELETE FROM schema_migrations WHERE version = 99 RETURNING 1")
            # the refusal sticks: every later call does not reconnect to ask again
            with pytest.raises(SchemaTooNewError, match="version 99"):
                await store.ledger.spent(7)
        finally:
            await store.close()

    asyncio.run(main())


@pytest.mark.postgres
def test_postgres_applies_only_the_migrations_above_the_recorded_one(pg_schema: str) -> None:
    later = (*POSTGRES, Migration(2, ("CREATE TABLE later (x integer)",)))

    async def main() -> None:
        for _ in range(2):  # the second run finds nothing to do (a re-run CREATE TABLE would fail)
            async with await psycopg.AsyncConnection.connect(pg_url(pg_schema), autocommit=True) as conn:
                await pg_store.migrate(conn, later)

    asyncio.run(main())
    assert pg_versions(pg_schema) == [1, 2] and ("r", "later") in pg_objects(pg_schema)


@pytest.mark.postgres
def test_postgres_queue_and_ledger_share_one_pool(pg_schema: str, tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(pg_url(pg_schema), tmp_path)
        try:
            assert isinstance(store.queue, PostgresQueue) and isinstance(store.ledger, PostgresLedger)
            pool = store.queue._pool
            assert store.ledger._pool is pool
            await store.queue.enqueue(job())
            before = pool.stats()
            for n in range(20):
                await store.ledger.add(7, n)
                await store.ledger.has_budget(7, 1000)
            await store.ledger.claim_notice(7)
            after = pool.stats()
            # every ledger call went through the pool, and no connection was opened for it
            assert after["requests_num"] - before["requests_num"] == 41
            assert after["connections_num"] == before["connections_num"]
        finally:
            await store.close()

    asyncio.run(main())
