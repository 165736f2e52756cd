"""Create the tasks table.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

priority = sa.Enum("low", "medium", "high", name="task_priority")


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("completed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("completed_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("priority", priority, server_default="medium", nullable=False),
        sa.Column("tags", sa.ARRAY(sa.String(length=30)), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("due_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    # "This user's tasks, newest first": scanned backwards for ORDER BY created_at DESC, id DESC.
    op.create_index("ix_tasks_user_id_created_at_id", "tasks", ["user_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_user_id_created_at_id", table_name="tasks")
    op.drop_table("tasks")
    priority.drop(op.get_bind(), checkfirst=True)
