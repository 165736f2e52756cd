"""Incremental sync reads a transaction's rows of one user through one index: ``(user_id, change_xid, id)``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

``/sync`` walks the caller's ``sync_txns`` after the cursor and, for each, that transaction's rows of
``tasks``/``lists``. With 0009's index on ``change_xid`` alone, PostgreSQL's generic plan for that
prepared statement (chosen after five executions) ANDed it with a bitmap of the caller's *whole*
``user_id`` range once per changed transaction: 5 ms for 10 changes of a 10,000-task user, where the
statement needs 0.1 ms. It happens as soon as one transaction wrote many rows (an import, a bulk
action), which makes ``change_xid`` look unselective. This index answers both equalities directly,
whatever the statistics say, and lists a transaction's rows in id order, so a cursor that stopped
inside a big transaction resumes at its id instead of reading the transaction again. Rows written
before 0009 (no stamp) stay out of it.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLES = ("lists", "tasks")


def upgrade() -> None:
    for table in TABLES:
        op.execute(
            f"CREATE INDEX ix_{table}_user_id_change_xid ON {table} (user_id, change_xid, id) "
            "WHERE change_xid IS NOT NULL"
        )
        op.execute(f"DROP INDEX ix_{table}_change_xid")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"CREATE INDEX ix_{table}_change_xid ON {table} (change_xid) WHERE change_xid IS NOT NULL")
        op.execute(f"DROP INDEX ix_{table}_user_id_change_xid")
