"""Every exception becomes an RFC 9457 ``application/problem+json`` response; nothing internal leaks."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
import msgspec
from advanced_alchemy.exceptions import (
    AdvancedAlchemyError,
    DuplicateKeyError,
    ForeignKeyError,
    IntegrityError,
    NotFoundError,
)
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import DataError, DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "5"


class VersionMismatch(Exception):
    """``If-Match`` named a version that is not the stored one."""


class FieldProblem(msgspec.Struct):
    field: str
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | msgspec.UnsetType = msgspec.UNSET


def problem(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


_DESCRIPTIONS = {
    400: "Invalid input: body, query or header; `errors` names each offending field",
    401: "Missing or invalid bearer token (see `WWW-Authenticate`)",
    403: "The path's user id is not the token's subject",
    404: "No such task for this user (also for another user's task and for a non-UUID id)",
    412: "`If-Match` does not match the task's current version; nothing was changed",
    413: "Request body over 64 KiB",
    415: "Request body is not `application/json`",
    429: "Rate limited: see `Retry-After` and the `RateLimit-*` headers",
    503: "The database is unavailable: retry after `Retry-After` seconds",
}
_EVERY_API_CALL = (400, 401, 403, 429, 503)


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem documents an /api handler can answer with (besides the usual)."""
    return {
        s: ResponseSpec(
            data_container=Problem,
            description=_DESCRIPTIONS[s],
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for s in sorted({*_EVERY_API_CALL, *statuses})
    }


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict) and "field" in item:
            errors.append({"field": str(item["field"]), "message": str(item["message"])})
        elif isinstance(item, dict):
            # Litestar's own parameter validation: {"key", "message", "source"}; "data" is the body.
            key, message = str(item.get("key", "")), str(item.get("message", ""))
            if key == "data":
                key, message = "body", "a JSON request body is required"
            errors.append({"field": key, "message": message})
    return problem(400, exc.detail, errors=errors or None)


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    if exc.status_code >= 500:
        return _internal(_, exc)
    return problem(exc.status_code, exc.detail, headers=exc.headers)


def _not_found(_: Request[Any, Any, Any], __: NotFoundError) -> Response[dict[str, Any]]:
    return problem(404, "Task not found")


def _conflict(_: Request[Any, Any, Any], __: Exception) -> Response[dict[str, Any]]:
    return problem(409, "The change conflicts with the stored data")


def _version_mismatch(_: Request[Any, Any, Any], __: VersionMismatch) -> Response[dict[str, Any]]:
    return problem(412, "If-Match does not match the task's current version")


def _unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return problem(
        503, "The database is unavailable; retry shortly", headers={"Retry-After": RETRY_AFTER_SECONDS}
    )


def _database(request: Request[Any, Any, Any], exc: SQLAlchemyError) -> Response[dict[str, Any]]:
    if isinstance(exc, PoolTimeoutError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return _unavailable(request, exc)
    if isinstance(exc, DataError):
        # Validation should stop every bad value first; this keeps an oversight a 400, not a 500.
        logger.error("database rejected a value on %s %s: %s", request.method, request.url.path, exc)
        return problem(400, "A value was rejected by the database")
    if isinstance(exc, DBAPIError) and _is_connection_error(exc.orig):
        return _unavailable(request, exc)
    return _internal(request, exc)


def _is_connection_error(orig: BaseException | None) -> bool:
    return isinstance(orig, (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError)) or (
        orig is not None and "connection" in type(orig).__name__.lower()
    )


def _postgres(request: Request[Any, Any, Any], exc: asyncpg.PostgresError) -> Response[dict[str, Any]]:
    """Errors from statements the service runs on asyncpg directly."""
    if isinstance(
        exc, (asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError)
    ):
        return _unavailable(request, exc)
    if isinstance(exc, (asyncpg.InvalidSQLStatementNameError, asyncpg.DuplicatePreparedStatementError)):
        logger.error(
            "prepared statement lost: behind PgBouncer/Neon -pooler, set DATABASE_POOL_MODE=transaction"
        )
        return _internal(request, exc)
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return _conflict(request, exc)
    if isinstance(exc, asyncpg.DataError):
        logger.error("database rejected a value on %s %s: %s", request.method, request.url.path, exc)
        return problem(400, "A value was rejected by the database")
    return _internal(request, exc)


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "An unexpected error occurred")


def _alchemy(request: Request[Any, Any, Any], exc: AdvancedAlchemyError) -> Response[dict[str, Any]]:
    if isinstance(exc, NotFoundError):
        return _not_found(request, exc)
    if isinstance(exc, (IntegrityError, DuplicateKeyError, ForeignKeyError)):
        return _conflict(request, exc)
    cause = exc.__cause__
    if isinstance(cause, SQLAlchemyError):
        return _database(request, cause)
    return _internal(request, exc)


exception_handlers: ExceptionHandlersMap = {
    ValidationException: _validation,
    HTTPException: _http,
    AdvancedAlchemyError: _alchemy,
    VersionMismatch: _version_mismatch,
    SQLAlchemyError: _database,
    asyncpg.PostgresError: _postgres,
    # The driver's own "connection is closed" errors and refused/reset sockets.
    asyncpg.InterfaceError: _unavailable,
    asyncpg.InternalClientError: _unavailable,
    OSError: _unavailable,
    Exception: _internal,
}
