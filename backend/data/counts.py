"""The per-user row counts of migration 0015, declared on the models' metadata so that
``litestar database check`` (Alembic's autogenerate) sees the schema it expects, not drift.

Only the database writes them (triggers on every owned table that keeps a count) and reads them
(``owned_count_locked``, the quota check of ``OwnedTable.insert_within_quota`` and
``OwnedService.to_model_on_create``); nothing in Python queries this object.
"""

from __future__ import annotations

from advanced_alchemy.base import metadata_registry
from sqlalchemy import BigInteger, Column, PrimaryKeyConstraint, String, Table, Text

owned_counts = Table(
    "owned_counts",
    metadata_registry.get(None),
    Column("user_id", String(255), nullable=False),
    Column("tbl", Text, nullable=False),
    Column("n", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_id", "tbl"),
)
