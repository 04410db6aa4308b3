"""The store's schema, as ordered migrations per backend (pure data: no I/O here).

Version 1 is the schema as it was before the store had versions (the queue's and the ledger's
``CREATE … IF NOT EXISTS`` scripts), written so that it can also run over such a database: an
unversioned database is recognised and stamped as version 1, its rows kept. A later change to the
schema is a new migration appended below, never an edit of an applied one.

Each backend runs :func:`pending` inside the transaction that applies one migration and records it
in ``schema_migrations``; a database recorded at a version this code does not know was written by a
newer release and is refused rather than downgraded.
"""

from __future__ import annotations

from dataclasses import dataclass


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer release of backend-review."""

    def __init__(self, recorded: int, known: int) -> None:
        super().__init__(
            f"the database schema is at version {recorded} but this backend-review knows versions up to "
            f"{known}: it was written by a newer release. Upgrade backend-review (a database is never "
            "downgraded)."
        )
        self.recorded = recorded
        self.known = known


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    sql: tuple[str, ...]  # executed in order, in one transaction


def pending(recorded: int, migrations: tuple[Migration, ...]) -> tuple[Migration, ...]:
    """The migrations above ``recorded`` (0 = none applied), in order; refuses a newer database."""
    known = migrations[-1].version if migrations else 0
    if recorded > known:
        raise SchemaTooNewError(recorded, known)
    return tuple(m for m in migrations if m.version > recorded)


SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
)

_SQLITE_V1 = (
    """CREATE TABLE IF NOT EXISTS review_jobs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    pr_key TEXT NOT NULL,
    lane TEXT NOT NULL,
    sem_key TEXT NOT NULL,
    installation_id INTEGER,
    head_sha TEXT NOT NULL,
    job TEXT NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    queued_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    run_after REAL NOT NULL,
    finished_at REAL,
    lease_token TEXT,
    lease_expires REAL,
    worker_id TEXT
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS review_jobs_one_running ON review_jobs(pr_key) "
    "WHERE state = 'running'",
    "CREATE INDEX IF NOT EXISTS review_jobs_sem ON review_jobs(sem_key)",
    "CREATE INDEX IF NOT EXISTS review_jobs_pr ON review_jobs(pr_key, seq)",
    "CREATE INDEX IF NOT EXISTS review_jobs_active ON review_jobs(queued_at, seq) "
    "WHERE state IN ('pending', 'running')",
    """CREATE TABLE IF NOT EXISTS review_deliveries (
    id TEXT PRIMARY KEY,
    received_at REAL NOT NULL
) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS review_deliveries_age ON review_deliveries(received_at)",
    # The pre-lane per-PR pending index would still allow only one pending job per PR, so it goes.
    "DROP INDEX IF EXISTS review_jobs_one_pending",
    "CREATE UNIQUE INDEX IF NOT EXISTS review_jobs_one_pending_per_lane ON review_jobs(pr_key, lane) "
    "WHERE state = 'pending'",
    # The ledger, which had a file of its own (ledger.sqlite3, imported once by bot.store.sqlite).
    """CREATE TABLE IF NOT EXISTS token_usage (
    installation INTEGER NOT NULL,
    day TEXT NOT NULL,
    tokens INTEGER NOT NULL DEFAULT 0,
    noticed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (installation, day)
)""",
)

SQLITE_ADD_LANE = (
    "ALTER TABLE review_jobs ADD COLUMN lane TEXT NOT NULL DEFAULT 'auto'",
    "UPDATE review_jobs SET lane = 'command:' || lower(coalesce(json_extract(job, '$.sender'), '')) "
    "WHERE state = 'pending' AND json_extract(job, '$.trigger') IN ('command', 'rerequested')",
)
"""An unversioned queue file older than lanes (SQLite cannot add a column conditionally in SQL): pending
commands move to their sender's lane (the old index left at most one pending job per PR, so the new
index holds). Other rows keep 'auto': only pending rows are read by lane. Run before version 1."""

SQLITE: tuple[Migration, ...] = (Migration(1, _SQLITE_V1),)

_POSTGRES_V1 = """
CREATE OR REPLACE FUNCTION br_now() RETURNS float8 LANGUAGE sql VOLATILE
    AS 'SELECT extract(epoch from clock_timestamp())::float8';
