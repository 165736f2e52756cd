"""Change tracking numbers a transaction in one statement; an update no longer joins old and new rows.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

What 0009's tracking cost every write, measured with ``track_functions`` (``bench/db_writes.py``,
``bench/results/2026-12-07_sync_mark_once.md``): ``sync_mark`` 50-66 us of its own time, the
statement trigger that calls it 14-17 us on an update.

- ``sync_mark`` asked ``sync_txns`` on every call whether this transaction had its number already, and
  drew one with two statements (bump ``sync_clock``, record ``sync_txns``). Now its last draw is kept in
  a setting local to the transaction (``tasks.sync_mark``: ``xid:seq:owner``), so a later statement of
  the same transaction for the same owner reads it without a query, and a draw is one statement (the
  bump as a CTE of the record). The setting follows the transaction as the rows do: a commit or a
  rollback ends it, a rolled-back savepoint restores it along with the rows it rolled back. It is
  trusted only when it names this transaction, so a value set by hand (``SET``, a role's default, a
  pooled connection's leftover) is ignored. When the last draw was for another owner, ``sync_txns`` is
  asked as before. Same numbers, same lock (taken before a number is drawn, held to commit), same
  purge; the unique index on ``sync_txns (xid, user_id)`` still refuses a second number.
- The update trigger joined the old and new transition tables on every update, only to find rows whose
  ``user_id`` changed, which the API never does. That case is now a row trigger, ``AFTER UPDATE OF
  user_id ... WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id)``: PostgreSQL queues it only for an
  UPDATE that names ``user_id`` and calls it only for a row whose owner changed. It writes the previous
  owner's tombstone as before, and drops the new owner's tombstone of that row, if any: a row given
  away and back in one transaction had both at one number, and a client deleted it.
"""

# ruff: noqa: S608 - the SQL is assembled from this file's own constants (table names), no input.
from __future__ import annotations

import runpy
from pathlib import Path

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TABLES = ("lists", "tasks")

_MARK = """
CREATE OR REPLACE FUNCTION sync_mark(owner varchar) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    drawn text := current_setting('tasks.sync_mark', true);
    mine text := pg_current_xact_id()::text || ':';
    s bigint;
    checked timestamptz;
BEGIN
    IF starts_with(drawn, mine) THEN
        drawn := substr(drawn, length(mine) + 1);  -- 'seq:owner' of this transaction's last draw
        IF substr(drawn, strpos(drawn, ':') + 1) = owner THEN
            RETURN split_part(drawn, ':', 1)::bigint;
        END IF;
        SELECT m.seq INTO s FROM sync_txns m WHERE m.xid = pg_current_xact_id() AND m.user_id = owner;
        IF FOUND THEN
            RETURN s;
        END IF;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(owner, 13));
    WITH clock AS (
        INSERT INTO sync_clock AS c (user_id, seq) VALUES (owner, 1)
        ON CONFLICT (user_id) DO UPDATE SET seq = c.seq + 1
        RETURNING c.seq, c.purge_checked_at
    )
    INSERT INTO sync_txns (user_id, seq, xid) SELECT owner, clock.seq, pg_current_xact_id() FROM clock
    RETURNING sync_txns.seq, (SELECT clock.purge_checked_at FROM clock) INTO s, checked;
    PERFORM set_config('tasks.sync_mark', mine || s || ':' || owner, true);
    IF checked < now() - interval '1 hour' THEN
        PERFORM sync_purge(owner);
    END IF;
    RETURN s;
END $$
"""


def _written(table: str) -> str:
    """AFTER INSERT/UPDATE, per statement: number the transaction for each owner of a written row."""
    return f"""
CREATE OR REPLACE FUNCTION {table}_sync_after_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    u record;
BEGIN
    FOR u IN SELECT DISTINCT n.user_id FROM new_rows n ORDER BY 1 LOOP
        PERFORM sync_mark(u.user_id);
    END LOOP;
    RETURN NULL;
END $$
"""


def _moved(table: str) -> str:
    """AFTER UPDATE of a row whose owner changed: a deletion for its previous owner, none for its new one."""
    return f"""
CREATE FUNCTION {table}_sync_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM deleted_{table} WHERE user_id = NEW.user_id AND id = NEW.id;
    INSERT INTO deleted_{table} (user_id, id, version, seq)
    VALUES (OLD.user_id, OLD.id, OLD.version, sync_mark(OLD.user_id))
    ON CONFLICT (user_id, id) DO UPDATE SET version = EXCLUDED.version, seq = EXCLUDED.seq;
    RETURN NULL;
END $$
"""


def _after_update(table: str, transitions: str) -> str:
    return (
        f"CREATE TRIGGER {table}_sync_after_update AFTER UPDATE ON {table} REFERENCING {transitions} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_sync_after_write()"
    )


def upgrade() -> None:
    op.execute(_MARK)
    for table in TABLES:
        op.execute(_written(table))
        op.execute(_moved(table))
        op.execute(f"DROP TRIGGER {table}_sync_after_update ON {table}")
        op.execute(_after_update(table, "NEW TABLE AS new_rows"))
        op.execute(
            f"CREATE TRIGGER {table}_sync_moved AFTER UPDATE OF user_id ON {table} FOR EACH ROW "
            f"WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id) EXECUTE FUNCTION {table}_sync_moved()"
        )


def downgrade() -> None:
    # 0009's functions and trigger back (a migration file never changes: read from it, not copied).
    earlier = runpy.run_path(str(Path(__file__).with_name("0009_sync.py")))
    replace = ("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
    op.execute(earlier["_MARK"].replace(*replace, 1))
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_sync_moved ON {table}")
        op.execute(f"DROP FUNCTION {table}_sync_moved()")
        op.execute(earlier["_written"](table).replace(*replace, 1))
        op.execute(f"DROP TRIGGER {table}_sync_after_update ON {table}")
        op.execute(_after_update(table, "NEW TABLE AS new_rows OLD TABLE AS old_rows"))
