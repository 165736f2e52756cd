"""Database wiring: Advanced Alchemy's config (engine, pool, sessions, migrations)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
    async_autocommit_handler_maker,
    async_default_handler_maker,
)
from litestar.types import Message, Scope

from backend.pool import FairAsyncPool
from backend.settings import PROJECT_ROOT, Settings

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
# In a session's ``info``: whether a request that only reads may run its statements outside a
# transaction (``OwnedService.read_only``). Not through a transaction-mode pooler: there a statement
# outside a transaction may be prepared on one server connection and executed on another.
AUTOCOMMIT_READS = "tasks.autocommit_reads"


def _connect_args(settings: Settings) -> dict[str, Any]:
    # asyncpg's own connect timeout, so an unreachable server fails fast too.
    args: dict[str, Any] = {
        "timeout": settings.database_pool_timeout,
        # A database that stops answering mid-statement must not hold a request forever.
        "command_timeout": settings.database_statement_timeout,
    }
    if settings.database_pool_mode == "transaction":
        # A transaction-mode pooler hands each statement to any server connection, where a named
        # prepared statement from another one does not exist: use unnamed statements only.
        args.update(
            statement_cache_size=0,
            prepared_statement_cache_size=0,
            prepared_statement_name_func=lambda: f"__asyncpg_{uuid4()}__",
        )
    return args


# Methods that never write: their session is closed (AA's default handler), not committed. A commit of
# a session that wrote nothing still costs SQLAlchemy's whole commit machinery in Python (≈ 15% of a
# list request's CPU, measured in-process); the close rolls back what little there is.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_close = async_default_handler_maker()
_commit_or_rollback = async_autocommit_handler_maker()


async def before_send(message: Message, scope: Scope) -> None:
    """AA's handlers, chosen by what the route does: autocommit for writes, close for reads."""
    if scope.get("method") in _SAFE_METHODS:
        await _close(message, scope)
    else:
        await _commit_or_rollback(message, scope)


def database_config(settings: Settings) -> SQLAlchemyAsyncConfig:
    """One engine and pool per worker; a session per request, opened by the plugin when a handler's
    service needs one; for a write, committed before a 2xx response goes out (rolled back otherwise);
    always closed.

    AA's default ``before_send`` handler only closes the session: a write through AA's own service
    methods answered 2xx and was rolled back. The prebuilt statements of ``backend.sql`` run outside
    any SQLAlchemy transaction (asyncpg autocommit), and SQLAlchemy's asyncpg adapter sends COMMIT only
    for a transaction it began, so this commit costs those requests nothing: the server receives their
    one statement and no BEGIN/COMMIT (tests/test_session_commit.py reads the server's statement log).
    Per-app rules (quotas) reach the services through the class handed to AA's provider, not here.
    """
    return SQLAlchemyAsyncConfig(
        connection_string=settings.database_url,
        engine_config=EngineConfig(
            poolclass=FairAsyncPool,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            # Bounded wait for a connection: past it the request gets a 503, never a hang.
            pool_timeout=settings.database_pool_timeout,  # type: ignore[arg-type]
            # No ping on checkout (it costs BEGIN; ; ROLLBACK per request): a connection found dead is
            # invalidated, and every other one opened before it is replaced at its next checkout
            # (backend.sql.DriverRepository), so a database restart is recovered from without closing
            # connections that requests still hold.
            pool_pre_ping=False,
            echo=settings.database_echo,
            connect_args=_connect_args(settings),
        ),
        session_config=AsyncSessionConfig(
            expire_on_commit=False,
            info={AUTOCOMMIT_READS: settings.database_pool_mode == "session"},
        ),
        before_send_handler=before_send,
        set_default_exception_handler=False,
        create_all=False,
        alembic_config=AlembicAsyncConfig(
            script_location=str(MIGRATIONS_DIR),
            version_table_name="alembic_version",
        ),
    )
