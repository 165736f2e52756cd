"""Sync: every change of a user's lists and tasks since a cursor, deletions included.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

A per-user change counter, ``sync_clock.seq``, numbers the transactions that change a user's rows.

- Every write of ``tasks`` or ``lists`` stamps each row it writes with its transaction id
  (``change_xid``: a column default on insert, a BEFORE row trigger on update; no lock, no extra
  statement). At the end of the statement (AFTER ... FOR EACH STATEMENT, like the live-update
  triggers), ``sync_mark(user)`` gives the transaction its number for that user, once per
  transaction: it takes the owner's lock ``hashtextextended(user_id, 13)`` (already held: the
  live-update triggers took it just before, after the statement's row locks, so no new lock order),
  bumps ``sync_clock`` and records ``sync_txns (user_id, seq, xid)``. Deleted rows become tombstones
  (``deleted_tasks``, ``deleted_lists``: id, the version each had, the number) in the same statement,
  cascades included: a list's tasks and a parent's subtasks are deleted by statements of their own
  that fire these triggers too.
- WHY A READER NEVER SKIPS A CHANGE: the owner's lock is held from the moment a transaction draws its
  number until it commits (a transaction-scoped advisory lock is released only after the commit is
  visible), and the next transaction of that user can draw a number only once it holds that lock. So
  a user's numbers are handed out in commit order: when a reader sees number n committed, every
  transaction with a smaller number committed before it and is visible to the same snapshot; every
  transaction not yet committed will get a number above n. A cursor "everything up to n" is thus
  never overtaken by a late commit below it. (A global sequence or a timestamp has no such order: a
  transaction holding a lower value may commit after a reader moved past it.)
- A row's current state is found through its stamp: ``tasks.change_xid = sync_txns.xid``; a row
  changed again gets the newer transaction's stamp, so it moves to the newer number.
- Purge without a job: at most once an hour per user (checked when the user writes), the user's
  ``sync_txns`` and tombstones older than 30 days go, and ``sync_clock.purged_seq`` records how far.
  A cursor below it is answered 410. Rows whose stamp lost its ``sync_txns`` entry are older than
  any cursor still accepted, so no valid cursor needs them.

Rows written before this migration have no stamp (NULL): they predate every cursor, and a full sync
(without a cursor) sends them like every other row.
"""

# ruff: noqa: S608 - the SQL is assembled from this file's own constants (table names), no input.
from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLES = ("lists", "tasks")
KEEP = "30 days"

# The caller's number for this transaction (drawn once, under the owner's lock held to commit).
_MARK = """
CREATE FUNCTION sync_mark(owner varchar) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    s bigint;
    checked timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(owner, 13));
    SELECT m.seq INTO s FROM sync_txns m WHERE m.xid = pg_current_xact_id() AND m.user_id = owner;
    IF FOUND THEN
        RETURN s;
    END IF;
    INSERT INTO sync_clock AS c (user_id, seq) VALUES (owner, 1)
    ON CONFLICT (user_id) DO UPDATE SET seq = c.seq + 1
    RETURNING c.seq, c.purge_checked_at INTO s, checked;
    INSERT INTO sync_txns (user_id, seq, xid) VALUES (owner, s, pg_current_xact_id());
    IF checked < now() - interval '1 hour' THEN
        PERFORM sync_purge(owner);
    END IF;
    RETURN s;
END $$
"""

# Drops the user's change records and tombstones older than KEEP; walks from the oldest and stops
# at the first one to keep, so it costs the rows it deletes.
_PURGE = f"""
CREATE FUNCTION sync_purge(owner varchar) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    cut bigint;
BEGIN
    SELECT m.seq - 1 INTO cut FROM sync_txns m
    WHERE m.user_id = owner AND m.at >= now() - interval '{KEEP}' ORDER BY m.seq LIMIT 1;
    IF cut IS NULL THEN
        SELECT max(m.seq) INTO cut FROM sync_txns m WHERE m.user_id = owner;
    END IF;
    UPDATE sync_clock SET purge_checked_at = now(), purged_seq = greatest(purged_seq, coalesce(cut, 0))
    WHERE user_id = owner;
    IF cut IS NULL OR cut <= 0 THEN
        RETURN 0;
    END IF;
    DELETE FROM sync_txns WHERE user_id = owner AND seq <= cut;
    DELETE FROM deleted_lists WHERE user_id = owner AND seq <= cut;
    DELETE FROM deleted_tasks WHERE user_id = owner AND seq <= cut;
    RETURN cut;
END $$
"""

_STAMP = """
CREATE FUNCTION sync_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_xid := pg_current_xact_id();
    RETURN NEW;
END $$
"""


