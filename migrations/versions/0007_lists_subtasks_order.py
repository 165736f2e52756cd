"""Lists, subtasks and a manual order: ``lists``, and ``list_id``, ``parent_id``, ``position`` on tasks.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

Every rule lives in the database, so concurrent requests cannot break it:

- Ownership: ``(list_id, user_id)`` and ``(parent_id, user_id)`` are foreign keys to ``(id, user_id)`` of
  ``lists`` and ``tasks`` (MATCH SIMPLE: a NULL is the inbox, or a top-level task). Deleting a list or a
  parent deletes its tasks in the same statement (ON DELETE CASCADE).
- Placement (``tasks_place``, BEFORE INSERT/UPDATE): one level of subtasks, a subtask always in its
  parent's list, and a task inserted without a position, or whose group changes without a new one,
  goes last in its group. A parent that changes lists carries its subtasks (``tasks_carry``, AFTER
  UPDATE: each gets version + 1 and so a ``task.updated`` event). Errors carry the SQLSTATEs of
  ``backend.data.ordering``.
- Positions: fractional-index keys (``position_key_between``), unique among siblings (``UNIQUE NULLS
  NOT DISTINCT (user_id, list_id, parent_id, position)``). ``tasks_move`` / ``lists_move`` place a row
  right after a sibling in one call. When a key would pass 255 characters the group is renumbered with
  consecutive integer keys above its largest key, so no row ever takes a key another still holds and
  the constraints need not be deferrable (which would cost every bulk write a recheck per row).
- Locks: every placement first locks the rows it depends on (the row itself, the parent FOR SHARE, the
  list FOR KEY SHARE, a moving parent's subtasks FOR UPDATE), then the owner's advisory lock
  ``hashtextextended(user_id, 13)`` (the one the event triggers already take at the end of every
  write, after its row locks: same order, so the two do not deadlock), then reads the group afresh.
  Placements of one user are serialised; a key is chosen from neighbours nobody else can change.
- Events: ``lists`` gets ``list.created/updated/deleted``; deleting a list gives one
  ``tasks.changed`` (``list-deleted``) for the tasks it held; a parent's cascade gives ``task.deleted``
  per subtask.

Backfill: existing tasks get the keys a0, a1, ... in their owner's inbox by (created_at, id). Measured
on 100,000 tasks (one user with 20,000, 99 with ~808 each; PostgreSQL 18 on a 2-core box shared with
other jobs, load average 7-10): the whole upgrade took 5.7 s and 8.5 s in two runs (the update 1.7-3.0
s, rebuilding the five indexes 2.3-3.8 s, the new constraints and indexes 0.9-1.2 s). Updated through
its indexes, the same update took 15 s; so they are dropped first and rebuilt after.
"""

