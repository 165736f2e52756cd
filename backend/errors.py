"""Every exception becomes an RFC 9457 ``application/problem+json`` response; nothing internal leaks."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
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
from litestar.exceptions import HTTPException, InternalServerException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_413_REQUEST_ENTITY_TOO_LARGE
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import DataError, DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "5"
GENERIC_NOT_FOUND = "Not found"
# Advanced Alchemy's own wording when a repository lookup finds nothing: true but generic, so the
# answer says "Not found" as for a resource that raised without a detail of its own.
_LIBRARY_NOT_FOUND = frozenset({"No item found when one was expected", "No rows matched the specified data"})

# SQLSTATEs meaning "the database cannot serve this now; the same request may work in a moment":
# class 08 (connection exception), class 53 (insufficient resources: 53300 too many connections,
# 53000, 53100 disk full, 53200 out of memory, 53400 configuration limit), and from class 57 the
# shutdowns, 57P03 "cannot connect now" (starting up, recovering) and 57P05 idle-session timeout.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53")
# A deadlock (40P01) or serialization failure (40001) rolled the statement back: the same request may
# simply be sent again. Bulk writes lock rows in one order so these should not happen; if one does, it
# is a 503 with Retry-After, never a 500.
_RETRYABLE_STATES = ("40P01", "40001")
# 57014 (query_canceled) is the server's own statement_timeout, which hosts often set on the role, and
# 55P03 (lock_not_available) its lock_timeout: the database is too busy to answer now, so a 503 with
# Retry-After, like our own statement timeout.
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "57P05", "57014", "55P03", *_RETRYABLE_STATES})
# Failures with no SQLSTATE that mean the same: sockets, the driver's "connection is closed" and
# broken-connection states, a pool or connection queue that ran dry.
_UNAVAILABLE_TYPES: tuple[type[BaseException], ...] = (
    OSError,
    PoolTimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


class VersionMismatch(Exception):
    """``If-Match`` named a version that is not the stored one; the argument is the resource's noun."""


class FieldProblem(msgspec.Struct):
    field: str
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem document: the one shape of every error answer."""

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
) -> Response[Problem]:
    """A :class:`Problem` response; ``errors`` are ``{"field", "message"}`` pairs."""
    body = Problem(
        type="about:blank",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        errors=[FieldProblem(e["field"], e["message"]) for e in errors] if errors else msgspec.UNSET,
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


_DESCRIPTIONS = {
    400: "Invalid input: body, query or header; `errors` names each offending field",
    401: "Missing or invalid bearer token (see `WWW-Authenticate`)",
    403: "The path's user id is not the token's subject",
    404: "No such task or list for this user (also for another user's and for a non-UUID id)",
    409: "The per-user task or list limit is reached, or a request with this `Idempotency-Key` is still "
    "running (`Retry-After`)",
    410: "The sync cursor does not parse or is older than the changes kept: sync again without a cursor",
    412: "`If-Match` does not match the current version; nothing was changed",
    413: "Request body over 64 KiB",
    415: "Request body is not `application/json`",
    422: "This `Idempotency-Key` was used for another request",
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


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it was raised from: ``__cause__`` and a DBAPI error's ``.orig``.

    The same failure arrives raw from asyncpg, as SQLAlchemy's ``DBAPIError`` (``.orig`` is the
    dialect's adapted error, raised from asyncpg's), or wrapped again by Advanced Alchemy's
    ``wrap_sqlalchemy_exception`` (which turns every ``StatementError``, a lost connection included,
    into its ``IntegrityError``). Implicit ``__context__`` is not followed: an unrelated error raised
    while handling an outage is a bug of its own.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None) if isinstance(current, DBAPIError) else None
        pending.extend(e for e in (current.__cause__, orig) if isinstance(e, BaseException))


def _sqlstate(exc: BaseException) -> str | None:
    # asyncpg's errors and SQLAlchemy's adapted asyncpg errors both carry ``sqlstate``.
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) and len(state) == 5 else None


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) means the database cannot serve now."""
    for e in _causes(exc):
        state = _sqlstate(e)
        if state is not None and (state[:2] in _UNAVAILABLE_SQLSTATE_CLASSES or state in _UNAVAILABLE_STATES):
            return True
        if isinstance(e, _UNAVAILABLE_TYPES) or (isinstance(e, DBAPIError) and e.connection_invalidated):
            return True
    return False


class _Availability:
    """When this process last answered a 503 because of the database (for the readiness probe)."""

    last_unavailable = float("-inf")


def unavailable_recently(within: float = float(RETRY_AFTER_SECONDS)) -> bool:
    """Whether a request of this process found the database unavailable in the last ``within`` s."""
    return time.monotonic() - _Availability.last_unavailable < within