def _written(table: str) -> str:
    """AFTER INSERT/UPDATE: number the transaction for each owner; a row moved to another owner is a
    deletion for its previous one."""
    return f"""
CREATE FUNCTION {table}_sync_after_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    u record;
    s bigint;
BEGIN
    FOR u IN SELECT DISTINCT n.user_id FROM new_rows n ORDER BY 1 LOOP
        PERFORM sync_mark(u.user_id);
    END LOOP;
    IF TG_OP = 'UPDATE' THEN
        FOR u IN
            SELECT DISTINCT o.user_id FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE o.user_id <> n.user_id ORDER BY 1
        LOOP
            s := sync_mark(u.user_id);
            INSERT INTO deleted_{table} (user_id, id, version, seq)
            SELECT o.user_id, o.id, o.version, s FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE o.user_id = u.user_id AND n.user_id <> u.user_id
            ON CONFLICT (user_id, id) DO UPDATE SET version = EXCLUDED.version, seq = EXCLUDED.seq;
        END LOOP;
    END IF;
    RETURN NULL;
END $$
"""


def _deleted(table: str) -> str:
    return f"""
CREATE FUNCTION {table}_sync_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    u record;
    s bigint;
BEGIN
    FOR u IN SELECT DISTINCT o.user_id FROM old_rows o ORDER BY 1 LOOP
        s := sync_mark(u.user_id);
        INSERT INTO deleted_{table} (user_id, id, version, seq)
        SELECT o.user_id, o.id, o.version, s FROM old_rows o WHERE o.user_id = u.user_id
        ON CONFLICT (user_id, id) DO UPDATE SET version = EXCLUDED.version, seq = EXCLUDED.seq;
    END LOOP;
    RETURN NULL;
END $$
"""


def _tables() -> None:
    op.execute(
        "CREATE TABLE sync_clock (user_id varchar(255) PRIMARY KEY, seq bigint NOT NULL, "
        "purged_seq bigint NOT NULL DEFAULT 0, purge_checked_at timestamptz NOT NULL DEFAULT now())"
    )
    op.execute(
        "CREATE TABLE sync_txns (user_id varchar(255) NOT NULL, seq bigint NOT NULL, xid xid8 NOT NULL, "
        "at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (user_id, seq))"
    )
    # "Has this transaction its number already?": one probe per statement that writes.
    op.execute("CREATE UNIQUE INDEX ix_sync_txns_xid_user_id ON sync_txns (xid, user_id)")
    for table in TABLES:
        # One tombstone per row (a row deleted is gone for good; ids are never reused); read by number.
        op.execute(
            f"CREATE TABLE deleted_{table} (user_id varchar(255) NOT NULL, id uuid NOT NULL, "
            f"version integer NOT NULL, seq bigint NOT NULL, PRIMARY KEY (user_id, id))"
        )
        op.execute(f"CREATE INDEX ix_deleted_{table}_user_id_seq ON deleted_{table} (user_id, seq, id)")


def upgrade() -> None:
    _tables()
    for function in (_PURGE, _MARK, _STAMP):
        op.execute(function)
    for table in TABLES:
        # No rewrite: existing rows keep NULL (older than any cursor); new rows take the default.
        op.execute(f"ALTER TABLE {table} ADD COLUMN change_xid xid8")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN change_xid SET DEFAULT pg_current_xact_id()")
        op.execute(f"CREATE INDEX ix_{table}_change_xid ON {table} (change_xid) WHERE change_xid IS NOT NULL")
        op.execute(_written(table))
        op.execute(_deleted(table))
        # The default stamps a normal insert, so the condition (checked without calling plpgsql) spares
        # it the call; it still stamps every update, and an insert that copies a stamp from elsewhere.
        op.execute(
            f"CREATE TRIGGER {table}_sync_stamp BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW "
            "WHEN (NEW.change_xid IS DISTINCT FROM pg_current_xact_id()) EXECUTE FUNCTION sync_stamp()"
        )
        for event in ("insert", "update"):
            transition = "NEW TABLE AS new_rows" + (" OLD TABLE AS old_rows" if event == "update" else "")
            op.execute(
                f"CREATE TRIGGER {table}_sync_after_{event} AFTER {event.upper()} ON {table} "
                f"REFERENCING {transition} FOR EACH STATEMENT EXECUTE FUNCTION {table}_sync_after_write()"
            )
        op.execute(
            f"CREATE TRIGGER {table}_sync_after_delete AFTER DELETE ON {table} "
            f"REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {table}_sync_after_delete()"
        )


def downgrade() -> None:
    for table in TABLES:
        for trigger in ("stamp", "after_insert", "after_update", "after_delete"):
            op.execute(f"DROP TRIGGER {table}_sync_{trigger} ON {table}")
        op.execute(f"DROP FUNCTION {table}_sync_after_write()")
        op.execute(f"DROP FUNCTION {table}_sync_after_delete()")
        op.execute(f"DROP INDEX ix_{table}_change_xid")
        op.execute(f"ALTER TABLE {table} DROP COLUMN change_xid")
        op.execute(f"DROP TABLE deleted_{table}")
    op.execute("DROP FUNCTION sync_stamp()")
    op.execute("DROP FUNCTION sync_mark(varchar)")
    op.execute("DROP FUNCTION sync_purge(varchar)")
    op.execute("DROP TABLE sync_txns")
    op.execute("DROP TABLE sync_clock")
