"""Manual order and placement, for any table that has ``user_id``, ``position`` and ``version``.

The rules live in the database (migration 0007): a row inserted without a position goes last in its
group, a task's ``list_id``/``parent_id`` are checked and its subtasks follow it, and
``<table>_move(...)`` places a row right after a sibling in one call under the owner's lock. This
module builds the one statement a repository runs for a move, and turns the database's refusals into
what the API answers. It knows no resource: the table, its columns and its group come from the caller.

Python API (``Sql`` is ``backend.sql.Sql``; run it with ``DriverRepository.fetch_row``)::

    MOVE = move_statement(table, columns, group)
        table    Model.__table__ ("tasks" or "lists": ``<table>_move`` must exist)
        columns  the columns to return, in the caller's order (e.g. the Read struct's fields)
        group    the columns besides user_id that make a row's sibling group, each optionally
                 changed by the move: ("list_id", "parent_id") for tasks, () for lists
    row = await repo.fetch_row(MOVE, params)   # one round trip; the row, never None
        params = {
            "owner": str,                      # the caller; the row must be theirs
            "target": UUID,                    # the row to move
            "after": UUID | None,              # the sibling to follow; None: first in the group
            "versions": list[int] | None,      # If-Match versions; None: no check
            "now": datetime,                   # updated_at of every row written
            # per group column c (tasks: list_id, parent_id):
            f"{c}_given": bool,                # False: c stays as it is (the body left it out)
            c: UUID | None,                    # the new value when given (None: inbox / top level)
        }
    except asyncpg.PostgresError as exc:
        answer = refusal(exc)                  # Refusal(status, field, message), or None: not ours
                                               # (re-raise it)

- Moved: the row with a new ``position``, ``version`` + 1, ``updated_at`` = now (and a task's new
  ``list_id``/``parent_id``; its subtasks follow it to a new list). One row is written, except when
  the new key would pass 255 characters: the destination group is renumbered (each of its rows gets
  version + 1 and an event).
- Already there (same group, between the same neighbours): the row unchanged, same version.
- Refusals raise, with these SQLSTATEs (``REFUSALS``):

  ======  ======  =========  ================================================================
  state   status  field      when
  ======  ======  =========  ================================================================
  LP404   404     -          no such row of the owner
  LP412   412     -          the version is not one of ``versions``
  LPA01   400     after      ``after`` is not a sibling in the destination (or is the row)
  LPL01   400     list_id    no list of the owner with that id
  LPL02   400     list_id    a subtask's list_id is not its parent's
  LPP01   400     parent_id  no task of the owner with that id, or the task itself
  LPP02   400     parent_id  the parent is a subtask (one level only)
  LPP03   400     parent_id  the task has subtasks, so it cannot become one
  ======  ======  =========  ================================================================

The same LPL*/LPP* errors come from any INSERT or UPDATE of ``tasks`` that sets ``list_id`` or
``parent_id`` (the ``tasks_place`` trigger): a create or PATCH maps them with ``refusal`` too. A
subtask created or re-parented without ``list_id`` takes its parent's list. The trigger cannot tell a
``list_id`` left out from one sent with the value the row already has (NULL on a create): such a
``list_id`` is taken as left out, so it follows the parent instead of being refused (the move
statement has ``list_id_given`` and is exact). Inserts that name no position (or NULL) go last in
their group, lists included (an ORM insert gets it back through RETURNING: ``server_default=
FetchedValue()``). A foreign-key violation
on ``CONSTRAINTS`` (a list or parent deleted by a concurrent request between checks) maps the same way.
``RETRY`` names the SQLSTATEs after which the statement may simply be run again (a deadlock
between a renumber and another write of the same rows, which PostgreSQL breaks by failing one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, Boolean, Column, Integer, String, Table, bindparam, column, func, select

from backend.data.locking import owner_locked
from backend.sql import Sql


@dataclass(frozen=True, slots=True)
class Refusal:
    """What the API answers: ``status``, the body field to name (None for 404/412), and why."""

    status: int
    field: str | None
    message: str


NOT_FOUND = Refusal(404, None, "no such row of the owner")
STALE = Refusal(412, None, "the version does not match If-Match")
BAD_AFTER = Refusal(400, "after", "names no sibling in the destination group")
NO_LIST = Refusal(400, "list_id", "names no list of yours")
NOT_PARENTS_LIST = Refusal(400, "list_id", "must be the list of the parent task")
NO_PARENT = Refusal(400, "parent_id", "names no other task of yours")
PARENT_IS_SUBTASK = Refusal(400, "parent_id", "names a subtask: subtasks cannot have subtasks")
HAS_SUBTASKS = Refusal(400, "parent_id", "this task has subtasks, so it cannot become one")

REFUSALS: dict[str, Refusal] = {
    "LP404": NOT_FOUND,
    "LP412": STALE,
    "LPA01": BAD_AFTER,
    "LPL01": NO_LIST,
    "LPL02": NOT_PARENTS_LIST,
    "LPP01": NO_PARENT,
    "LPP02": PARENT_IS_SUBTASK,
    "LPP03": HAS_SUBTASKS,
}
# Foreign keys whose violation means the same as the checks above (SQLSTATE 23503).
CONSTRAINTS: dict[str, Refusal] = {
    "fk_tasks_list_id_lists": NO_LIST,
    "fk_tasks_parent_id_tasks": NO_PARENT,
}
FOREIGN_KEY_VIOLATION = "23503"
RETRY = frozenset({"40P01"})


def refusal(exc: BaseException) -> Refusal | None:
    """The answer for a database error raised by an ordering or placement rule; None for any other."""
    state = getattr(exc, "sqlstate", None)
    if state == FOREIGN_KEY_VIOLATION:
        return CONSTRAINTS.get(getattr(exc, "constraint_name", None) or "")
    return REFUSALS.get(state or "")


def move_statement(table: Table, columns: Sequence[Column[Any]], group: Sequence[str] = ()) -> Sql:
    """``SELECT <columns> FROM <table>_move(...)``: see the module docstring for its params."""
    args: list[Any] = [
        bindparam("owner", type_=String()),
        bindparam("target", type_=table.c.id.type),
        bindparam("after", type_=table.c.id.type),
        bindparam("versions", type_=ARRAY(Integer)),
        bindparam("now", type_=table.c.updated_at.type),
    ]
    for name in group:
        args += [bindparam(f"{name}_given", type_=Boolean()), bindparam(name, type_=table.c[name].type)]
    moved = getattr(func, f"{table.name}_move")(*args).table_valued(
        *(column(c.name, c.type) for c in columns), name="moved"
    )
    # The owner's lock before the function locks the row (backend.data.locking).
    return Sql.of(select(*moved.c).where(owner_locked()))