# ruff: noqa: S608 - the SQL is assembled from this file's own constants (table and column names), no input.
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# The fractional-indexing scheme (the ``fractional-indexing`` package, which backend.data.positions
# wraps and the tests compare these with). Keys are compared byte by byte (COLLATE "C").
_KEYS = [
    f"""
CREATE FUNCTION position_midpoint(a text, b text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    digits CONSTANT text := '{DIGITS}';
    n int := 0;
    da int;
    db int;
BEGIN
    IF b IS NOT NULL THEN
        WHILE n < length(b) AND substr(rpad(a, length(b), '0'), n + 1, 1) = substr(b, n + 1, 1) LOOP
            n := n + 1;
        END LOOP;
        IF n > 0 THEN
            RETURN left(b, n) || position_midpoint(substr(a, n + 1), substr(b, n + 1));
        END IF;
    END IF;
    da := CASE WHEN a = '' THEN 0 ELSE strpos(digits, left(a, 1)) - 1 END;
    db := CASE WHEN b IS NULL THEN 62 ELSE strpos(digits, left(b, 1)) - 1 END;
    IF db - da > 1 THEN
        RETURN substr(digits, (da + db + 1) / 2 + 1, 1);
    ELSIF b IS NOT NULL AND length(b) > 1 THEN
        RETURN left(b, 1);
    END IF;
    RETURN substr(digits, da + 1, 1) || position_midpoint(substr(a, 2), NULL);
END $$
""",
    """
CREATE FUNCTION position_integer_length(head text) RETURNS int LANGUAGE sql IMMUTABLE
RETURN CASE WHEN ascii(head) BETWEEN 97 AND 122 THEN ascii(head) - 95
            WHEN ascii(head) BETWEEN 65 AND 90 THEN 92 - ascii(head) END
""",
    f"""
CREATE FUNCTION position_increment(x text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    digits CONSTANT text := '{DIGITS}';
    head text := left(x, 1);
    digs text := substr(x, 2);
    d int;
BEGIN
    FOR i IN REVERSE length(digs)..1 LOOP
        d := strpos(digits, substr(digs, i, 1));
        IF d < 62 THEN
            RETURN head || overlay(digs PLACING substr(digits, d + 1, 1) FROM i FOR 1);
        END IF;
        digs := overlay(digs PLACING '0' FROM i FOR 1);
    END LOOP;
    IF head = 'Z' THEN
        RETURN 'a0';
    ELSIF head = 'z' THEN
        RETURN NULL;
    END IF;
    head := chr(ascii(head) + 1);
    IF ascii(head) > 97 THEN
        RETURN head || digs || '0';
    END IF;
    RETURN head || left(digs, -1);
END $$
""",
    f"""
CREATE FUNCTION position_decrement(x text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    digits CONSTANT text := '{DIGITS}';
    head text := left(x, 1);
    digs text := substr(x, 2);
    d int;
BEGIN
    FOR i IN REVERSE length(digs)..1 LOOP
        d := strpos(digits, substr(digs, i, 1));
        IF d > 1 THEN
            RETURN head || overlay(digs PLACING substr(digits, d - 1, 1) FROM i FOR 1);
        END IF;
        digs := overlay(digs PLACING 'z' FROM i FOR 1);
    END LOOP;
    IF head = 'a' THEN
        RETURN 'Zz';
    ELSIF head = 'A' THEN
        RETURN NULL;
    END IF;
    head := chr(ascii(head) - 1);
    IF ascii(head) < 90 THEN
        RETURN head || digs || 'z';
    END IF;
    RETURN head || left(digs, -1);
END $$
""",
    """
CREATE FUNCTION position_key_between(a text, b text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    ia text;
    ib text;
    i text;
BEGIN
    IF a COLLATE "C" >= b COLLATE "C" THEN
        RAISE EXCEPTION 'position keys out of order: % >= %', a, b;
    END IF;
    IF a IS NULL THEN
        IF b IS NULL THEN
            RETURN 'a0';
        END IF;
        ib := left(b, position_integer_length(b));
        IF ib = 'A00000000000000000000000000' THEN
            RETURN ib || position_midpoint('', substr(b, length(ib) + 1));
        ELSIF length(ib) < length(b) THEN
            RETURN ib;
        END IF;
        i := position_decrement(ib);
        IF i IS NULL THEN
            RAISE EXCEPTION 'position key cannot be decremented: %', b;
        END IF;
        RETURN i;
    END IF;
    ia := left(a, position_integer_length(a));
    IF b IS NULL THEN
        RETURN coalesce(position_increment(ia), ia || position_midpoint(substr(a, length(ia) + 1), NULL));
    END IF;
    ib := left(b, position_integer_length(b));
    IF ia = ib THEN
        RETURN ia || position_midpoint(substr(a, length(ia) + 1), substr(b, length(ib) + 1));
    END IF;
    i := position_increment(ia);
    IF i IS NULL THEN
        RAISE EXCEPTION 'position key cannot be incremented: %', a;
    ELSIF i COLLATE "C" < b COLLATE "C" THEN
        RETURN i;
    END IF;
    RETURN ia || position_midpoint(substr(a, length(ia) + 1), NULL);
END $$
""",
    # The i-th (from 0) of a0, a1, ... az, b00, ...: a backfilled group, in order.
    f"""
CREATE FUNCTION position_key_at(i bigint) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    digits CONSTANT text := '{DIGITS}';
    width int := 1;
    span bigint := 62;
    key text := '';
BEGIN
    WHILE i >= span LOOP
        i := i - span;
        width := width + 1;
        span := span * 62;
    END LOOP;
    FOR k IN 1..width LOOP
        key := substr(digits, (i % 62)::int + 1, 1) || key;
        i := i / 62;
    END LOOP;
    RETURN chr(96 + width) || key;
END $$
""",
    # The inverse of position_key_at for the integer part of ``key``; -1 below a0 (heads A-Z).
    f"""
CREATE FUNCTION position_integer_index(key text) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    digits CONSTANT text := '{DIGITS}';
    width int := ascii(key) - 96;
    offset_ bigint := 0;
    span bigint := 62;
    value bigint := 0;
BEGIN
    IF width < 1 THEN
        RETURN -1;
    END IF;
    FOR k IN 1..width - 1 LOOP
        offset_ := offset_ + span;
        span := span * 62;
    END LOOP;
    FOR k IN 2..width + 1 LOOP
        value := value * 62 + strpos(digits, substr(key, k, 1)) - 1;
    END LOOP;
    RETURN offset_ + value;
END $$
""",
]
_KEY_FUNCTIONS = (
    "position_integer_index(text)",
    "position_key_at(bigint)",
    "position_key_between(text, text)",
    "position_decrement(text)",
    "position_increment(text)",
    "position_integer_length(text)",
    "position_midpoint(text, text)",
)

