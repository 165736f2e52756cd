"""Live updates: every committed change of ``tasks`` is written to ``task_events`` and announced by NOTIFY.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

Statement-level AFTER triggers with transition tables do the work inside the writing statement, so a
write stays one round trip, an event exists exactly when its change committed, and changes made by any
API instance or by SQL run by hand are announced alike.

- ``task_events`` (the outbox) holds each event whole; ``NOTIFY task_events`` carries only
  ``"<first id> <last id> <user id>"``. The largest task the API allows is 9,300+ bytes of JSON (255 +
  1,000 + 10 x 30 characters, each control character escaped to six bytes), past NOTIFY's 8,000-byte
  limit; the outbox also lets a reconnecting client be given what it missed (``Last-Event-ID``).
- One statement that changes several tasks of a user in the way the bulk endpoints do (every row's
  ``completed`` set to the same new value and nothing else; or only completed tasks deleted) is one
  ``tasks.changed`` event with the count. Any other statement gives one event per task.
- ``event_streams`` counts the open streams of each user across every worker and instance (the
  per-user limit); each worker refreshes its rows, so the rows of a worker that died expire.
- A transaction-scoped advisory lock per user, taken before an event id is drawn, makes one user's
  event ids follow commit order: a reader asking for "ids after N" can never miss an event that was
  still uncommitted when it last looked. It is held from the end of the statement to the commit.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# In each function: the user's lock is hashtextextended(user_id, 13) (the seed keeps these keys apart
# from any other advisory lock), taken before an event id is drawn; then one NOTIFY per user.
_INSERT = """
CREATE FUNCTION task_events_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    u record;
    first_id bigint;
    last_id bigint;
BEGIN
    FOR u IN SELECT DISTINCT n.user_id FROM new_rows n ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(u.user_id, 13));
        WITH added AS (
            INSERT INTO task_events (user_id, type, data)
            SELECT n.user_id, 'task.created', row_to_json(n) FROM new_rows n
            WHERE n.user_id = u.user_id ORDER BY n.id
            RETURNING id
        )
        SELECT min(id), max(id) INTO first_id, last_id FROM added;
        PERFORM pg_notify('task_events', first_id || ' ' || last_id || ' ' || u.user_id);
    END LOOP;
    RETURN NULL;
END $$
"""

_UPDATE = """
CREATE FUNCTION task_events_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    u record;
    first_id bigint;
    last_id bigint;
BEGIN
    FOR u IN
        SELECT n.user_id,
               count(*) AS changed,
               count(DISTINCT n.completed) = 1 AND bool_and(
                   o.user_id = n.user_id
                   AND o.completed IS DISTINCT FROM n.completed
                   AND (o.title, o.description, o.priority, o.tags, o.due_at)
                       IS NOT DISTINCT FROM (n.title, n.description, n.priority, n.tags, n.due_at)
               ) AS completion_only
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        GROUP BY n.user_id
        UNION ALL
        -- A task moved to another user by hand: it is gone for its previous owner.
        SELECT o.user_id, 0, false FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.user_id <> n.user_id AND o.user_id NOT IN (SELECT user_id FROM new_rows)
        GROUP BY o.user_id
        ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(u.user_id, 13));
        IF u.changed > 1 AND u.completion_only THEN
            INSERT INTO task_events (user_id, type, data)
            VALUES (u.user_id, 'tasks.changed', json_build_object('action', 'complete-all', 'count', u.changed))
            RETURNING id INTO first_id;
            last_id := first_id;
        ELSE
            WITH added AS (
                INSERT INTO task_events (user_id, type, data)
                SELECT u.user_id, e.type, e.data FROM (
                    SELECT n.id, 'task.updated' AS type, row_to_json(n) AS data FROM new_rows n
                    WHERE n.user_id = u.user_id
                    UNION ALL
                    SELECT o.id, 'task.deleted', json_build_object('id', o.id, 'version', o.version)
                    FROM old_rows o JOIN new_rows n ON n.id = o.id
                    WHERE o.user_id = u.user_id AND n.user_id <> u.user_id
                ) e ORDER BY e.id
                RETURNING id
            )
            SELECT min(id), max(id) INTO first_id, last_id FROM added;
        END IF;
        PERFORM pg_notify('task_events', first_id || ' ' || last_id || ' ' || u.user_id);
    END LOOP;
    RETURN NULL;
END $$
"""

_DELETE = """
CREATE FUNCTION task_events_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    u record;
    first_id bigint;
    last_id bigint;
