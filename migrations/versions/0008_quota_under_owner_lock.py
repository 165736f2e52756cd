"""Quotas exact under concurrency: count a user's rows only after taking that user's lock.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

A create inserts only while ``count(*) < quota``. Inside one statement, READ COMMITTED keeps the
statement's start snapshot, so 40 concurrent creates all counted the same rows and a user at 45 of 50
ended with 56. ``owned_count_locked`` takes a transaction-scoped advisory lock per user and table and
only then counts, in a query of its own; being VOLATILE, that query takes a fresh snapshot, so it sees
every create committed before the lock was granted. The creates of one user queue at the check;
everyone else's, and every other write, are untouched.

The lock is not the owner's lock of 0005/0007 (``hashtextextended(user_id, 13)``): the placement
triggers take that one *after* the row locks a write depends on (a parent FOR SHARE, a list FOR KEY
SHARE), and a create that held it *before* taking those would wait in the opposite order (a deadlock
with an update of the parent). This lock is taken first, by creates only, and nothing that holds a row
lock or the owner's lock ever waits for it.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# ``tbl`` is a table name of ours (a constant in the statement, never user input). The two tables the API
# counts have static queries, whose plans PL/pgSQL keeps; any other goes through EXECUTE (planned per call).
UP = """
CREATE FUNCTION owned_count_locked(tbl text, owner text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(tbl || chr(31) || owner, 15));
    IF tbl = 'tasks' THEN
        SELECT count(*) INTO n FROM tasks WHERE user_id = owner;
    ELSIF tbl = 'lists' THEN
        SELECT count(*) INTO n FROM lists WHERE user_id = owner;
    ELSE
        EXECUTE format('SELECT count(*) FROM %I WHERE user_id = $1', tbl) INTO n USING owner;
    END IF;
    RETURN n;
END
$$;
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute("DROP FUNCTION owned_count_locked(text, text)")
