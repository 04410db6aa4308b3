"""The SQLite store: one file (``<DATA_DIR>/queue.sqlite3`` by default) holds the queue and the ledger.

Every connection is opened here, with the pragmas the queue's group commit relies on (see
``sqlite_queue``), and migrated before use.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from bot.store.migrations import SCHEMA_MIGRATIONS, SQLITE, SQLITE_ADD_LANE, Migration, pending

LEGACY_LEDGER = "ledger.sqlite3"
"""The ledger's own file before the store (in DATA_DIR); imported once, then renamed ``*.imported``."""


def connect(path: str | Path, *, busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    """A migrated connection in autocommit mode (transactions are explicit ``BEGIN IMMEDIATE``)."""
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=busy_timeout_ms / 1000)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _wal(conn, busy_timeout_ms / 1000)
        conn.execute("PRAGMA synchronous = NORMAL")
        # the queue's writer thread checkpoints when idle, off the webhook path
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch a new file to WAL (persistent; a no-op afterwards). SQLite answers "database is locked"
    at once, without its busy handler, when several connections make that switch together (the
    receiver and the workers of ``serve`` opening a fresh store), so it is retried here."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def recorded_version(conn: sqlite3.Connection) -> int:
    """The schema version on record; 0 for an empty or an unversioned database."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    if exists.fetchone() is None:
        return 0
    (version,) = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(version)


def migrate(conn: sqlite3.Connection, migrations: tuple[Migration, ...] = SQLITE) -> None:
    """Apply every migration above the recorded version, one transaction each.

    ``BEGIN IMMEDIATE`` takes the write lock first and the version is read inside it, so two
    processes opening the same file at once apply each migration once.
    """
    for migration in pending(recorded_version(conn), migrations):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if migration in pending(recorded_version(conn), migrations):  # nobody got there first
                conn.execute(SCHEMA_MIGRATIONS)
                if migration.version == 1 and _lacks_lane(conn):
                    for statement in SQLITE_ADD_LANE:
                        conn.execute(statement)
                for statement in migration.sql:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (migration.version, _utc_now()),
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _lacks_lane(conn: sqlite3.Connection) -> bool:
    """An unversioned queue file from before lanes (an empty database has no review_jobs yet)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(review_jobs)")}
    return bool(columns) and "lane" not in columns


def import_legacy_ledger(path: str | Path, data_dir: Path) -> None:
    """Move the token counts of the ledger's old file into the store, once.

    Counts add up (the store may already have spent tokens today). The old file is renamed
    ``ledger.sqlite3.imported`` while the store's write lock is held, so of two processes starting at
    once (``serve``'s receiver and its workers) only one imports it.
    """
    legacy = data_dir / LEGACY_LEDGER
    if not legacy.is_file():
        return
    try:  # read-only: a file renamed meanwhile by another process is not re-created empty
        old = sqlite3.connect(f"{legacy.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return
    try:
        found = old.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'token_usage'")
        rows = []
        if found.fetchone() is not None:
            rows = old.execute("SELECT installation, day, tokens, noticed FROM token_usage").fetchall()
    finally:
        old.close()
    conn = connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not legacy.is_file():  # the other process imported it while we read
                conn.execute("ROLLBACK")
                return
            conn.executemany(
                "INSERT INTO token_usage (installation, day, tokens, noticed) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (installation, day) DO UPDATE SET tokens = tokens + excluded.tokens, "
                "noticed = max(noticed, excluded.noticed)",
                rows,
            )
            imported = legacy.rename(legacy.with_name(legacy.name + ".imported"))
            try:
                conn.execute("COMMIT")
            except BaseException:
                imported.rename(legacy)
                raise
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


__all__ = ["LEGACY_LEDGER", "connect", "import_legacy_ledger", "migrate", "recorded_version"]
