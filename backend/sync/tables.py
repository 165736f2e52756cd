"""The change-tracking schema of migration 0009, declared on the models' metadata so that
``litestar database check`` (Alembic's autogenerate) sees the schema it expects, not drift.

Only the migration creates them (with the triggers and functions that use them); nothing queries them
through these objects (the statements are in ``backend.data.changes``). ``change_xid`` is added to the
``tasks`` and ``lists`` tables here, not on their models: it is written only by the database (a default
and a trigger) and never read into a model, so the ORM mappers leave it alone.
"""

from __future__ import annotations

from typing import Any, cast

from advanced_alchemy.base import metadata_registry
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Uuid,
    text,
)
from sqlalchemy.types import UserDefinedType

from backend.lists.models import TaskList
from backend.tasks.models import Task

metadata = metadata_registry.get(None)


class Xid8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "xid8"


sync_clock = Table(
    "sync_clock",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("purged_seq", BigInteger, nullable=False, server_default=text("0")),
    Column("purge_checked_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

sync_txns = Table(
    "sync_txns",
    metadata,
    Column("user_id", String(255), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("xid", Xid8, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("user_id", "seq"),
    Index("ix_sync_txns_xid_user_id", "xid", "user_id", unique=True),
)


def _tombstones(table: str) -> Table:
    return Table(
        f"deleted_{table}",
        metadata,
        Column("user_id", String(255), nullable=False),
        Column("id", Uuid, nullable=False),
        Column("version", Integer, nullable=False),
        Column("seq", BigInteger, nullable=False),
        PrimaryKeyConstraint("user_id", "id"),
        Index(f"ix_deleted_{table}_user_id_seq", "user_id", "seq", "id"),
    )


deleted_lists = _tombstones("lists")
deleted_tasks = _tombstones("tasks")


def track(table: Table) -> None:
    """Declare ``change_xid`` and its index on ``table`` (a model's table), once."""
    if "change_xid" in table.c:
        return
    column = Column("change_xid", Xid8, server_default=text("pg_current_xact_id()"))
    table.append_column(column)
    # The caller's rows of one transaction, in id order: where a /sync cursor inside it resumes.
    Index(
        f"ix_{table.name}_user_id_change_xid",
        table.c.user_id,
        column,
        table.c.id,
        postgresql_where=column.isnot(None),
    )


track(cast("Table", Task.__table__))
track(cast("Table", TaskList.__table__))
