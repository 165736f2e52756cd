"""The ``lists`` table: a user's named lists of tasks, in the user's own order."""

from __future__ import annotations

from advanced_alchemy.base import UUIDv7AuditBase
from sqlalchemy import FetchedValue, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column


class TaskList(UUIDv7AuditBase):
    __tablename__ = "lists"

    user_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(100))
    # A fractional-index key among the user's lists; left out, the database puts the list last.
    position: Mapped[str] = mapped_column(String(255, collation="C"), server_default=FetchedValue())
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))

    __table_args__ = (
        # The target of tasks' (list_id, user_id): a task names only a list of its own owner.
        UniqueConstraint("id", "user_id", name="uq_lists_id_user_id"),
        # The user's lists in order; no two share a key.
        UniqueConstraint("user_id", "position", name="uq_lists_user_id_position"),
    )