# The SQLSTATEs (backend.data.ordering maps them to responses).
NOT_FOUND, STALE, BAD_AFTER = "LP404", "LP412", "LPA01"
NO_LIST, NOT_PARENTS_LIST = "LPL01", "LPL02"
NO_PARENT, PARENT_IS_SUBTASK, HAS_SUBTASKS = "LPP01", "LPP02", "LPP03"
MAX_KEY_LENGTH = 255
_OWNER_LOCK = "PERFORM pg_advisory_xact_lock(hashtextextended(owner, 13));"
# The row a move is placing: tasks_place leaves it alone (the move checked it and chose its key).
_PLACING = "positions.placing"


def _raise(code: str, message: str) -> str:
    return f"RAISE EXCEPTION USING ERRCODE = '{code}', MESSAGE = '{message}';"


def _branches(group: tuple[str, ...], query: str) -> str:
    """``query`` once per NULL/non-NULL combination of the group's columns (``{g}`` in it becomes the
    predicate): each branch is a static statement whose plan walks the sibling index."""
    if not group:
        return query.replace("{g}", "TRUE")
    cases = []
    for mask in range(2 ** len(group)):
        nulls = [bool(mask >> i & 1) for i in range(len(group))]
        test = " AND ".join(f"g_{c} IS {'' if n else 'NOT '}NULL" for c, n in zip(group, nulls, strict=True))
        pred = " AND ".join(
            f"t.{c} IS NULL" if n else f"t.{c} = g_{c}" for c, n in zip(group, nulls, strict=True)
        )
        cases.append(f"{'IF' if not cases else 'ELSIF'} {test} THEN\n        {query.replace('{g}', pred)}")
    return "\n    ".join(cases) + "\n    END IF;"


