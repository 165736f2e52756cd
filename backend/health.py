"""Liveness and readiness probes (no authentication)."""

from __future__ import annotations

import asyncio
import logging

import msgspec
from litestar import Response, get
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from backend.errors import RETRY_AFTER_SECONDS, unavailable_recently

logger = logging.getLogger(__name__)
READY_TIMEOUT_SECONDS = 3.0
# For this long after a request found the database unable to serve (e.g. out of connection slots),
# readiness also opens a connection of its own: a pooled one answering SELECT 1 proves too little.
RECHECK_NEW_CONNECTIONS_SECONDS = 60.0


class Health(msgspec.Struct):
    status: str


@get("/health", summary="Liveness", tags=["health"])
async def health() -> Health:
    return Health(status="ok")


@get(
    "/health/ready",
    summary="Readiness: the database answers",
    description="503 while the database does not answer, or, shortly after a request found it unable "
    "to serve (e.g. out of connection slots), while it still refuses new connections.",
    tags=["health"],
    responses={
        503: ResponseSpec(
            data_container=Health, description="The database does not answer (`Retry-After` set)"
        )
    },
)
async def ready(db_engine: AsyncEngine) -> Response[Health]:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            async with db_engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            if unavailable_recently(RECHECK_NEW_CONNECTIONS_SECONDS):
                await _open_new_connection(db_engine)
    except Exception as exc:
        # One JSON line with the cause (a probe fails every few seconds while the database is down: a
        # traceback each time would bury everything else).
        logger.warning("readiness check failed: %s", _cause(exc))
        return _unavailable()
    return Response(Health(status="ok"))


def _cause(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {READY_TIMEOUT_SECONDS:g} s"
    # SQLAlchemy wraps the driver's error and appends a documentation link: the driver's says it all.
    cause = exc.__cause__ or exc
    return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"[:300]


async def _open_new_connection(engine: AsyncEngine) -> None:
    """Open and close a connection outside the app's pool (whose idle connections it would reuse)."""
    # ``recreate()``: an empty pool with the same creator, connect arguments and connect events.
    pool = engine.sync_engine.pool.recreate()
    try:
        connection = await greenlet_spawn(pool.connect)
        await greenlet_spawn(connection.close)
    finally:
        await greenlet_spawn(pool.dispose)


def _unavailable() -> Response[Health]:
    return Response(
        Health(status="unavailable"), status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS}
    )
