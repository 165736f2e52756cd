"""A create reads its user's row count from a counter instead of counting the rows.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

The quota check (``owned_count_locked``, 0008/0013) counted the user's rows on every create: ~160 us of
the function's own time at 50 tasks (``bench/db_writes.py``), and it grows with the user: a user with
thousands of tasks paid milliseconds for each new one. ``owned_counts`` now holds each user's count per
table, kept by statement triggers on insert and delete (cascades included: they delete by statements
that fire the same triggers) and by a row trigger on the rare update that moves a row to another
user. The check reads one row.

WHY IT STAYS EXACT: every change of a count happens in the transaction that inserts or deletes the
rows, after that transaction took the owner's lock (the triggers take it before they touch a counter,
as the other triggers do, so a direct SQL write cannot take the counter row first and the lock second);
the lock is held until the commit. ``owned_count_locked`` takes the same lock and only then reads, with
a snapshot taken after the lock was granted (a VOLATILE function's query): it sees every count change
committed before it, and none is in flight.
"""

# ruff: noqa: S608 - the SQL is assembled from this file's own constants (table names), no input.
from __future__ import annotations

import runpy
from pathlib import Path

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TABLES = ("lists", "tasks")

# Every change of a count: under the owner's lock, taken before the counter row is (see above).
_ADD = """
CREATE FUNCTION owned_counts_add(owner varchar, tbl_name text, delta bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(owner, 13));
    INSERT INTO owned_counts AS c (user_id, tbl, n) VALUES (owner, tbl_name, delta)
    ON CONFLICT (user_id, tbl) DO UPDATE SET n = c.n + excluded.n;
END $$
"""

# After a statement that inserted or deleted rows: each owner's count, owners in order.
_CHANGED = """
CREATE FUNCTION owned_counts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    u record;
BEGIN
    IF TG_OP = 'INSERT' THEN
        FOR u IN SELECT r.user_id, count(*) AS k FROM new_rows r GROUP BY 1 ORDER BY 1 LOOP
            PERFORM owned_counts_add(u.user_id, TG_TABLE_NAME, u.k);
        END LOOP;
    ELSE
        FOR u IN SELECT r.user_id, -count(*) AS k FROM old_rows r GROUP BY 1 ORDER BY 1 LOOP
            PERFORM owned_counts_add(u.user_id, TG_TABLE_NAME, u.k);
        END LOOP;
    END IF;
    RETURN NULL;
END $$
"""

# A row moved to another user (never through the API): one less for the old owner, one more for the
# new, the two owners' locks in order.
_MOVED = """
CREATE FUNCTION owned_counts_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(least(OLD.user_id, NEW.user_id), 13));
    PERFORM pg_advisory_xact_lock(hashtextextended(greatest(OLD.user_id, NEW.user_id), 13));
    PERFORM owned_counts_add(OLD.user_id, TG_TABLE_NAME, -1);
    PERFORM owned_counts_add(NEW.user_id, TG_TABLE_NAME, 1);
    RETURN NULL;
END $$
"""

_TRUNCATED = """
CREATE FUNCTION owned_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM owned_counts WHERE tbl = TG_TABLE_NAME;
    RETURN NULL;
END $$
"""

# As 0013's, reading the counter for the tables that keep one (any other table is still counted).
_COUNT = """
CREATE OR REPLACE FUNCTION owned_count_locked(tbl text, owner text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(owner, 13));
    IF tbl = 'tasks' OR tbl = 'lists' THEN
        SELECT c.n INTO n FROM owned_counts c WHERE c.user_id = owner AND c.tbl = owned_count_locked.tbl;
        RETURN coalesce(n, 0);
    END IF;
    EXECUTE format('SELECT count(*) FROM %I WHERE user_id = $1', tbl) INTO n USING owner;
    RETURN n;
END
$$
"""


def _triggers(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_counts_added AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION owned_counts_changed()",
        f"CREATE TRIGGER {table}_counts_removed AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION owned_counts_changed()",
        f"CREATE TRIGGER {table}_counts_moved AFTER UPDATE OF user_id ON {table} FOR EACH ROW "
        "WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id) EXECUTE FUNCTION owned_counts_moved()",
        f"CREATE TRIGGER {table}_counts_truncated AFTER TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION owned_counts_truncated()",
    ]


def upgrade() -> None:
    op.execute(
        "CREATE TABLE owned_counts (user_id varchar(255) NOT NULL, tbl text NOT NULL, n bigint NOT NULL, "
        "PRIMARY KEY (user_id, tbl))"
    )
    for function in (_ADD, _CHANGED, _MOVED, _TRUNCATED):
        op.execute(function)
    for table in TABLES:
        # Writers wait from here to the commit: no row can slip in between the count and the triggers.
        op.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
        op.execute(f"INSERT INTO owned_counts SELECT user_id, '{table}', count(*) FROM {table} GROUP BY 1")
        for trigger in _triggers(table):
            op.execute(trigger)
    op.execute(_COUNT)


def downgrade() -> None:
    # 0013's function back (a migration file never changes: read from it, not copied).
    count = runpy.run_path(str(Path(__file__).with_name("0013_owner_lock_first.py")))["_COUNT"]
    op.execute(count.format(lock="hashtextextended(owner, 13)"))
    for table in TABLES:
        for name in ("added", "removed", "moved", "truncated"):
            op.execute(f"DROP TRIGGER {table}_counts_{name} ON {table}")
    for function in ("changed()", "moved()", "truncated()", "add(varchar, text, bigint)"):
        op.execute(f"DROP FUNCTION owned_counts_{function}")
    op.execute("DROP TABLE owned_counts")