CREATE TABLE IF NOT EXISTS review_jobs (
    seq bigserial PRIMARY KEY,
    id text NOT NULL UNIQUE,
    pr_key text NOT NULL,
    lane text NOT NULL,
    sem_key text NOT NULL,
    installation_id bigint,
    head_sha text NOT NULL,
    job text NOT NULL,
    state text NOT NULL,
    outcome text,
    error text,
    attempts integer NOT NULL DEFAULT 0,
    queued_at float8 NOT NULL,
    created_at float8 NOT NULL,
    updated_at float8 NOT NULL,
    run_after float8 NOT NULL,
    finished_at float8,
    lease_token text,
    lease_expires float8,
    worker_id text
);
-- An unversioned pre-lane database: pending commands move to their sender's lane (its per-PR pending
-- index left at most one pending job per PR, so the new index holds); other rows keep 'auto', only
-- pending rows are read by lane.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                   WHERE attrelid = 'review_jobs'::regclass AND attname = 'lane' AND NOT attisdropped) THEN
        ALTER TABLE review_jobs ADD COLUMN lane text NOT NULL DEFAULT 'auto';
        UPDATE review_jobs SET lane = 'command:' || lower(coalesce(job::jsonb->>'sender', ''))
            WHERE state = 'pending' AND job::jsonb->>'trigger' IN ('command', 'rerequested');
    END IF;
END
$$;
CREATE UNIQUE INDEX IF NOT EXISTS review_jobs_one_running ON review_jobs(pr_key) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS review_jobs_sem ON review_jobs(sem_key);
CREATE INDEX IF NOT EXISTS review_jobs_pr ON review_jobs(pr_key, seq);
CREATE INDEX IF NOT EXISTS review_jobs_active ON review_jobs(queued_at, seq)
    WHERE state IN ('pending', 'running');
CREATE TABLE IF NOT EXISTS review_deliveries (
    id text PRIMARY KEY,
    received_at float8 NOT NULL
);
CREATE INDEX IF NOT EXISTS review_deliveries_age ON review_deliveries(received_at);
-- The pre-lane per-PR pending index would still allow one pending job per PR; so would the old
-- br_enqueue overload, which knows no lane.
DROP INDEX IF EXISTS review_jobs_one_pending;
CREATE UNIQUE INDEX IF NOT EXISTS review_jobs_one_pending_per_lane ON review_jobs(pr_key, lane)
    WHERE state = 'pending';
DROP FUNCTION IF EXISTS br_enqueue(text, text, text, bigint, text, text, boolean, text, float8);
-- and the one before the stale-head rule, which knows no before_sha
DROP FUNCTION IF EXISTS br_enqueue(text, text, text, text, bigint, text, text, boolean, text, float8);

