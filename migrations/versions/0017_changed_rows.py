"""Change tracking keeps each changed row's number in a narrow table, drawn per statement.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07

What 0009-0016's tracking cost a write, measured per write on PostgreSQL alone (``bench/db_writes.py``,
``bench/results/2026-12-07_db_writes_before_0017.md``): 12-48% of the database time of a create, an
update or a toggle, and 900-1,650 bytes of WAL. Its parts:

- ``change_xid``, the writing transaction's id on the row itself, was indexed: an update that changed
  only a title (no indexed column) could no longer be a HOT update, so it wrote a new entry in every
  index of ``tasks``;
- ``sync_mark`` numbered a transaction once, which needed ``sync_txns`` (xid -> number, two unique
  indexes) to find rows by their stamp, and a transaction-local setting to skip the lookup;
- a BEFORE row trigger stamped every updated row.

Now each tracked table has ``changed_<table> (user_id, id, seq)``: one row per row of the table, with
the number of the statement that last wrote it, drawn and recorded by the AFTER statement trigger in
one statement. ``tasks`` and ``lists`` carry no stamp and no extra index: a title update is HOT again.

- WHY A READER STILL NEVER SKIPS A CHANGE: a number is drawn under the owner's lock, held to commit
  (as before), so a user's numbers are still handed out in commit order. A transaction may now draw
  several (one per statement that writes the user's rows): its rows carry the later ones, and all of
  them become visible at its commit, together. A reader that saw number n committed has every
  smaller one; a change not yet committed will carry a number above n.
- A row's deletion removes its ``changed_`` row and leaves its tombstone, as before.
- Purge: ``sync_txns`` also said when each number was drawn. In its place, once an hour per user (at
  a write, as before), ``sync_checkpoints`` records the number just drawn and the time. Every number
  up to a checkpoint older than 30 days was drawn more than 30 days ago: that checkpoint is the cut.
  Tombstones and checkpoints up to it go, ``sync_clock.purged_seq`` records it, and a cursor below it
  is answered 410, as before. ``changed_`` rows are not purged: there is one per live row, and a
  reader only ever reads those above its cursor.

Numbers already drawn keep their meaning: each row takes over its transaction's number from
``sync_txns``, and every ``sync_txns`` entry becomes a checkpoint, so cursors held by clients stay
valid across the upgrade. After a downgrade they do not (0016 finds rows through stamps this schema
never wrote): every user's history then starts at their current number, and an older cursor is 410.
"""

# ruff: noqa: S608 - the SQL is assembled from this file's own constants (table names), no input.
from __future__ import annotations

import runpy
from pathlib import Path

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLES = ("lists", "tasks")
KEEP = "30 days"

# The owner's next number, with when its history was last purged (under the owner's lock, held to commit).
_DRAW = """
    INSERT INTO sync_clock AS c (user_id, seq) VALUES (owner, 1)
    ON CONFLICT (user_id) DO UPDATE SET seq = c.seq + 1
    RETURNING c.seq, c.purge_checked_at"""
_PURGE_IF_DUE = """
    IF checked < now() - interval '1 hour' THEN
        PERFORM sync_purge(owner);
    END IF;"""

_MARK = f"""
CREATE OR REPLACE FUNCTION sync_mark(owner varchar) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    s bigint;
    checked timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(owner, 13));
    {_DRAW} INTO s, checked;{_PURGE_IF_DUE}
    RETURN s;
END $$
"""

# Records the owner's current number as a checkpoint, then drops what is older than KEEP: up to the
# newest checkpoint older than KEEP, every number was drawn before it.
_PURGE = f"""
CREATE OR REPLACE FUNCTION sync_purge(owner varchar) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    cut bigint;
BEGIN
    INSERT INTO sync_checkpoints (user_id, seq, at)
    SELECT c.user_id, c.seq, clock_timestamp() FROM sync_clock c WHERE c.user_id = owner
    ON CONFLICT (user_id, seq) DO NOTHING;
    SELECT max(p.seq) INTO cut FROM sync_checkpoints p
    WHERE p.user_id = owner AND p.at < now() - interval '{KEEP}';
    UPDATE sync_clock SET purge_checked_at = now(), purged_seq = greatest(purged_seq, coalesce(cut, 0))
    WHERE user_id = owner;
    IF cut IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM sync_checkpoints WHERE user_id = owner AND seq < cut;
    DELETE FROM deleted_lists WHERE user_id = owner AND seq <= cut;
    DELETE FROM deleted_tasks WHERE user_id = owner AND seq <= cut;
    RETURN cut;
END $$
"""


def _written(table: str) -> str:
    """AFTER INSERT/UPDATE, per statement: each written row's number, per owner. The number is drawn
    as ``sync_mark`` draws it, in the statement that records it: this runs on every write."""
    return f"""
CREATE OR REPLACE FUNCTION {table}_sync_after_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    owner varchar;
    checked timestamptz;
BEGIN
    FOR owner IN SELECT DISTINCT n.user_id FROM new_rows n ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(owner, 13));
        WITH drawn AS ({_DRAW}
        ), recorded AS (
            INSERT INTO changed_{table} AS c (user_id, id, seq)
            SELECT n.user_id, n.id, drawn.seq FROM new_rows n, drawn WHERE n.user_id = owner
            ON CONFLICT (user_id, id) DO UPDATE SET seq = EXCLUDED.seq
        )
        SELECT drawn.purge_checked_at INTO checked FROM drawn;{_PURGE_IF_DUE}
    END LOOP;
    RETURN NULL;
END $$
"""


