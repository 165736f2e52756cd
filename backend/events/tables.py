"""The live-updates tables of migrations 0005 and 0012, declared on the models' metadata so that
``litestar database check`` (Alembic's autogenerate) sees the schema it expects, not drift.

Only the migration creates them (with the triggers and functions that use them); nothing queries them
through these objects: the listener's SQL is in ``backend.events.listener``.
"""

from __future__ import annotations

from advanced_alchemy.base import metadata_registry
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    String,
    Table,
    Text,
    Uuid,
    text,
)

metadata = metadata_registry.get(None)

task_events = Table(
    "task_events",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("user_id", String(255), nullable=False),
    Column("type", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The event's number among its user's events: the id streams send (``id`` is only the internal key).
    Column("user_seq", BigInteger, nullable=False),
    Index("ix_task_events_user_id_user_seq", "user_id", "user_seq", unique=True),
)

# Each user's last event number (migration 0012).
task_events_clock = Table(
    "task_events_clock",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)

task_events_horizon = Table(
    "task_events_horizon",
    metadata,
    Column("one", Boolean, primary_key=True),
    Column("purged_through", BigInteger, nullable=False),
    # Every user's numbers start above it: the last global id handed out before migration 0012.
    Column("seq_base", BigInteger, nullable=False, server_default=text("0")),
)

event_streams = Table(
    "event_streams",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", String(255), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Index("ix_event_streams_user_id", "user_id"),
)
