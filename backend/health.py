"""Liveness and readiness probes (no authentication)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.errors import RETRY_AFTER_SECONDS

READY_TIMEOUT_SECONDS = 3.0


class Health(msgspec.Struct):
    status: str


@get("/health", summary="Liveness", tags=["health"])
async def health() -> Health:
    return Health(status="ok")


@get(
    "/health/ready",
    summary="Readiness: the database answers",
    tags=["health"],
    responses={
        503: ResponseSpec(
            data_container=Health, description="The database does not answer (`Retry-After` set)"
        )
    },
)
async def ready(request: Request[Any, Any, Any], db_engine: AsyncEngine) -> Response[Health]:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), db_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        request.logger.warning("readiness check failed", exc_info=True)
        return Response(
            Health(status="unavailable"), status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS}
        )
    return Response(Health(status="ok"))
