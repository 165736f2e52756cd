"""Live updates: a notification carries its events whole when they fit, so listeners need no query.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

Until now every ``NOTIFY task_events`` carried ``"<first id> <last id> <user id>"`` and each listening
worker read the events from ``task_events`` in a query per batch: one more round trip and one more
query on the database for every write that somebody watches. Now ``task_events_notify`` sends

    +<length of the user id> <user id>\\n<id> <type> <data>[\\n<id> <type> <data> ...]

when that is shorter than NOTIFY's 8,000-byte limit (any single task but the very largest; the user id
is length-prefixed, and the JSON holds no raw newlines), and the old form otherwise. The trigger
functions of 0005 are re-created with only their ``pg_notify`` call replaced by this function.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Only a user's events spanning fewer than 16 ids are tried inline: a larger statement's events would
# not fit anyway, and are not worth aggregating to find that out.
_NOTIFY = """
CREATE FUNCTION task_events_notify(owner varchar, first_id bigint, last_id bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    body text;
BEGIN
    IF last_id - first_id < 16 THEN
        SELECT '+' || length(owner) || ' ' || owner
               || string_agg(E'\\n' || e.id || ' ' || e.type || ' ' || e.data::text, '' ORDER BY e.id)
        INTO body
        FROM task_events e WHERE e.user_id = owner AND e.id BETWEEN first_id AND last_id;
        IF octet_length(body) < 8000 THEN
            PERFORM pg_notify('task_events', body);
            RETURN;
        END IF;
    END IF;
    PERFORM pg_notify('task_events', first_id || ' ' || last_id || ' ' || owner);
END $$
"""
_OLD_CALL = "PERFORM pg_notify('task_events', first_id || ' ' || last_id || ' ' || u.user_id);"
_NEW_CALL = "PERFORM task_events_notify(u.user_id, first_id, last_id);"


def _previous() -> ModuleType:
    """Migration 0005, whose trigger functions are re-created here (a migration file never changes)."""
    path = Path(__file__).with_name("0005_task_events.py")
    spec = importlib.util.spec_from_file_location("_tasks_migration_0005", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trigger_functions(notify: str) -> list[str]:
    """0005's three trigger functions, as CREATE OR REPLACE, with ``notify`` as their NOTIFY call."""
    previous = _previous()
    functions = []
    for source in (previous._INSERT, previous._UPDATE, previous._DELETE):
        assert source.count(_OLD_CALL) == 1, "0005's trigger functions changed"
        functions.append(
            source.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1).replace(_OLD_CALL, notify)
        )
    return functions


def upgrade() -> None:
    op.execute(_NOTIFY)
    for function in _trigger_functions(_NEW_CALL):
        op.execute(function)


def downgrade() -> None:
    for function in _trigger_functions(_OLD_CALL):
        op.execute(function)
    op.execute("DROP FUNCTION task_events_notify(varchar, bigint, bigint)")
