"""Live updates: an event's id counts its user's own events, so its gaps never show other users' activity.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

Until now a stream's ids were ``task_events.id``, one identity for everyone: a user saw them jump by
the number of other users' changes in between. Now each event also gets ``user_seq``, the next number of
its user's own counter, ``task_events_clock.last_seq``; streams, replays and notifications use it, and
``id`` stays the internal key (the purge walks it).

- WHY A USER'S NUMBERS FOLLOW COMMIT ORDER, WITH NO GAPS: the trigger functions read the counter and
  write it back under the owner's lock ``hashtextextended(user_id, 13)``, which they already take
  before writing events and which is held until the commit (see 0005 and 0009). The next transaction of
  that user reads the counter only once it holds the lock, so after the commit. A transaction that
  rolls back rolls its counter back too: unlike a sequence, it leaves no hole. So the numbers of a
  user are 1, 2, 3, ... in commit order, and a reader that sees number n committed has every smaller
  one too (``Last-Event-ID`` replays count on it: the events after n are exactly n+1 .. the counter).
- Numbers handed out before this migration were global: a client may still hold one (a tab kept open
  across the deploy, an id kept in sessionStorage). So that none of them is ever taken for a new one,
  every user's numbering starts above the last global id handed out (``task_events_horizon.seq_base``;
  0 on a new database): an old id is below the user's first event, its events are not there, and the
  replay says ``resync``. The events kept from before (15 minutes' worth, global ids only) are deleted.
- ``task_events_notify`` becomes ``task_events_publish``: it also records the user's new counter value,
  once per user and statement; the notification's format is the same, with the new numbers.
"""

# ruff: noqa: S608 - the SQL is assembled from this file's own constants, no input.
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_IDENTITY = "pg_get_serial_sequence('task_events', 'id')::regclass"

# The last number given to ``owner`` (its next event gets this + 1). Read under the owner's lock.
_LAST_SEQ = """
CREATE FUNCTION task_events_last_seq(owner varchar) RETURNS bigint LANGUAGE sql STABLE
RETURN coalesce((SELECT c.last_seq FROM task_events_clock c WHERE c.user_id = owner),
                (SELECT h.seq_base FROM task_events_horizon h))
"""

# Records ``last_id`` as the user's counter, then announces its events ``first_id`` .. ``last_id``: whole
# when they fit in NOTIFY's 8,000 bytes, else as the range (as 0006's task_events_notify did).
_PUBLISH = """
CREATE FUNCTION task_events_publish(owner varchar, first_id bigint, last_id bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    body text;
BEGIN
    IF last_id IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO task_events_clock AS c (user_id, last_seq) VALUES (owner, last_id)
    ON CONFLICT (user_id) DO UPDATE SET last_seq = greatest(c.last_seq, excluded.last_seq);
    IF last_id - first_id < 16 THEN
        SELECT '+' || length(owner) || ' ' || owner
               || string_agg(E'\\n' || e.user_seq || ' ' || e.type || ' ' || e.data::text, '' ORDER BY e.user_seq)
        INTO body
        FROM task_events e WHERE e.user_id = owner AND e.user_seq BETWEEN first_id AND last_id;
        IF octet_length(body) < 8000 THEN
            PERFORM pg_notify('task_events', body);
            RETURN;
        END IF;
    END IF;
    PERFORM pg_notify('task_events', first_id || ' ' || last_id || ' ' || owner);
END $$
"""

# Each trigger function below is its previous version (0006 for tasks inserts, 0007 for the rest) with
# only the numbering changed: under the lock, ``s`` is the user's last number; the events get s + 1,
# s + 2, ... in the order their ids are drawn; task_events_publish records and announces them.
_DECLARE = """
DECLARE
    u record;
    s bigint;
    first_id bigint;
    last_id bigint;
BEGIN"""
_LOCK = """
        PERFORM pg_advisory_xact_lock(hashtextextended(u.user_id, 13));
        s := task_events_last_seq(u.user_id);"""
_PUBLISH_CALL = "PERFORM task_events_publish(u.user_id, first_id, last_id);"

_TASKS_INSERT = f"""
CREATE OR REPLACE FUNCTION task_events_after_insert() RETURNS trigger LANGUAGE plpgsql AS $${_DECLARE}
    FOR u IN SELECT DISTINCT n.user_id FROM new_rows n ORDER BY 1 LOOP{_LOCK}
        WITH added AS (
            INSERT INTO task_events (user_id, user_seq, type, data)
            SELECT n.user_id, s + row_number() OVER (ORDER BY n.id), 'task.created', row_to_json(n)
            FROM new_rows n WHERE n.user_id = u.user_id ORDER BY n.id
            RETURNING user_seq
        )
        SELECT min(user_seq), max(user_seq) INTO first_id, last_id FROM added;
        {_PUBLISH_CALL}
    END LOOP;
    RETURN NULL;
END $$
"""

