"""Change tracking for owned tables: what changed for a user since a cursor, deletions included.

Generic over the tables (it knows no resource). The database side is migration 0009 (tombstones, the
counter) and 0017 (changed rows): every statement that writes a user's rows draws the next number of
the owner's change counter (under the owner's lock held to commit, so numbers follow commit order per
user: a reader that saw number n can never be overtaken by a later commit below n) and records it for
each row it wrote in ``changed_<table>``; a deleted row leaves its tombstone in ``deleted_<table>``.

A cursor is opaque to clients: base64url of a short text naming where the reader stands.

- ``Snapshot``: a full sync in progress. ``base`` is the counter when it began; tables are read in
  order, each by ``(created_at, id)``; ``table``/``after`` say where the next page starts. Every
  change committed after ``base`` comes in the catch-up that follows, so rows that change while the
  pages are read are not lost (some may come twice: harmless, the later copy is the newer).
- ``Since``: changes after ``(seq, kind, id)`` in the order ``(number, kind, id)``; kind ``2i`` is
  table i's rows, ``2i + 1`` its tombstones.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import text

from backend.sql import Sql

KEEP_DAYS = 30
_MAX_ID = UUID(int=(1 << 128) - 1)
_NIL = UUID(int=0)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_SNAPSHOT = re.compile(rf"s1\.(0|[1-9][0-9]{{0,17}})\.([0-9])\.(-?[0-9]{{1,18}})\.({_UUID})")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{1,200}")
_SINCE = re.compile(rf"c1\.(0|[1-9][0-9]{{0,17}})\.([0-9]{{1,2}})\.({_UUID})")


class BadCursor(Exception):
    """The cursor does not parse, or names a point this user's history no longer (or never) held."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    base: int
    table: int = 0
    created_at: datetime | None = None
    after: UUID = _NIL


@dataclass(frozen=True, slots=True)
class Since:
    seq: int
    kind: int = 99
    after: UUID = _MAX_ID


Cursor = Snapshot | Since


def _micros(at: datetime | None) -> int:
    return -1 if at is None else (at - _EPOCH) // timedelta(microseconds=1)


def encode(cursor: Cursor) -> str:
    if isinstance(cursor, Snapshot):
        raw = f"s1.{cursor.base}.{cursor.table}.{_micros(cursor.created_at)}.{cursor.after}"
    else:
        raw = f"c1.{cursor.seq}.{cursor.kind}.{cursor.after}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(value: str) -> Cursor:
    """The cursor ``value`` names; ``BadCursor`` when it is not one this API wrote."""
    if not _BASE64URL.fullmatch(value):
        raise BadCursor
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, ValueError) as exc:
        raise BadCursor from exc
    if match := _SNAPSHOT.fullmatch(raw):
        base, table, micros, after = match.groups()
        at = None if micros == "-1" else _at(int(micros))
        return Snapshot(int(base), int(table), at, UUID(after))
    if match := _SINCE.fullmatch(raw):
        seq, kind, after = match.groups()
        return Since(int(seq), int(kind), UUID(after))
    raise BadCursor


def _at(micros: int) -> datetime:
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError as exc:
        raise BadCursor from exc


# The caller's change counter and how far its history was purged; (0, 0) for a user who never wrote.
_CLOCK = "SELECT coalesce(max(seq), 0), coalesce(max(purged_seq), 0) FROM sync_clock WHERE user_id = :owner"
CLOCK = Sql.of(text(_CLOCK))


def snapshot_page(table: str, columns: tuple[str, ...]) -> Sql:
    """One page of the caller's rows of ``table`` in ``(created_at, id)`` order, after a given row."""
    cols = ", ".join(columns)
    return Sql.of(
        text(
            f"SELECT {cols} FROM {table} WHERE user_id = :owner "  # noqa: S608 - table/columns are ours
            # A range on the (user_id, created_at, id) index: each page costs its own rows only.
            "AND (created_at, id) > (coalesce(CAST(:created_at AS timestamptz), '-infinity'), :after) "
            "ORDER BY created_at, id LIMIT :n"
        )
    )


def changes_page(tables: tuple[tuple[str, tuple[str, ...]], ...]) -> Sql:
    """The caller's clock (as ``CLOCK``) and ``(kind, id, number, version)`` of every row and tombstone
    of ``tables`` (name, read columns) changed after the cursor, in ``(number, kind, id)`` order: a row
    through the number of the statement that last wrote it, a tombstone through its own. ``version`` is
    the tombstone's (null for a row). Then, per table, its read columns of a changed row as it is now (all
    null for a tombstone, or another table's change). One statement, so one snapshot and one round trip:
    the first two columns are the clock on every row, and a single row with the next four null means no
    change.

    Each branch starts where the cursor stands, on its ``(user_id, seq, id)`` index: the cursor's own
    number is read again only for a kind the cursor has not finished, and only from the id after the
    cursor's (a cursor right after an import of 10,000 rows must not walk them again); each reads at
    most ``n``.
    """
    seq, kind, after = "CAST(:seq AS bigint)", "CAST(:kind AS integer)", "CAST(:after AS uuid)"
    nil, top = f"'{_NIL}'::uuid", f"'{_MAX_ID}'::uuid"

    def branch(kind_of: int, source: str, version: str) -> str:
        start = f"CASE WHEN {kind} < {kind_of} THEN {nil} WHEN {kind} = {kind_of} THEN {after} ELSE {top} END"
        return (
            f"(SELECT {kind_of} AS kind, d.id, d.seq, {version} AS version FROM {source} d "  # noqa: S608
            f"WHERE d.user_id = :owner AND (d.seq, d.id) > ({seq}, {start}) ORDER BY d.seq, d.id LIMIT :n)"
        )

    parts, current = [], []
    for i, (table, columns) in enumerate(tables):
        rows, gone = 2 * i, 2 * i + 1
        parts += [branch(rows, f"changed_{table}", "NULL::integer")]
        parts += [branch(gone, f"deleted_{table}", "d.version")]
        # The row itself, looked up by its id. ``id`` is unique, so ``LIMIT 1`` changes no answer: it
        # keeps the lookup a lookup. Without it, PostgreSQL's generic plan for the prepared statement
        # walked the caller's whole ``user_id`` range (4-5 ms for 10 changes of a 10,000-task user).
        cols = ", ".join(f"t.{c}" for c in columns)
        current.append(
            f"LEFT JOIN LATERAL (SELECT {cols} FROM {table} t "  # noqa: S608
            f"WHERE x.kind = {rows} AND t.id = x.id AND t.user_id = :owner LIMIT 1) r{i} ON true"
        )
    union = " UNION ALL ".join(parts)
    found = ", ".join(f"r{i}.*" for i in range(len(tables)))
    return Sql.of(
        text(
            f"SELECT c.*, x.*, {found} FROM ({_CLOCK}) c LEFT JOIN LATERAL ("  # noqa: S608
            f"SELECT x.kind, x.id, x.seq, x.version FROM ({union}) x "
            f"WHERE (x.seq, x.kind, x.id) > ({seq}, {kind}, {after}) ORDER BY x.seq, x.kind, x.id LIMIT :n"
            f") x ON true {' '.join(current)} ORDER BY x.seq, x.kind, x.id"
        )
    )
