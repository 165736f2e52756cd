"""Indexes for the task list's filters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # tag=x is "tags @> ARRAY[x]": a GIN index answers it without reading every task of the user.
    op.create_index("ix_tasks_tags", "tasks", ["tags"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_index("ix_tasks_tags", table_name="tasks", postgresql_using="gin")