_TASKS_UPDATE = f"""
CREATE OR REPLACE FUNCTION task_events_after_update() RETURNS trigger LANGUAGE plpgsql AS $${_DECLARE}
    FOR u IN
        SELECT n.user_id,
               count(*) AS changed,
               count(DISTINCT n.completed) = 1 AND bool_and(
                   o.user_id = n.user_id
                   AND o.completed IS DISTINCT FROM n.completed
                   AND (o.title, o.description, o.priority, o.tags, o.due_at, o.list_id, o.parent_id, o.position)
                       IS NOT DISTINCT FROM
                       (n.title, n.description, n.priority, n.tags, n.due_at, n.list_id, n.parent_id, n.position)
               ) AS completion_only
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        GROUP BY n.user_id
        UNION ALL
        SELECT o.user_id, 0, false FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.user_id <> n.user_id AND o.user_id NOT IN (SELECT user_id FROM new_rows)
        GROUP BY o.user_id
        ORDER BY 1
    LOOP{_LOCK}
        IF u.changed > 1 AND u.completion_only THEN
            INSERT INTO task_events (user_id, user_seq, type, data)
            VALUES (u.user_id, s + 1, 'tasks.changed',
                    json_build_object('action', 'complete-all', 'count', u.changed));
            first_id := s + 1;
            last_id := s + 1;
        ELSE
            WITH added AS (
                INSERT INTO task_events (user_id, user_seq, type, data)
                SELECT u.user_id, s + row_number() OVER (ORDER BY e.id), e.type, e.data FROM (
                    SELECT n.id, 'task.updated' AS type, row_to_json(n) AS data FROM new_rows n
                    WHERE n.user_id = u.user_id
                    UNION ALL
                    SELECT o.id, 'task.deleted', json_build_object('id', o.id, 'version', o.version)
                    FROM old_rows o JOIN new_rows n ON n.id = o.id
                    WHERE o.user_id = u.user_id AND n.user_id <> u.user_id
                ) e ORDER BY e.id
                RETURNING user_seq
            )
            SELECT min(user_seq), max(user_seq) INTO first_id, last_id FROM added;
        END IF;
        {_PUBLISH_CALL}
    END LOOP;
    RETURN NULL;
END $$
"""

_TASKS_DELETE = f"""
CREATE OR REPLACE FUNCTION task_events_after_delete() RETURNS trigger LANGUAGE plpgsql AS $${_DECLARE}
    FOR u IN
        SELECT o.user_id,
               count(*) FILTER (WHERE NOT o.list_gone) AS changed,
               bool_and(o.completed) FILTER (WHERE NOT o.list_gone) AS all_completed,
               count(*) FILTER (WHERE o.list_gone) AS list_deleted
        FROM (
            SELECT o.*, o.list_id IS NOT NULL AND NOT EXISTS (SELECT FROM lists l WHERE l.id = o.list_id) AS list_gone
            FROM old_rows o
        ) o
        GROUP BY o.user_id ORDER BY 1
    LOOP{_LOCK}
        first_id := NULL;
        last_id := NULL;
        IF u.list_deleted > 0 THEN
            s := s + 1;
            INSERT INTO task_events (user_id, user_seq, type, data)
            VALUES (u.user_id, s, 'tasks.changed',
                    json_build_object('action', 'list-deleted', 'count', u.list_deleted));
            first_id := s;
            last_id := s;
        END IF;
        IF u.changed > 1 AND u.all_completed AND pg_trigger_depth() = 1 THEN
            s := s + 1;
            INSERT INTO task_events (user_id, user_seq, type, data)
            VALUES (u.user_id, s, 'tasks.changed',
                    json_build_object('action', 'clear-completed', 'count', u.changed));
            first_id := coalesce(first_id, s);
            last_id := s;
        ELSIF u.changed > 0 THEN
            WITH added AS (
                INSERT INTO task_events (user_id, user_seq, type, data)
                SELECT o.user_id, s + row_number() OVER (ORDER BY o.id), 'task.deleted',
                       json_build_object('id', o.id, 'version', o.version)
                FROM old_rows o WHERE o.user_id = u.user_id
                AND NOT (o.list_id IS NOT NULL AND NOT EXISTS (SELECT FROM lists l WHERE l.id = o.list_id))
                ORDER BY o.id
                RETURNING user_seq
            )
            SELECT coalesce(first_id, min(user_seq)), max(user_seq) INTO first_id, last_id FROM added;
        END IF;
        {_PUBLISH_CALL}
    END LOOP;
    RETURN NULL;
END $$
"""