def _group_functions(table: str, group: tuple[str, ...]) -> list[str]:
    params = "".join(f", g_{c} uuid" for c in group)
    args = "".join(f", g_{c}" for c in group)
    same = " AND ".join([f"t.{c} IS NOT DISTINCT FROM g_{c}" for c in group] or ["TRUE"])
    sets = "".join(f", {c} = g_{c}" for c in group)
    # The group's columns lead the ORDER BY although they are fixed by the WHERE: PostgreSQL does not
    # take ``IS NULL`` as an equality for the index order, and without them it sorts the user's whole
    # group for each key (a 20,000-row insert for one user took minutes instead of a second).
    lead = "".join(f"t.{c}, " for c in group)
    lead_desc = "".join(f"t.{c} DESC, " for c in group)
    next_key = _branches(
        group,
        f"""SELECT t.position INTO key FROM {table} t
        WHERE t.user_id = owner AND {{g}} AND t.position > coalesce(above, '') COLLATE "C"
        AND t.id IS DISTINCT FROM skip ORDER BY {lead}t.position LIMIT 1;""",
    )
    last_key = _branches(
        group,
        f"SELECT t.position INTO key FROM {table} t WHERE t.user_id = owner AND {{g}} "
        f"ORDER BY {lead_desc}t.position DESC LIMIT 1;",
    )
    return [
        # The first key above ``above`` (NULL: the first key) among the group's rows other than ``skip``.
        f"""
CREATE FUNCTION {table}_next_key(owner varchar{params}, skip uuid, above text)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    key text;
BEGIN
    {next_key}
    RETURN key;
END $$
""",
        f"""
CREATE FUNCTION {table}_last_key(owner varchar{params}) RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    key text;
BEGIN
    {last_key}
    RETURN key;
END $$
""",
        # Keys would pass the limit: the group gets consecutive integer keys above its largest key (no
        # row takes a key another still holds), in its order, with ``target`` placed right after the
        # key ``prev`` (NULL: first); every row written gets version + 1.
        f"""
CREATE FUNCTION {table}_renumber(owner varchar{params}, target uuid, prev text, now timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    base bigint := greatest(position_integer_index({table}_last_key(owner{args})) + 1, 0);
BEGIN
    UPDATE {table} t
    SET position = position_key_at(base + o.rank), version = t.version + 1, updated_at = now{sets}
    FROM (
        SELECT s.id, row_number() OVER (ORDER BY s.key COLLATE "C", s.tie) - 1 AS rank FROM (
            SELECT t.id, t.position AS key, 0 AS tie FROM {table} t
            WHERE t.user_id = owner AND {same} AND t.id <> target
            UNION ALL
            SELECT target, coalesce(prev, ''), 1
        ) s
    ) o
    WHERE t.id = o.id AND t.user_id = owner;
END $$
""",
    ]


def _move_function(table: str, group: tuple[str, ...], extra_params: str, resolve: str) -> str:
    """``{table}_move``: place ``target`` right after ``after_id`` (NULL: first) in its destination group,
    in one call. Raises the SQLSTATEs above; returns the row (unchanged when it already sits there)."""
    gvars = "".join(f"    g_{c} uuid;\n" for c in group)
    args = "".join(f", g_{c}" for c in group)
    group_of = lambda row: "(" + ", ".join([f"{row}.{c}" for c in group] + ["NULL"]) + ")"  # noqa: E731
    group_is = "(" + ", ".join([f"g_{c}" for c in group] + ["NULL"]) + ")"
    sets = "".join(f", {c} = g_{c}" for c in group)
    return f"""
CREATE FUNCTION {table}_move(owner varchar, target uuid, after_id uuid, versions integer[],
                             now timestamptz{extra_params})
RETURNS SETOF {table} LANGUAGE plpgsql AS $$
DECLARE
    r {table};
    a {table};
{gvars}    prev text COLLATE "C";
    next text COLLATE "C";
    key text;
BEGIN
    SELECT * INTO r FROM {table} t WHERE t.id = target AND t.user_id = owner FOR UPDATE;
    IF NOT FOUND THEN
        {_raise(NOT_FOUND, "no such row of the owner")}
    ELSIF versions IS NOT NULL AND NOT r.version = ANY (versions) THEN
        {_raise(STALE, "the version does not match")}
    END IF;
    {resolve}
    {_OWNER_LOCK}
    IF after_id IS NOT NULL THEN
        SELECT * INTO a FROM {table} t WHERE t.id = after_id AND t.user_id = owner;
        IF NOT FOUND OR after_id = target OR {group_of("a")} IS DISTINCT FROM {group_is} THEN
            {_raise(BAD_AFTER, "after names no sibling in the destination")}
        END IF;
        prev := a.position;
    END IF;
    next := {table}_next_key(owner{args}, target, prev);
    IF {group_of("r")} IS NOT DISTINCT FROM {group_is}
       AND r.position > coalesce(prev, '') AND (next IS NULL OR r.position < next) THEN
        RETURN NEXT r;  -- already there: nothing changes
        RETURN;
    END IF;
    key := position_key_between(prev, next);
    PERFORM set_config('{_PLACING}', target::text, true);
    IF length(key) <= {MAX_KEY_LENGTH} THEN
        RETURN QUERY UPDATE {table} t SET position = key, version = t.version + 1, updated_at = now{sets}
            WHERE t.id = target RETURNING t.*;
    ELSE
        PERFORM {table}_renumber(owner{args}, target, prev, now);
        RETURN QUERY SELECT * FROM {table} t WHERE t.id = target;
    END IF;
    PERFORM set_config('{_PLACING}', '', true);
END $$
"""