def _deleted(table: str) -> str:
    """AFTER DELETE, per statement: a tombstone per row, in place of its change."""
    return f"""
CREATE OR REPLACE FUNCTION {table}_sync_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    u record;
    s bigint;
BEGIN
    FOR u IN SELECT DISTINCT o.user_id FROM old_rows o ORDER BY 1 LOOP
        s := sync_mark(u.user_id);
        DELETE FROM changed_{table} c USING old_rows o
        WHERE o.user_id = u.user_id AND c.user_id = o.user_id AND c.id = o.id;
        INSERT INTO deleted_{table} (user_id, id, version, seq)
        SELECT o.user_id, o.id, o.version, s FROM old_rows o WHERE o.user_id = u.user_id
        ON CONFLICT (user_id, id) DO UPDATE SET version = EXCLUDED.version, seq = EXCLUDED.seq;
    END LOOP;
    RETURN NULL;
END $$
"""


def _moved(table: str) -> str:
    """AFTER UPDATE of a row whose owner changed: a deletion for its previous owner, none for its new one
    (the statement trigger records the row for its new owner)."""
    return f"""
CREATE OR REPLACE FUNCTION {table}_sync_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM deleted_{table} WHERE user_id = NEW.user_id AND id = NEW.id;
    DELETE FROM changed_{table} WHERE user_id = OLD.user_id AND id = OLD.id;
    INSERT INTO deleted_{table} (user_id, id, version, seq)
    VALUES (OLD.user_id, OLD.id, OLD.version, sync_mark(OLD.user_id))
    ON CONFLICT (user_id, id) DO UPDATE SET version = EXCLUDED.version, seq = EXCLUDED.seq;
    RETURN NULL;
END $$
"""


def _tables() -> None:
    op.execute(
        "CREATE TABLE sync_checkpoints (user_id varchar(255) NOT NULL, seq bigint NOT NULL, "
        "at timestamptz NOT NULL, PRIMARY KEY (user_id, seq))"
    )
    op.execute("INSERT INTO sync_checkpoints (user_id, seq, at) SELECT user_id, seq, at FROM sync_txns")
    for table in TABLES:
        op.execute(
            f"CREATE TABLE changed_{table} (user_id varchar(255) NOT NULL, id uuid NOT NULL, "
            "seq bigint NOT NULL, PRIMARY KEY (user_id, id))"
        )
        op.execute(
            f"INSERT INTO changed_{table} (user_id, id, seq) SELECT t.user_id, t.id, m.seq FROM {table} t "
            "JOIN sync_txns m ON m.xid = t.change_xid AND m.user_id = t.user_id"
        )
        # What /sync reads: the caller's changes after a cursor, in (number, id) order.
        op.execute(f"CREATE INDEX ix_changed_{table}_user_id_seq ON changed_{table} (user_id, seq, id)")


def upgrade() -> None:
    _tables()
    for function in (_PURGE, _MARK):
        op.execute(function)
    for table in TABLES:
        op.execute(_written(table))
        op.execute(_deleted(table))
        op.execute(_moved(table))
        op.execute(f"DROP TRIGGER {table}_sync_stamp ON {table}")
        op.execute(f"DROP INDEX ix_{table}_user_id_change_xid")
        op.execute(f"ALTER TABLE {table} DROP COLUMN change_xid")
    op.execute("DROP FUNCTION sync_stamp()")
    op.execute("DROP TABLE sync_txns")


def downgrade() -> None:
    # The earlier functions and schema back, read from their own migrations (they never change).
    first = runpy.run_path(str(Path(__file__).with_name("0009_sync.py")))
    later = runpy.run_path(str(Path(__file__).with_name("0016_sync_mark_once.py")))
    op.execute(
        "CREATE TABLE sync_txns (user_id varchar(255) NOT NULL, seq bigint NOT NULL, xid xid8 NOT NULL, "
        "at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (user_id, seq))"
    )
    op.execute("CREATE UNIQUE INDEX ix_sync_txns_xid_user_id ON sync_txns (xid, user_id)")
    # No row has a stamp: every cursor before now is older than the history 0016 can read.
    op.execute("UPDATE sync_clock SET purged_seq = seq")
    op.execute(first["_STAMP"])
    replace = ("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
    op.execute(first["_PURGE"].replace(*replace, 1))
    op.execute(later["_MARK"])
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ADD COLUMN change_xid xid8")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN change_xid SET DEFAULT pg_current_xact_id()")
        op.execute(
            f"CREATE INDEX ix_{table}_user_id_change_xid ON {table} (user_id, change_xid, id) "
            "WHERE change_xid IS NOT NULL"
        )
        op.execute(
            f"CREATE TRIGGER {table}_sync_stamp BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW "
            "WHEN (NEW.change_xid IS DISTINCT FROM pg_current_xact_id()) EXECUTE FUNCTION sync_stamp()"
        )
        op.execute(later["_written"](table))
        op.execute(first["_deleted"](table).replace(*replace, 1))
        op.execute(later["_moved"](table).replace(*replace, 1))
        op.execute(f"DROP TABLE changed_{table}")
    op.execute("DROP TABLE sync_checkpoints")