def _lists_functions() -> list[str]:
    """``list.created/updated/deleted`` for each row a statement on ``lists`` changes (as 0007)."""
    functions = []
    for op_name, select in (
        ("insert", "'list.created', row_to_json(n) FROM new_rows n"),
        ("update", "'list.updated', row_to_json(n) FROM new_rows n"),
        ("delete", "'list.deleted', json_build_object('id', n.id, 'version', n.version) FROM old_rows n"),
    ):
        rows = "old_rows" if op_name == "delete" else "new_rows"
        functions.append(f"""
CREATE OR REPLACE FUNCTION lists_events_after_{op_name}() RETURNS trigger LANGUAGE plpgsql AS $${_DECLARE}
    FOR u IN SELECT DISTINCT n.user_id FROM {rows} n ORDER BY 1 LOOP{_LOCK}
        WITH added AS (
            INSERT INTO task_events (user_id, user_seq, type, data)
            SELECT n.user_id, s + row_number() OVER (ORDER BY n.id), {select}
            WHERE n.user_id = u.user_id ORDER BY n.id
            RETURNING user_seq
        )
        SELECT min(user_seq), max(user_seq) INTO first_id, last_id FROM added;
        {_PUBLISH_CALL}
    END LOOP;
    RETURN NULL;
END $$
""")
    return functions


def _migration(name: str) -> ModuleType:
    """An earlier migration, whose function texts the downgrade restores (a migration file never changes)."""
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(f"_tasks_migration_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _previous_functions() -> list[str]:
    """The trigger functions as 0011 left them: tasks inserts from 0006, the others from 0007."""
    m0006 = _migration("0006_task_events_inline.py")
    m0007 = _migration("0007_lists_subtasks_order.py")
    tasks_insert = m0006._trigger_functions(m0006._NEW_CALL)[0]
    assert "task_events_after_insert()" in tasks_insert
    lists = [
        f.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
        for f in m0007._row_events("list", "lists")
    ]
    return [m0006._NOTIFY, tasks_insert, m0007._TASKS_UPDATE, m0007._TASKS_DELETE, *lists]


def upgrade() -> None:
    # The column first: its ACCESS EXCLUSIVE lock keeps writers out until the migration commits, so no
    # event without a number can slip in between the delete and NOT NULL.
    op.execute("ALTER TABLE task_events ADD COLUMN user_seq bigint")
    op.execute("DELETE FROM task_events")
    op.execute("ALTER TABLE task_events ALTER COLUMN user_seq SET NOT NULL")
    # Replays and the listener's reads go by (user, number); the unique index also refuses a number
    # handed out twice, should anything ever write events without the lock.
    op.execute("CREATE UNIQUE INDEX ix_task_events_user_id_user_seq ON task_events (user_id, user_seq)")
    op.execute("DROP INDEX ix_task_events_user_id_id")
    op.execute("ALTER TABLE task_events_horizon ADD COLUMN seq_base bigint NOT NULL DEFAULT 0")
    op.execute(f"UPDATE task_events_horizon SET seq_base = coalesce(pg_sequence_last_value({_IDENTITY}), 0)")
    op.execute("CREATE TABLE task_events_clock (user_id varchar(255) PRIMARY KEY, last_seq bigint NOT NULL)")
    for function in (_LAST_SEQ, _PUBLISH, _TASKS_INSERT, _TASKS_UPDATE, _TASKS_DELETE, *_lists_functions()):
        op.execute(function)
    op.execute("DROP FUNCTION task_events_notify(varchar, bigint, bigint)")


def downgrade() -> None:
    for function in _previous_functions():
        op.execute(function)
    op.execute("DROP FUNCTION task_events_publish(varchar, bigint, bigint)")
    op.execute("DROP FUNCTION task_events_last_seq(varchar)")
    # The same care the other way: the global ids go on above every per-user number handed out, and
    # the events kept are gone, so a per-user number a client still holds is below the purge mark
    # (resync), never taken for a global id.
    op.execute("DELETE FROM task_events")
    op.execute(
        f"SELECT setval({_IDENTITY}, greatest(coalesce(pg_sequence_last_value({_IDENTITY}), 0), "
        "(SELECT coalesce(max(last_seq), 0) FROM task_events_clock), 1))"
    )
    op.execute(
        f"UPDATE task_events_horizon SET purged_through = coalesce(pg_sequence_last_value({_IDENTITY}), 0)"
    )
    op.execute("DROP TABLE task_events_clock")
    op.execute("ALTER TABLE task_events_horizon DROP COLUMN seq_base")
    op.execute("CREATE INDEX ix_task_events_user_id_id ON task_events (user_id, id)")
    op.execute("DROP INDEX ix_task_events_user_id_user_seq")
    op.execute("ALTER TABLE task_events DROP COLUMN user_seq")