# Checks and resolves a task's group, takes the locks in the order the docstring gives, and returns the
# list it belongs in. ``explicit``: the list was given (else a subtask takes its parent's).
_TASKS_RESOLVE = f"""
CREATE FUNCTION tasks_resolve(owner varchar, self uuid, lst uuid, par uuid, explicit boolean,
                              old_list uuid, is_new boolean)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    p record;
BEGIN
    IF par IS NOT NULL THEN
        IF par = self THEN
            {_raise(NO_PARENT, "parent_id: a task cannot be its own parent")}
        END IF;
        SELECT t.list_id, t.parent_id INTO p FROM tasks t WHERE t.id = par AND t.user_id = owner FOR SHARE;
        IF NOT FOUND THEN
            {_raise(NO_PARENT, "parent_id names no task of yours")}
        ELSIF p.parent_id IS NOT NULL THEN
            {_raise(PARENT_IS_SUBTASK, "parent_id names a subtask: subtasks cannot have subtasks")}
        ELSIF explicit AND lst IS DISTINCT FROM p.list_id THEN
            {_raise(NOT_PARENTS_LIST, "list_id must be the list of the parent task")}
        END IF;
        lst := p.list_id;
    END IF;
    IF lst IS NOT NULL AND (is_new OR lst IS DISTINCT FROM old_list) THEN
        PERFORM FROM lists l WHERE l.id = lst AND l.user_id = owner FOR KEY SHARE;
        IF NOT FOUND THEN
            {_raise(NO_LIST, "list_id names no list of yours")}
        END IF;
    END IF;
    IF NOT is_new AND par IS NULL AND lst IS DISTINCT FROM old_list THEN
        -- Its subtasks move with it (tasks_carry): locked now, before the owner's lock.
        PERFORM FROM tasks t WHERE t.parent_id = self AND t.user_id = owner ORDER BY t.id FOR UPDATE;
    END IF;
    {_OWNER_LOCK}
    IF par IS NOT NULL AND NOT is_new AND EXISTS (SELECT FROM tasks t WHERE t.parent_id = self AND t.user_id = owner) THEN
        {_raise(HAS_SUBTASKS, "parent_id: a task with subtasks cannot become a subtask")}
    END IF;
    RETURN lst;
END $$
"""

_TASKS_MOVE_RESOLVE = """
    g_parent_id := CASE WHEN parent_given THEN new_parent ELSE r.parent_id END;
    g_list_id := tasks_resolve(owner, target, CASE WHEN list_given THEN new_list ELSE r.list_id END,
                               g_parent_id, list_given, r.list_id, false);
"""

_TASKS_PLACE = f"""
CREATE FUNCTION tasks_place() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.list_id := tasks_resolve(NEW.user_id, NEW.id, NEW.list_id, NEW.parent_id, NEW.list_id IS NOT NULL,
                                     NULL, true);
        IF NEW.position IS NULL THEN
            NEW.position := position_key_between(tasks_last_key(NEW.user_id, NEW.list_id, NEW.parent_id), NULL);
        END IF;
        RETURN NEW;
    END IF;
    IF current_setting('{_PLACING}', true) = NEW.id::text
       OR (NEW.user_id, NEW.list_id, NEW.parent_id) IS NOT DISTINCT FROM (OLD.user_id, OLD.list_id, OLD.parent_id) THEN
        RETURN NEW;
    END IF;
    NEW.list_id := tasks_resolve(NEW.user_id, NEW.id, NEW.list_id, NEW.parent_id,
                                 NEW.list_id IS DISTINCT FROM OLD.list_id, OLD.list_id, false);
    -- A new group without a new key: last there. A subtask carried along with its parent keeps its key.
    IF NEW.position IS NOT DISTINCT FROM OLD.position AND NOT coalesce(NEW.parent_id = OLD.parent_id, false) THEN
        NEW.position := position_key_between(tasks_last_key(NEW.user_id, NEW.list_id, NEW.parent_id), NULL);
    END IF;
    RETURN NEW;
END $$
"""

