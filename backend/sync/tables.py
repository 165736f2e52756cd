"""The change-tracking schema of migrations 0009 and 0017, declared on the models' metadata so that
``litestar database check`` (Alembic's autogenerate) sees the schema it expects, not drift.

Only the migrations create them (with the triggers and functions that write them); nothing queries
them through these objects (the statements are in ``backend.data.changes``).
"""

from __future__ import annotations

from typing import Any

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

metadata = metadata_registry.get(None)


sync_clock = Table(
    "sync_clock",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("purged_seq", BigInteger, nullable=False, server_default=text("0")),
    Column("purge_checked_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

# Every number up to ``seq`` was drawn before ``at``: where a purge may cut.
sync_checkpoints = Table(
    "sync_checkpoints",
    metadata,
    Column("user_id", String(255), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("user_id", "seq"),
)


def _by_number(name: str, *extra: Column[Any]) -> Table:
    """One row per (user, row id), with a change number, read in ``(user_id, seq, id)`` order."""
    return Table(
        name,
        metadata,
        Column("user_id", String(255), nullable=False),
        Column("id", Uuid, nullable=False),
        *extra,
        Column("seq", BigInteger, nullable=False),
        PrimaryKeyConstraint("user_id", "id"),
        Index(f"ix_{name}_user_id_seq", "user_id", "seq", "id"),
    )


# A deleted row's tombstone: the version it had, and the number of its deletion.
deleted_lists = _by_number("deleted_lists", Column("version", Integer, nullable=False))
deleted_tasks = _by_number("deleted_tasks", Column("version", Integer, nullable=False))
# Each row of a tracked table with the number of the statement that last wrote it.
changed_lists = _by_number("changed_lists")
changed_tasks = _by_number("changed_tasks")
