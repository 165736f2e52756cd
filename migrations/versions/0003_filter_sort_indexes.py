"""Indexes for the common filtered and sorted views of a large task list.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # status=active|completed tabs in the default order, and their counts from the index alone.
    op.create_index(
        "ix_tasks_user_id_completed_created_at_id", "tasks", ["user_id", "completed", "created_at", "id"]
    )
    # sort=due_at and the due_before/due_after range filters.
    op.create_index("ix_tasks_user_id_due_at_id", "tasks", ["user_id", "due_at", "id"])
    # priority=x, most urgent first (sort=-due_at): the page stops after `limit` rows and the
    # count is answered from the index.
    op.create_index(
        "ix_tasks_user_id_priority_due_at_id",
        "tasks",
        ["user_id", "priority", sa.text("due_at DESC NULLS LAST"), sa.text("id DESC")],
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_user_id_priority_due_at_id", table_name="tasks")
    op.drop_index("ix_tasks_user_id_due_at_id", table_name="tasks")
    op.drop_index("ix_tasks_user_id_completed_created_at_id", table_name="tasks")