_TASKS_CARRY = """
CREATE FUNCTION tasks_carry() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasks t SET list_id = NEW.list_id, version = t.version + 1, updated_at = NEW.updated_at
    WHERE t.parent_id = NEW.id AND t.user_id = NEW.user_id AND t.list_id IS DISTINCT FROM NEW.list_id;
    RETURN NULL;
END $$
"""

_LISTS_PLACE = """
CREATE FUNCTION lists_place() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.position IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(NEW.user_id, 13));
        NEW.position := position_key_between(lists_last_key(NEW.user_id), NULL);
    END IF;
    RETURN NEW;
END $$
"""

# ----- events ---------------------------------------------------------------------------------------
_NOTIFY = "PERFORM task_events_notify(u.user_id, first_id, last_id);"

# As 0005/0006, with the new columns among those a bulk completion leaves alone.
_TASKS_UPDATE = f"""
CREATE OR REPLACE FUNCTION task_events_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
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
        {_NOTIFY}
    END LOOP;
    RETURN NULL;
END $$
"""

# As 0005/0006, and: tasks deleted because their list was (the list's cascade) are one tasks.changed
# "list-deleted" with their count; a cascade (pg_trigger_depth() > 1: a parent's subtasks) is never
# taken for a "clear completed".
_TASKS_DELETE = f"""
CREATE OR REPLACE FUNCTION task_events_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    u record;
    first_id bigint;
    last_id bigint;
BEGIN
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
    LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(u.user_id, 13));
        first_id := NULL;
        IF u.list_deleted > 0 THEN
            INSERT INTO task_events (user_id, type, data)
            VALUES (u.user_id, 'tasks.changed', json_build_object('action', 'list-deleted', 'count', u.list_deleted))
            RETURNING id INTO first_id;
            last_id := first_id;
        END IF;
        IF u.changed > 1 AND u.all_completed AND pg_trigger_depth() = 1 THEN
            INSERT INTO task_events (user_id, type, data)
            VALUES (u.user_id, 'tasks.changed', json_build_object('action', 'clear-completed', 'count', u.changed))
            RETURNING id INTO last_id;
            first_id := coalesce(first_id, last_id);
        ELSIF u.changed > 0 THEN
            WITH added AS (
                INSERT INTO task_events (user_id, type, data)
                SELECT o.user_id, 'task.deleted', json_build_object('id', o.id, 'version', o.version)
                FROM old_rows o WHERE o.user_id = u.user_id
                AND NOT (o.list_id IS NOT NULL AND NOT EXISTS (SELECT FROM lists l WHERE l.id = o.list_id))
                ORDER BY o.id
                RETURNING id
            )
            SELECT coalesce(first_id, min(id)), max(id) INTO first_id, last_id FROM added;
        END IF;
        {_NOTIFY}
    END LOOP;
    RETURN NULL;
END $$
"""


def _row_events(kind: str, table: str) -> list[str]:
    """``<kind>.created/updated/deleted`` for each row a statement on ``table`` changes."""
    functions = []
    for op_name, rows, select in (
        ("insert", "new_rows", f"'{kind}.created', row_to_json(n) FROM new_rows n"),
        ("update", "new_rows", f"'{kind}.updated', row_to_json(n) FROM new_rows n"),
        (
            "delete",
            "old_rows",
            f"'{kind}.deleted', json_build_object('id', n.id, 'version', n.version) FROM old_rows n",
        ),
    ):
        functions.append(f"""
CREATE FUNCTION {table}_events_after_{op_name}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    u record;
    first_id bigint;
    last_id bigint;
BEGIN
    FOR u IN SELECT DISTINCT n.user_id FROM {rows} n ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(u.user_id, 13));
        WITH added AS (
            INSERT INTO task_events (user_id, type, data)
            SELECT n.user_id, {select} WHERE n.user_id = u.user_id ORDER BY n.id
            RETURNING id
        )
        SELECT min(id), max(id) INTO first_id, last_id FROM added;
        {_NOTIFY}
    END LOOP;
    RETURN NULL;
END $$
""")
    return functions


