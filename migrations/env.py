"""Alembic environment, driven by `litestar database ...` (Advanced Alchemy's template)."""

import asyncio
from typing import TYPE_CHECKING, Any, cast

from advanced_alchemy.base import metadata_registry
from alembic import context
from alembic.autogenerate import rewriter
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import AsyncEngine, async_engine_from_config

# Imported for their tables: importing a model registers it on the metadata Alembic compares with.
import backend.data.counts
import backend.events.tables
import backend.idempotency
import backend.lists.models
import backend.sync.tables
import backend.tasks.models  # noqa: F401

if TYPE_CHECKING:
    from advanced_alchemy.alembic.commands import AlembicCommandConfig
    from sqlalchemy.engine import Connection

__all__ = ("do_run_migrations", "run_migrations_offline", "run_migrations_online")


# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config: "AlembicCommandConfig" = context.config  # type: ignore
writer = rewriter.Rewriter()


def _run(**where: Any) -> None:
    """Configure the context (``where``: a URL for offline SQL, or a connection) and run the migrations.

    The options below are the same either way: the ones Advanced Alchemy's CLI passes in its config.
    """
    context.configure(
        **where,
        target_metadata=metadata_registry.get(config.bind_key),
        compare_type=config.compare_type,
        version_table=config.version_table_name,
        version_table_schema=config.version_table_schema,
        version_table_pk=config.version_table_pk,
        user_module_prefix=config.user_module_prefix,
        render_as_batch=config.render_as_batch,
        process_revision_directives=writer,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """'Offline' mode (``--sql``): the statements are written out as SQL, with literal values."""
    _run(url=config.db_url, literal_binds=True, dialect_opts={"paramstyle": "named"})


def do_run_migrations(connection: "Connection") -> None:
    """'Online' mode, on ``connection``."""
    _run(connection=connection)


async def run_migrations_online() -> None:
    """Run migrations in 'online' mode.

    In this scenario we need to create an Engine and associate a
    connection with the context.

    Raises:
        RuntimeError: If the engine cannot be created from the config.
    """
    configuration = config.get_section(config.config_ini_section) or {}
    configuration["sqlalchemy.url"] = config.db_url

    connectable = cast(
        "AsyncEngine",
        config.engine
        or async_engine_from_config(
            configuration,
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
            future=True,
        ),
    )
    if connectable is None:  # pyright: ignore[reportUnnecessaryComparison]
        msg = "Could not get engine from config.  Please ensure your `alembic.ini` according to the official Alembic documentation."
        raise RuntimeError(
            msg,
        )

    async with connectable.connect() as connection:
        await connection.run_sync(do_run_migrations)

    await connectable.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
