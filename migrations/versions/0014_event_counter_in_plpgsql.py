"""The live-update counter is read by a PL/pgSQL function, whose plan a connection keeps.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

Every write reads its user's event counter through ``task_events_last_seq`` (0012). As a SQL-language
function whose body holds subqueries it cannot be inlined, and PostgreSQL before 18 plans such a body
again in every transaction that calls it: on PostgreSQL 15, measured with ``track_functions`` on
single-row task updates, 111-116 us of the call's own time, about a tenth of the whole update. The same
body in PL/pgSQL is planned once per connection: 24-30 us. PostgreSQL 18 caches SQL functions' plans
too: there both take 23-33 us (``bench/db_writes.py``). Same arguments, result and volatility.
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_BODY = """coalesce((SELECT c.last_seq FROM task_events_clock c WHERE c.user_id = owner),
                (SELECT h.seq_base FROM task_events_horizon h))"""

_PLPGSQL = f"""
CREATE OR REPLACE FUNCTION task_events_last_seq(owner varchar) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN {_BODY};
END $$
"""

# As 0012 created it.
_SQL = f"""
CREATE OR REPLACE FUNCTION task_events_last_seq(owner varchar) RETURNS bigint LANGUAGE sql STABLE
RETURN {_BODY}
"""


def upgrade() -> None:
    op.execute(_PLPGSQL)


def downgrade() -> None:
    op.execute(_SQL)