BEGIN
    FOR u IN
        SELECT o.user_id, count(*) AS changed, bool_and(o.completed) AS all_completed
        FROM old_rows o GROUP BY o.user_id ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(u.user_id, 13));
        IF u.changed > 1 AND u.all_completed THEN
            INSERT INTO task_events (user_id, type, data)
            VALUES (u.user_id, 'tasks.changed', json_build_object('action', 'clear-completed', 'count', u.changed))
            RETURNING id INTO first_id;
            last_id := first_id;
        ELSE
            WITH added AS (
                INSERT INTO task_events (user_id, type, data)
                SELECT o.user_id, 'task.deleted', json_build_object('id', o.id, 'version', o.version)
                FROM old_rows o WHERE o.user_id = u.user_id ORDER BY o.id
                RETURNING id
            )
            SELECT min(id), max(id) INTO first_id, last_id FROM added;
        END IF;
        PERFORM pg_notify('task_events', first_id || ' ' || last_id || ' ' || u.user_id);
    END LOOP;
    RETURN NULL;
END $$
"""

# TRUNCATE names no rows: every listener tells every stream to refetch.
_TRUNCATE = """
CREATE FUNCTION task_events_after_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('task_events', '*');
    RETURN NULL;
END $$
"""

# Deletes the events older than ``keep`` and records how far: a Last-Event-ID below that mark is
# answered with a resync. Walks the primary key from the oldest event and stops at the first one
# to keep, so its cost is the rows it deletes (ids follow time closely enough for a retention window).
_PURGE = """
CREATE FUNCTION task_events_purge(keep interval) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    cut bigint;
BEGIN
    SELECT id - 1 INTO cut FROM task_events WHERE created_at >= now() - keep ORDER BY id LIMIT 1;
    IF cut IS NULL THEN
        SELECT max(id) INTO cut FROM task_events;
    END IF;
    IF cut IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM task_events WHERE id <= cut;
    UPDATE task_events_horizon SET purged_through = greatest(purged_through, cut);
    RETURN cut;
END $$
"""

# Admit one more stream of ``owner`` if fewer than ``most`` are open (rows not refreshed within
# ``fresh`` belong to a worker that is gone). The lock makes check-and-insert atomic per user.
_STREAM_OPEN = """
CREATE FUNCTION event_stream_open(stream uuid, owner varchar, most integer, fresh interval)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(owner, 14));
    DELETE FROM event_streams WHERE user_id = owner AND seen_at < now() - fresh;
    IF (SELECT count(*) FROM event_streams WHERE user_id = owner) >= most THEN
        RETURN false;
    END IF;
    INSERT INTO event_streams (id, user_id) VALUES (stream, owner);
    RETURN true;
END $$
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE task_events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id varchar(255) NOT NULL,
            type text NOT NULL,
            data json NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # Replay for one user after a Last-Event-ID, and the listener's fetch by (user, id range).
    op.execute("CREATE INDEX ix_task_events_user_id_id ON task_events (user_id, id)")
    op.execute(
        "CREATE TABLE task_events_horizon (one boolean PRIMARY KEY DEFAULT true CHECK (one), "
        "purged_through bigint NOT NULL)"
    )
    op.execute("INSERT INTO task_events_horizon (purged_through) VALUES (0)")
    # Unlogged: cheap to write, and emptied by a crash, which ends every stream anyway.
    op.execute(
        "CREATE UNLOGGED TABLE event_streams (id uuid PRIMARY KEY, user_id varchar(255) NOT NULL, "
        "seen_at timestamptz NOT NULL DEFAULT now())"
    )
    op.execute("CREATE INDEX ix_event_streams_user_id ON event_streams (user_id)")
    for function in (_INSERT, _UPDATE, _DELETE, _TRUNCATE, _PURGE, _STREAM_OPEN):
        op.execute(function)
    for event, table in (("INSERT", "NEW TABLE AS new_rows"), ("DELETE", "OLD TABLE AS old_rows")):
        op.execute(
            f"CREATE TRIGGER task_events_after_{event.lower()} AFTER {event} ON tasks "
            f"REFERENCING {table} FOR EACH STATEMENT EXECUTE FUNCTION task_events_after_{event.lower()}()"
        )
    op.execute(
        "CREATE TRIGGER task_events_after_update AFTER UPDATE ON tasks "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION task_events_after_update()"
    )
    op.execute(
        "CREATE TRIGGER task_events_after_truncate AFTER TRUNCATE ON tasks "
        "FOR EACH STATEMENT EXECUTE FUNCTION task_events_after_truncate()"
    )


def downgrade() -> None:
    for event in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER task_events_after_{event} ON tasks")
        op.execute(f"DROP FUNCTION task_events_after_{event}()")
    op.execute("DROP FUNCTION task_events_purge(interval)")
    op.execute("DROP FUNCTION event_stream_open(uuid, varchar, integer, interval)")
    op.execute("DROP TABLE event_streams")
    op.execute("DROP TABLE task_events_horizon")
    op.execute("DROP TABLE task_events")