def _previous() -> ModuleType:
    """Migration 0006, whose trigger functions the downgrade restores."""
    path = Path(__file__).with_name("0006_task_events_inline.py")
    spec = importlib.util.spec_from_file_location("_tasks_migration_0006", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _create_lists() -> None:
    op.create_table(
        "lists",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.String(length=255, collation="C"), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lists"),
        # The target of tasks' (list_id, user_id): a task names only a list of its own owner.
        sa.UniqueConstraint("id", "user_id", name="uq_lists_id_user_id"),
        # The user's lists in order; no two share a key.
        sa.UniqueConstraint("user_id", "position", name="uq_lists_user_id_position"),
    )


def _backfill() -> None:
    op.execute(
        "ALTER TABLE tasks ADD COLUMN list_id uuid, ADD COLUMN parent_id uuid, "
        'ADD COLUMN position varchar(255) COLLATE "C"'
    )
    # Writing every row through six indexes took 15 s for 100,000 tasks; without them the update takes
    # about one, and rebuilding each index about one more. The table is locked by the migration anyway.
    # In SQL, not read back into Python, so that `litestar database upgrade --sql` can print it too.
    op.execute(
        "CREATE TEMP TABLE tasks_indexes_0007 AS SELECT indexname, indexdef FROM pg_indexes "
        "WHERE schemaname = current_schema() AND tablename = 'tasks' AND indexname <> 'pk_tasks'"
    )
    op.execute(
        "DO $$ DECLARE r record; BEGIN FOR r IN SELECT indexname FROM tasks_indexes_0007 LOOP "
        "EXECUTE format('DROP INDEX %I', r.indexname); END LOOP; END $$"
    )
    op.execute("ALTER TABLE tasks DROP CONSTRAINT pk_tasks")
    # Not a change anybody watches: no 100,000 events.
    op.execute("ALTER TABLE tasks DISABLE TRIGGER task_events_after_update")
    op.execute("SET LOCAL work_mem = '64MB'")
    op.execute(
        "UPDATE tasks t SET position = position_key_at(o.rank) FROM ("
        "SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY created_at, id) - 1 AS rank FROM tasks"
        ") o WHERE t.id = o.id"
    )
    op.execute("ALTER TABLE tasks ENABLE TRIGGER task_events_after_update")
    op.execute("ALTER TABLE tasks ALTER COLUMN position SET NOT NULL")
    op.execute("ALTER TABLE tasks ADD CONSTRAINT pk_tasks PRIMARY KEY (id)")
    op.execute(
        "DO $$ DECLARE r record; BEGIN FOR r IN SELECT indexdef FROM tasks_indexes_0007 LOOP "
        "EXECUTE r.indexdef; END LOOP; END $$"
    )
    op.execute("DROP TABLE tasks_indexes_0007")


def upgrade() -> None:
    for function in _KEYS:
        op.execute(function)
    _create_lists()
    _backfill()
    op.create_unique_constraint("uq_tasks_id_user_id", "tasks", ["id", "user_id"])
    # Siblings (same owner, list and parent; NULLs equal) never share a key; the index lists a group
    # in order, and serves stats and bulk actions per list (user_id, list_id).
    op.execute(
        "ALTER TABLE tasks ADD CONSTRAINT uq_tasks_user_id_list_id_parent_id_position "
        "UNIQUE NULLS NOT DISTINCT (user_id, list_id, parent_id, position)"
    )
    # A parent's subtasks: its delete cascade, and a parent that changes lists.
    # Partial: a top-level task (most of them) costs its writes no entry here.
    op.create_index(
        "ix_tasks_parent_id", "tasks", ["parent_id"], postgresql_where=sa.text("parent_id IS NOT NULL")
    )
    op.create_foreign_key(
        "fk_tasks_list_id_lists",
        "tasks",
        "lists",
        ["list_id", "user_id"],
        ["id", "user_id"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        "fk_tasks_parent_id_tasks",
        "tasks",
        "tasks",
        ["parent_id", "user_id"],
        ["id", "user_id"],
        ondelete="CASCADE",
    )
    for function in (
        *_group_functions("tasks", ("list_id", "parent_id")),
        *_group_functions("lists", ()),
        _TASKS_RESOLVE,
        _move_function(
            "tasks",
            ("list_id", "parent_id"),
            ", list_given boolean, new_list uuid, parent_given boolean, new_parent uuid",
            _TASKS_MOVE_RESOLVE,
        ),
        _move_function("lists", (), "", ""),
        _TASKS_PLACE,
        _TASKS_CARRY,
        _LISTS_PLACE,
        _TASKS_UPDATE,
        _TASKS_DELETE,
        *_row_events("list", "lists"),
    ):
        op.execute(function)
    op.execute(
        "CREATE TRIGGER tasks_place BEFORE INSERT OR UPDATE OF list_id, parent_id, user_id ON tasks "
        "FOR EACH ROW EXECUTE FUNCTION tasks_place()"
    )
    op.execute(
        "CREATE TRIGGER tasks_carry AFTER UPDATE OF list_id ON tasks FOR EACH ROW "
        "WHEN (OLD.list_id IS DISTINCT FROM NEW.list_id AND NEW.parent_id IS NULL) EXECUTE FUNCTION tasks_carry()"
    )
    op.execute(
        "CREATE TRIGGER lists_place BEFORE INSERT ON lists FOR EACH ROW EXECUTE FUNCTION lists_place()"
    )
    for event, table in (
        ("INSERT", "NEW TABLE AS new_rows"),
        ("UPDATE", "NEW TABLE AS new_rows"),
        ("DELETE", "OLD TABLE AS old_rows"),
    ):
        op.execute(
            f"CREATE TRIGGER lists_events_after_{event.lower()} AFTER {event} ON lists "
            f"REFERENCING {table} FOR EACH STATEMENT EXECUTE FUNCTION lists_events_after_{event.lower()}()"
        )
    op.execute(
        "CREATE TRIGGER lists_events_after_truncate AFTER TRUNCATE ON lists "
        "FOR EACH STATEMENT EXECUTE FUNCTION task_events_after_truncate()"
    )


def downgrade() -> None:
    for event in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER lists_events_after_{event} ON lists")
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP FUNCTION lists_events_after_{event}()")
    op.execute("DROP TRIGGER lists_place ON lists")
    op.execute("DROP TRIGGER tasks_carry ON tasks")
    op.execute("DROP TRIGGER tasks_place ON tasks")
    previous = _previous()
    for function in previous._trigger_functions(previous._NEW_CALL):
        op.execute(function)
    for function in (
        "lists_place()",
        "tasks_carry()",
        "tasks_place()",
        "lists_move(varchar, uuid, uuid, integer[], timestamptz)",
        "tasks_move(varchar, uuid, uuid, integer[], timestamptz, boolean, uuid, boolean, uuid)",
        "tasks_resolve(varchar, uuid, uuid, uuid, boolean, uuid, boolean)",
        "lists_renumber(varchar, uuid, text, timestamptz)",
        "lists_last_key(varchar)",
        "lists_next_key(varchar, uuid, text)",
        "tasks_renumber(varchar, uuid, uuid, uuid, text, timestamptz)",
        "tasks_last_key(varchar, uuid, uuid)",
        "tasks_next_key(varchar, uuid, uuid, uuid, text)",
        *_KEY_FUNCTIONS,
    ):
        op.execute(f"DROP FUNCTION {function}")
    op.drop_constraint("fk_tasks_parent_id_tasks", "tasks", type_="foreignkey")
    op.drop_constraint("fk_tasks_list_id_lists", "tasks", type_="foreignkey")
    op.drop_index("ix_tasks_parent_id", table_name="tasks")
    op.drop_constraint("uq_tasks_user_id_list_id_parent_id_position", "tasks", type_="unique")
    op.drop_constraint("uq_tasks_id_user_id", "tasks", type_="unique")
    op.execute("ALTER TABLE tasks DROP COLUMN position, DROP COLUMN parent_id, DROP COLUMN list_id")
    op.drop_table("lists")
