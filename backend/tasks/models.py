"""The ``tasks`` table."""

from __future__ import annotations

import enum
from datetime import datetime

from advanced_alchemy.base import UUIDv7AuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import Boolean, Enum, Index, Integer, String, false, text
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

    __table_args__ = (
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