-- The whole enqueue decision in one round trip (the webhook path). Same rules, same order as
-- SQLiteQueue.enqueue; each statement of a volatile function sees what committed before it, so the
-- reads after the per-PR advisory lock see every earlier enqueue of that PR.
CREATE OR REPLACE FUNCTION br_enqueue(
    p_id text, p_pr_key text, p_lane text, p_sem_key text, p_installation bigint, p_head text, p_job text,
    p_full boolean, p_delivery text, p_delay float8, p_before text
) RETURNS TABLE (r_outcome text, r_job_id text) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now float8;
    v_dup record;
    v_newer text;
    v_pending record;
    v_queued float8;
    v_run_after float8;
    v_outcome text := 'accepted';
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_pr_key, 0));
    v_now := br_now();
    IF EXISTS (SELECT 1 FROM review_deliveries AS d WHERE d.id = p_delivery) THEN
        RETURN QUERY SELECT 'duplicate_delivery', NULL::text;
        RETURN;
    END IF;
    SELECT j.id, j.state INTO v_dup FROM review_jobs AS j
        WHERE j.sem_key = p_sem_key AND j.state <> 'superseded' ORDER BY j.state = 'failed' DESC LIMIT 1;
    IF v_dup.id IS NOT NULL THEN
        RETURN QUERY SELECT CASE WHEN v_dup.state = 'failed' THEN 'dead_lettered' ELSE 'duplicate_key' END,
            v_dup.id;
        RETURN;
    END IF;
    -- an automatic job of this PR was pushed on top of this head (and is not a push back to p_before)
    IF p_lane = 'auto' AND p_head <> '' THEN
        SELECT j.id INTO v_newer FROM review_jobs AS j
            WHERE j.pr_key = p_pr_key AND j.lane = 'auto' AND j.job::jsonb->>'before_sha' = p_head
              AND j.head_sha IS DISTINCT FROM p_before
            ORDER BY j.seq DESC LIMIT 1;
        IF v_newer IS NOT NULL THEN
            -- kept on record, already finished: its before_sha carries the order on to older heads
            INSERT INTO review_jobs (id, pr_key, lane, sem_key, installation_id, head_sha, job, state,
                                     outcome, queued_at, created_at, updated_at, run_after, finished_at)
                VALUES (p_id, p_pr_key, p_lane, p_sem_key, p_installation, p_head, p_job, 'superseded',
                        'stale: older than ' || v_newer, v_now, v_now, v_now, v_now, v_now);
            INSERT INTO review_deliveries (id, received_at) VALUES (p_delivery, v_now);
            RETURN QUERY SELECT 'stale', v_newer;
            RETURN;
        END IF;
    END IF;
    -- FOR UPDATE waits for a claim that holds the row and then skips it if it is no longer pending.
    SELECT j.id, j.head_sha, j.queued_at, j.run_after INTO v_pending FROM review_jobs AS j
        WHERE j.pr_key = p_pr_key AND j.lane = p_lane AND j.state = 'pending' FOR UPDATE;
    v_queued := v_now;
    v_run_after := v_now + greatest(p_delay, 0);
    IF v_pending.id IS NOT NULL AND v_pending.head_sha = p_head THEN
        IF p_full THEN
            UPDATE review_jobs AS j SET job = jsonb_set(j.job::jsonb, '{full}', 'true')::text,
                updated_at = v_now WHERE j.id = v_pending.id;
        END IF;
        INSERT INTO review_deliveries (id, received_at) VALUES (p_delivery, v_now);
        RETURN QUERY SELECT 'coalesced', v_pending.id;
        RETURN;
    END IF;
    IF v_pending.id IS NOT NULL THEN
        UPDATE review_jobs AS j SET state = 'superseded', outcome = 'replaced by ' || p_id,
            updated_at = v_now, finished_at = v_now WHERE j.id = v_pending.id;
        v_queued := v_pending.queued_at;  -- the newer head keeps the lane's place in line
        -- D-03 without starvation: the debounce window runs from the burst's first event
        v_run_after := least(v_run_after, v_pending.run_after);
        v_outcome := 'replaced';
    END IF;
    INSERT INTO review_jobs (id, pr_key, lane, sem_key, installation_id, head_sha, job, state, queued_at,
                             created_at, updated_at, run_after)
        VALUES (p_id, p_pr_key, p_lane, p_sem_key, p_installation, p_head, p_job, 'pending', v_queued,
                v_now, v_now, v_run_after);
    INSERT INTO review_deliveries (id, received_at) VALUES (p_delivery, v_now);
    RETURN QUERY SELECT v_outcome, p_id;
END
$$;
CREATE TABLE IF NOT EXISTS token_usage (
    installation BIGINT NOT NULL,
    day TEXT NOT NULL,
    tokens INTEGER NOT NULL DEFAULT 0,
    noticed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (installation, day)
);
"""

POSTGRES: tuple[Migration, ...] = (Migration(1, (_POSTGRES_V1,)),)

__all__ = [
    "POSTGRES",
    "SCHEMA_MIGRATIONS",
    "SQLITE",
    "SQLITE_ADD_LANE",
    "Migration",
    "SchemaTooNewError",
    "pending",
]
