"""Statements on a table of owned, versioned rows (``id``, ``user_id``, ``version``, ``updated_at``).

Every statement filters on the caller (``:owner``); a write bumps the version and checks ``If-Match``
(``:versions``) in the same statement, so nothing can come between the check and the write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from sqlalchemy import (
    ARRAY,
    Column,
    ColumnElement,
    DateTime,
    Integer,
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)

from backend.data.locking import owner_locked
from backend.idempotency import with_key
from backend.sql import Sql

# asyncpg sends the first and the last instant a Python datetime holds (0001-01-01T00:00:00Z,
# 9999-12-31T23:59:59.999999Z) as PostgreSQL's -infinity and infinity, and reads those back as naive
# datetimes: a timestamp without a zone in the API's answer. JSON cannot ask for an infinity, so every
# timestamp a client writes goes through this and is stored as the instant it named.
_TIMESTAMPTZ = DateTime(timezone=True)
_INFINITY = literal_column("'infinity'::timestamptz", _TIMESTAMPTZ)
_MINUS_INFINITY = literal_column("'-infinity'::timestamptz", _TIMESTAMPTZ)
_FIRST = literal_column("'0001-01-01 00:00:00+00'::timestamptz", _TIMESTAMPTZ)
_LAST = literal_column("'9999-12-31 23:59:59.999999+00'::timestamptz", _TIMESTAMPTZ)


def _as_written(value: Any) -> Any:
    return case((value == _MINUS_INFINITY, _FIRST), (value == _INFINITY, _LAST), else_=value)


PENDING = "\x00pending"


def pending_field(name: str) -> str:
    """How a field the database decides stands in a stored answer's JSON until the insert gives it
    (``"position":"\\u0000pending"``: a NUL cannot come from a client's text, which refuses NUL)."""
    return f'"{name}":"\\u0000pending"'


class OwnedTable:
    """A table whose rows each belong to one user, with the statements every such resource needs.

    ``columns`` is the SELECT/RETURNING list, in the read Struct's field order, so a row becomes the
    Struct positionally. ``id_param`` names the bound id (``task_id``), as the rows' ids are bound.
    """

    def __init__(
        self,
        table: Table,
        read_fields: tuple[str, ...],
        id_param: str,
        derived: Callable[[dict[str, Any]], None] | None = None,
        client_timestamps: tuple[str, ...] = (),
        decided_on_insert: tuple[str, ...] = (),
    ) -> None:
        """``derived(values)`` adds the columns that follow from an update's values (in place);
        ``client_timestamps`` are the timestamp columns a client writes (stored as ``_as_written``);
        ``decided_on_insert`` are read fields whose value the database chooses when a row is inserted (a
        position, a subtask's list): a stored Idempotency-Key answer gets them from the inserted row."""
        self.decided_on_insert = decided_on_insert
        self.client_timestamps = client_timestamps
        self.table = table
        self.derived = derived
        self.columns = tuple(table.c[name] for name in read_fields)
        self.id_param = id_param
        c = table.c
        # The caller's rows, and the one row of the caller's the request names.
        self.callers_rows: ColumnElement[bool] = c.user_id == bindparam("owner")
        self.callers_row: ColumnElement[bool] = and_(c.id == bindparam(id_param), self.callers_rows)
        # What a write adds: the caller's lock, taken before the statement locks any row.
        self.writing: ColumnElement[bool] = owner_locked()
        self.now = bindparam("now", type_=c.updated_at.type)
        self.if_match: ColumnElement[bool] = c.version == any_(bindparam("versions", type_=ARRAY(Integer)))
        self.bump: dict[str, Any] = {"version": c.version + 1, "updated_at": self.now}
        self._updates: dict[tuple[tuple[str, ...], bool], Sql] = {}

    def _bind(self, column: Column[Any], name: str) -> Any:
        value = bindparam(name, type_=column.type)
        return _as_written(value) if column.name in self.client_timestamps else value

    def _body_of(self, changed: Any) -> Any:
        body: Any = bindparam("body", type_=String())
        for name in self.decided_on_insert:
            value = func.coalesce(func.to_json(changed.c[name]).cast(String()), "null")
            body = func.replace(body, pending_field(name), func.concat(f'"{name}":', value))
        return body

    def guarded(self, statement: Any, if_match: bool) -> Any:
        """``statement`` applying only to a row whose version ``If-Match`` names (when one was sent)."""
        return statement.where(self.if_match) if if_match else statement

    @cached_property
    def get(self) -> Sql:
        return Sql.of(select(*self.columns).where(self.callers_row))

    @cached_property
    def exists(self) -> Sql:
        return Sql.of(select(literal(1)).where(self.callers_row))

    @cached_property
    def delete(self) -> dict[bool, Sql]:
        """By ``If-Match`` given or not: returns the deleted row's version."""
        base = delete(self.table).where(self.callers_row, self.writing)
        return {m: Sql.of(self.guarded(base, m).returning(self.table.c.version)) for m in (False, True)}

    def update(self, values: Mapping[str, Any], if_match: bool) -> Any:
        """The guarded update of the caller's row to ``values`` (plus the bump), returning the row."""
        statement = update(self.table).where(self.callers_row, self.writing).values(**values, **self.bump)
        return self.guarded(statement, if_match).returning(*self.columns)

    def update_fields(self, fields: tuple[str, ...], if_match: bool) -> Sql:
        """``update`` of ``fields`` from ``:v_<field>`` parameters; compiled once per combination."""
        key = (fields, if_match)
        if key not in self._updates:
            values: dict[str, Any] = {f: self._bind(self.table.c[f], f"v_{f}") for f in fields}
            if self.derived is not None:
                self.derived(values)
            self._updates[key] = Sql.of(self.update(values, if_match))
        return self._updates[key]

    def insert_within_quota(self) -> Any:
        """INSERT of one row from ``:<column>`` parameters, only while its owner holds under ``:quota`` rows.

        ``owned_count_locked`` (a VOLATILE function, migrations 0008, 0013 and 0015) takes the owner's lock
        and only then reads the user's kept count, with a snapshot taken after the lock: concurrent creates
        of one user are serialised at the check, so the quota is exact. The row is formed only after the
        count, so the lock comes before the row locks its placement takes. Still one statement, one round
        trip.
        """
        names = [c.name for c in self.columns]
        count = func.owned_count_locked(literal(self.table.name), bindparam("owner"))
        row = select(*(self._bind(c, c.name) for c in self.columns)).where(count < bindparam("quota"))
        return insert(self.table).from_select(names, row).returning(*self.columns)

    @cached_property
    def insert(self) -> Sql:
        return Sql.of(self.insert_within_quota())

    @cached_property
    def insert_once(self) -> Sql:
        """``insert`` plus its Idempotency-Key row (``:body`` built beforehand): a row when inserted."""
        return with_key(
            self.insert_within_quota(),
            # The new row, when the quota let it in; the stored body was built before, but for the values
            # the database decided, which come from the inserted row.
            key_row=lambda changed: (changed, self._body_of(changed)),
            result=lambda changed: select(*changed.c),
        )
