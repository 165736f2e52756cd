"""Liveness and readiness probes (no authentication)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.errors import RETRY_AFTER_SECONDS, unavailable_recently

READY_TIMEOUT_SECONDS = 3.0


class Health(msgspec.Struct):
    status: str


@get("/health", summary="Liveness", tags=["health"])
async def health() -> Health:
    return Health(status="ok")


@get(
    "/health/ready",
    summary="Readiness: the database answers",
    description="503 while the database does not answer, and for a few seconds after a request of "
    "this process found it unable to serve (e.g. out of connection slots), although a pooled "
    "connection may still answer `SELECT 1`.",
    tags=["health"],
    responses={
        503: ResponseSpec(
            data_container=Health, description="The database does not answer (`Retry-After` set)"
        )
    },
)
async def ready(request: Request[Any, Any, Any], db_engine: AsyncEngine) -> Response[Health]:
    if unavailable_recently():
        return _unavailable()
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), db_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        request.logger.warning("readiness check failed", exc_info=True)
        return _unavailable()
    return Response(Health(status="ok"))


def _unavailable() -> Response[Health]:
    return Response(
        Health(status="unavailable"), status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS}
    )