def _unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    _Availability.last_unavailable = time.monotonic()
    logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return problem(
        503, "The database is unavailable; retry shortly", headers={"Retry-After": RETRY_AFTER_SECONDS}
    )


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
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


# Litestar's ``Request.stream()`` raises this when the client goes away before its body is complete.
_CLIENT_DISCONNECTED = "client disconnected prematurely"


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    if isinstance(exc, InternalServerException) and exc.detail == _CLIENT_DISCONNECTED:
        # Nobody is left to read an answer: not a server error, and no traceback in the log.
        # The server says only that the body stopped: cut short, or malformed (a bad chunk size).
        logger.info("request body unreadable on %s %s", request.method, request.url.path)
        return problem(400, "The request body could not be read to its end (cut short or malformed)")
    if exc.status_code >= 500:
        return _internal(request, exc)
    if exc.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
        # The rest of the body is never read, so the server closes the connection after this answer:
        # say so (RFC 9112 9.6), or a client may send its next request on it and lose it.
        return problem(413, exc.detail, headers={**(exc.headers or {}), "Connection": "close"})
    return problem(exc.status_code, exc.detail, headers=exc.headers)


def _not_found(_: Request[Any, Any, Any], exc: NotFoundError) -> Response[Problem]:
    # The resource's own wording ("Task not found"); never more than the raiser chose to say.
    detail = exc.detail if exc.detail and exc.detail not in _LIBRARY_NOT_FOUND else GENERIC_NOT_FOUND
    return problem(404, detail)


def _conflict(_: Request[Any, Any, Any], __: Exception) -> Response[Problem]:
    return problem(409, "The change conflicts with the stored data")


def _version_mismatch(_: Request[Any, Any, Any], exc: VersionMismatch) -> Response[Problem]:
    noun = str(exc.args[0]).lower() if exc.args else "resource"
    return problem(412, f"If-Match does not match the {noun}'s current version")


def _rejected_value(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    # Validation should stop every bad value first; this keeps an oversight a 400, not a 500.
    logger.error("database rejected a value on %s %s: %s", request.method, request.url.path, exc)
    return problem(400, "A value was rejected by the database")


def _database(request: Request[Any, Any, Any], exc: SQLAlchemyError) -> Response[Problem]:
    if database_unavailable(exc):
        return _unavailable(request, exc)
    if isinstance(exc, DataError):
        return _rejected_value(request, exc)
    return _internal(request, exc)


def _postgres(request: Request[Any, Any, Any], exc: asyncpg.PostgresError) -> Response[Problem]:
    """Errors from statements run on asyncpg directly (and from asyncpg's connect)."""
    if database_unavailable(exc):
        return _unavailable(request, exc)
    if isinstance(exc, (asyncpg.InvalidSQLStatementNameError, asyncpg.DuplicatePreparedStatementError)):
        logger.error(
            "prepared statement lost: behind PgBouncer/Neon -pooler, set DATABASE_POOL_MODE=transaction"
        )
        return _internal(request, exc)
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return _conflict(request, exc)
    if isinstance(exc, asyncpg.DataError):
        return _rejected_value(request, exc)
    return _internal(request, exc)


def _alchemy(request: Request[Any, Any, Any], exc: AdvancedAlchemyError) -> Response[Problem]:
    # First what lies underneath: AA reports a lost connection as its IntegrityError.
    if database_unavailable(exc):
        return _unavailable(request, exc)
    if isinstance(exc, NotFoundError):
        return _not_found(request, exc)
    if isinstance(exc, (IntegrityError, DuplicateKeyError, ForeignKeyError)):
        # AA's IntegrityError also stands for any statement that failed: only a constraint is a 409.
        failed = next((e for e in _causes(exc) if isinstance(e, asyncpg.PostgresError)), None)
        if failed is not None and not isinstance(failed, asyncpg.IntegrityConstraintViolationError):
            return _postgres(request, failed)
        return _conflict(request, exc)
    cause = exc.__cause__
    if isinstance(cause, SQLAlchemyError):
        return _database(request, cause)
    return _internal(request, exc)


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    if database_unavailable(exc):
        return _unavailable(request, exc)
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "An unexpected error occurred")


exception_handlers: ExceptionHandlersMap = {
    ValidationException: _validation,
    HTTPException: _http,
    AdvancedAlchemyError: _alchemy,
    VersionMismatch: _version_mismatch,
    SQLAlchemyError: _database,
    asyncpg.PostgresError: _postgres,
    # Everything else, the driver's "connection is closed" and refused sockets included: 503 when
    # the cause chain says the database cannot serve now, else a 500 without details.
    Exception: _internal,
}
