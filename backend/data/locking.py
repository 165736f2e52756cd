"""The owner's lock: every write of the API takes its user's lock before it locks any row.

Rows give no lock order that every write could follow (a subtask's create locks its parent and then its
list, a list's delete the list and then its tasks, a complete-all goes by id), and two writes of one user
that lock the same rows in opposite orders deadlock. Taking the user's lock first puts the writes of
one user one after the other, from their first statement to their commit (the lock is transaction
scoped); other users' writes never wait for it. The trigger functions take the same lock again when they
number a change (migration 0013 explains the order).

``owner_locked(owner)`` is a one-time filter: PostgreSQL evaluates an uncorrelated scalar subquery in a
WHERE once, before the statement reads its first row, so the lock comes before every row lock the
statement takes (``FOR UPDATE`` subqueries, cascades and trigger functions included).

A bulk write takes the lock in a statement of its own first (``LOCK_OWNER``). A statement that waits for
the lock inside itself reads with the snapshot it took before waiting: every row the write before it
changed is then a concurrent update, which PostgreSQL re-checks row by row (EvalPlanQual), running the
locking subquery of a bulk write again for each. Quadratic: with 5,000 tasks and opposite complete-alls
six at a time, single statements ran 35-100 s; with the lock taken first, 1-18 s including the wait.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, String, bindparam, func, select

from backend.sql import Sql


def _lock(owner: Any = None) -> Any:
    """``owner_locked(owner)`` (default: ``:owner``)."""
    return func.owner_locked(bindparam("owner", type_=String()) if owner is None else owner)


def owner_locked(owner: Any = None) -> ColumnElement[bool]:
    """A WHERE condition that takes ``owner``'s lock first and is always true (default: ``:owner``)."""
    return select(_lock(owner)).scalar_subquery()


# Takes the caller's lock (held to commit) before the statements that follow take their snapshots.
LOCK_OWNER = Sql.of(select(_lock()))
