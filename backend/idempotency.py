"""Safe retries: a write's response kept under its ``Idempotency-Key``, stored with the write itself.

The key row is inserted by the same statement as the change (a data-modifying CTE the resource's
repository builds with ``key_insert``), so a change without its key, or a key without its change, cannot
exist. A transaction-scoped advisory lock per (user, key) makes a second request with the same key wait
for nothing: it sees the first one in flight (409) or its stored response (a replay).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import asyncpg
from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import ColumnElement

from backend.sql import DriverRepository, Sql

TTL = timedelta(hours=24)
KEY_CONSTRAINT = "pk_idempotency_keys"
PURGE_BATCH = 100


class IdempotencyKey(DefaultBase):
    """A write's response, kept for ``TTL`` under the key its client sent."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # sha256 of the method, route and canonical JSON body: the same key with another request is a 422.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(1024), default=None)
    etag: Mapped[str | None] = mapped_column(String(32), default=None)
    expires_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))

    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)


@dataclass(frozen=True, slots=True)
class Once:
    """A request that must take effect at most once: its key and what it asked for."""

    key: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: str
    location: str | None
    etag: str | None


class Replayed(Exception):
    """The request was answered before: send the stored response again."""

    def __init__(self, response: StoredResponse) -> None:
        super().__init__("replayed")
        self.response = response


class KeyInFlight(Exception):
    """The first request with this key is still running."""


class KeyReused(Exception):
    """This key was used for another request."""


_k = cast("Table", IdempotencyKey.__table__)
_KEY = and_(_k.c.user_id == bindparam("owner"), _k.c.key == bindparam("idem_key"))
_STORED = (
    _k.c.fingerprint,
    _k.c.status_code,
    _k.c.body,
    _k.c.location,
    _k.c.etag,
    _k.c.expires_at > func.now(),
)
_LOOKUP = Sql.of(select(*_STORED).where(_KEY))
# One statement: the lock (held until the transaction ends) and what is stored, if anything.
_CLAIM = Sql.of(
    select(
        func.pg_try_advisory_xact_lock(func.hashtextextended(bindparam("lock_name", type_=Text()), 0)),
        *_STORED,
    ).select_from(select(literal(1).label("one")).subquery().outerjoin(_k, _KEY))
)
_DROP_EXPIRED = Sql.of(delete(_k).where(_KEY))
# Expired keys go a batch at a time with every keyed request: no separate job, and the table holds at
# most a day of keys (plus one batch per request of slack).
_PURGE_EXPIRED = Sql.of(
    delete(_k).where(
        tuple_(_k.c.user_id, _k.c.key).in_(
            select(_k.c.user_id, _k.c.key)
            .where(_k.c.expires_at < func.now())
            .order_by(_k.c.expires_at)
            .limit(PURGE_BATCH)
            .with_for_update(skip_locked=True)
        )
    )
)


def key_insert(source: Any, body: ColumnElement[Any]) -> Any:
    """A CTE inserting the key row for each row of ``source`` (the change's own CTE), with ``body``."""
    return (
        insert(_k)
        .from_select(
            ["user_id", "key", "fingerprint", "status_code", "body", "location", "etag", "expires_at"],
            select(
                bindparam("owner", type_=String()),
                bindparam("idem_key", type_=String()),
                bindparam("fingerprint", type_=String()),
                bindparam("status_code", type_=Integer()),
                body,
                bindparam("location", type_=String()),
                bindparam("etag", type_=String()),
                func.now() + TTL,
            ).select_from(source),
        )
        .cte("idempotency_key")
    )


def key_params(
    user_id: str, once: Once, status_code: int, location: str | None = None, etag: str | None = None
) -> dict[str, Any]:
    return {
        "owner": user_id,
        "idem_key": once.key,
        "fingerprint": once.fingerprint,
        "status_code": status_code,
        "location": location,
        "etag": etag,
    }


async def claim(repository: DriverRepository[Any], user_id: str, once: Once) -> None:
    """Inside the write's transaction: take the key, or raise what its state says.

    ``Replayed`` with the stored response, ``KeyReused`` for a stored response to another request,
    ``KeyInFlight`` while another transaction holds the key.
    """
    await repository.write(_PURGE_EXPIRED, {})
    params = {"owner": user_id, "idem_key": once.key, "lock_name": f"idempotency\x1f{user_id}\x1f{once.key}"}
    free, *found = cast("asyncpg.Record", await repository.fetch_row(_CLAIM, params))
    if not free:
        raise KeyInFlight
    if found[0] is not None:
        if not found[-1]:  # expired: the key is free again
            await repository.write(_DROP_EXPIRED, params)
        else:
            raise _outcome(once, found)


async def stored(repository: DriverRepository[Any], user_id: str, once: Once) -> Exception:
    """After losing the race for the key: what the winner stored, as the outcome to raise."""
    found = await repository.fetch_row(_LOOKUP, {"owner": user_id, "idem_key": once.key})
    return KeyInFlight() if found is None else _outcome(once, list(found))


def _outcome(once: Once, found: list[Any]) -> Exception:
    fingerprint, status_code, body, location, etag, _live = found
    if fingerprint != once.fingerprint:
        return KeyReused()
    return Replayed(StoredResponse(status_code, body, location, etag))


def with_key(
    change: Any, key_row: Callable[[Any], tuple[Any, ColumnElement[Any]]], result: Callable[[Any], Any]
) -> Sql:
    """``change`` and the row of its Idempotency-Key as one statement: both happen, or neither.

    ``key_row(changed)`` is (the source of the key row, its body): one source row, or none when nothing
    may be stored; ``result(changed)`` is what the statement returns.
    """
    changed = change.cte("changed")
    source, body = key_row(changed)
    return Sql.of(result(changed).add_cte(key_insert(source, body)))


async def run_once(
    repository: DriverRepository[Any], user_id: str, once: Once, sql: Sql, params: dict[str, Any]
) -> Any:
    """Claim ``once``'s key and run ``sql`` (built by ``with_key``) in one transaction: its row.

    Raises the key's outcome (``Replayed``, ``KeyReused``, ``KeyInFlight``) when it was used before.
    """
    try:
        async with repository.transaction():
            await claim(repository, user_id, once)
            return await repository.fetch_row(sql, params)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != KEY_CONSTRAINT:
            raise
    # Another request with this key committed between our lock and our insert: its answer is ours.
    raise await stored(repository, user_id, once)


_STORE = Sql.of(
    select(literal(1)).add_cte(key_insert(select(literal(1)).subquery(), bindparam("body", type_=Text())))
)


async def keep_response(
    repository: DriverRepository[Any], user_id: str, once: Once, response: StoredResponse
) -> None:
    """Inside a write's open transaction (begun by the ORM): take ``once``'s key and store ``response``
    with it, committed together with the write. When the key was used before, the write is rolled back
    and the key's outcome raised instead."""
    params = {**key_params(user_id, once, response.status_code, response.location, response.etag)}
    try:
        await claim(repository, user_id, once)
        await repository.fetch_row(_STORE, {**params, "body": response.body})
    except (Replayed, KeyReused, KeyInFlight):
        await repository.session.rollback()
        raise
    except asyncpg.UniqueViolationError as exc:
        # The same key committed by another request after our claim looked: its answer is ready now.
        await repository.session.rollback()
        if exc.constraint_name != KEY_CONSTRAINT:
            raise
        raise KeyInFlight from None
