"""The ``tasks`` table."""

from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

from advanced_alchemy.base import UUIDv7AuditBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import (
    Boolean,
    Enum,
    FetchedValue,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column


class Priority(enum.StrEnum):
    # Declaration order is the sort order of the PostgreSQL enum: low < medium < high.
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Task(UUIDv7AuditBase):
    __tablename__ = "tasks"

    user_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(1000), default=None)
    completed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    completed_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    priority: Mapped[Priority] = mapped_column(
        Enum(Priority, name="task_priority", values_callable=lambda e: [m.value for m in e]),
        default=Priority.MEDIUM,
        server_default=Priority.MEDIUM.value,
    )
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(30)), default=list, server_default=text("'{}'"))
    due_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    # NULL: the inbox. The list, the parent, and the rules between them are checked by the database
    # (migration 0007): a subtask is in its parent's list, one level deep, all of one owner.
    list_id: Mapped[UUID | None] = mapped_column(GUID(length=16), default=None)
    parent_id: Mapped[UUID | None] = mapped_column(GUID(length=16), default=None)
    # A fractional-index key among its siblings, compared byte by byte; left out, the database puts the
    # task last in its group.
    position: Mapped[str] = mapped_column(String(255, collation="C"), server_default=FetchedValue())

    __table_args__ = (
        # The target of (parent_id, user_id): a parent is a task of the same owner.
        UniqueConstraint("id", "user_id", name="uq_tasks_id_user_id"),
        # Siblings never share a key (NULLs equal: the inbox is a group); lists a group in order, and
        # serves per-list stats and bulk actions.
        UniqueConstraint(
            "user_id",
            "list_id",
            "parent_id",
            "position",
            name="uq_tasks_user_id_list_id_parent_id_position",
            postgresql_nulls_not_distinct=True,
        ),
        # A parent's subtasks (its delete cascade, its move to another list); top-level tasks not indexed.
        Index("ix_tasks_parent_id", "parent_id", postgresql_where=text("parent_id IS NOT NULL")),
        ForeignKeyConstraint(
            ["list_id", "user_id"],
            ["lists.id", "lists.user_id"],
            name="fk_tasks_list_id_lists",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["parent_id", "user_id"],
            ["tasks.id", "tasks.user_id"],
            name="fk_tasks_parent_id_tasks",
            ondelete="CASCADE",
        ),
        # "This user's tasks, newest first", with id as the tie-breaker of the default sort.
        Index("ix_tasks_user_id_created_at_id", "user_id", "created_at", "id"),
        Index("ix_tasks_tags", "tags", postgresql_using="gin"),
        Index("ix_tasks_user_id_completed_created_at_id", "user_id", "completed", "created_at", "id"),
        Index("ix_tasks_user_id_due_at_id", "user_id", "due_at", "id"),
        Index(
            "ix_tasks_user_id_priority_due_at_id",
            "user_id",
            "priority",
            text("due_at DESC NULLS LAST"),
            text("id DESC"),
        ),
    )
