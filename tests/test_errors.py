"""Every error is problem+json, and nothing internal leaks: the central map, exercised directly."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from advanced_alchemy.exceptions import DuplicateKeyError, IntegrityError, NotFoundError, RepositoryError
from litestar import Litestar, get
from litestar.params import FromPath
from litestar.testing import TestClient
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from backend.errors import Problem, exception_handlers, problem

SECRET_DETAIL = "relation tasks_secret_internal does not exist at /srv/app/db.py line 42"


def chained(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


def through_sqlalchemy(pg_error: asyncpg.PostgresError) -> DBAPIError:
    """As SQLAlchemy's asyncpg dialect raises it: an adapted DBAPI error (with the SQLSTATE), raised
    from asyncpg's, inside a ``DBAPIError``."""
    adapted = AsyncAdapt_asyncpg_dbapi.Error(f"{type(pg_error)}: {SECRET_DETAIL}")
    adapted.sqlstate = adapted.pgcode = pg_error.sqlstate  # type: ignore[attr-defined]
    return DBAPIError(SECRET_DETAIL, None, chained(adapted, pg_error))


def through_advanced_alchemy(pg_error: asyncpg.PostgresError) -> BaseException:
    """``wrap_sqlalchemy_exception`` turns every ``StatementError`` into its ``IntegrityError``."""
    return chained(IntegrityError(detail=SECRET_DETAIL), through_sqlalchemy(pg_error))


RAISES: dict[str, BaseException] = {
    "not-found": NotFoundError("Widget not found"),
    "not-found-bare": NotFoundError(),
    "not-found-by-the-library": NotFoundError("No item found when one was expected"),
    "slots-raw": asyncpg.TooManyConnectionsError(SECRET_DETAIL),
    "slots-sqlalchemy": through_sqlalchemy(asyncpg.TooManyConnectionsError(SECRET_DETAIL)),
    "slots-aa": through_advanced_alchemy(asyncpg.TooManyConnectionsError(SECRET_DETAIL)),
    "starting-up-aa": through_advanced_alchemy(asyncpg.CannotConnectNowError(SECRET_DETAIL)),
    "resources-sqlalchemy": through_sqlalchemy(asyncpg.InsufficientResourcesError(SECRET_DETAIL)),
    "crash-shutdown-raw": asyncpg.CrashShutdownError(SECRET_DETAIL),
    "lost-connection-aa": chained(IntegrityError(detail=SECRET_DETAIL), OSError(SECRET_DETAIL)),
    "slots-under-runtime": chained(
        RuntimeError(SECRET_DETAIL), asyncpg.TooManyConnectionsError(SECRET_DETAIL)
    ),
    "constraint-aa": through_advanced_alchemy(asyncpg.UniqueViolationError(SECRET_DETAIL)),
    "syntax-sqlalchemy": through_sqlalchemy(asyncpg.PostgresSyntaxError(SECRET_DETAIL)),
    # AA's IntegrityError for statements that failed for another reason than a constraint.
    "syntax-aa": through_advanced_alchemy(asyncpg.PostgresSyntaxError(SECRET_DETAIL)),
    "statement-lost-aa": through_advanced_alchemy(asyncpg.InvalidSQLStatementNameError(SECRET_DETAIL)),
    "data-aa": through_advanced_alchemy(asyncpg.InvalidTextRepresentationError(SECRET_DETAIL)),
    "foreign-key-aa": through_advanced_alchemy(asyncpg.ForeignKeyViolationError(SECRET_DETAIL)),
    "integrity": IntegrityError(SECRET_DETAIL),
    "duplicate": DuplicateKeyError(SECRET_DETAIL),
    "repository": RepositoryError(SECRET_DETAIL),
    "runtime": RuntimeError(SECRET_DETAIL),
    "pool-timeout": PoolTimeoutError(SECRET_DETAIL),
    "connection-lost": DBAPIError(SECRET_DETAIL, None, OSError(SECRET_DETAIL), connection_invalidated=True),
    "pg-shutdown": asyncpg.AdminShutdownError(SECRET_DETAIL),
    "pg-data": asyncpg.DataError(SECRET_DETAIL),
    "pg-unique": asyncpg.UniqueViolationError(SECRET_DETAIL),
    "pg-other": asyncpg.UndefinedTableError(SECRET_DETAIL),
    "socket": ConnectionRefusedError(SECRET_DETAIL),
    "pg-broken-state": asyncpg.InternalClientError(SECRET_DETAIL),
    "deadlock-raw": asyncpg.DeadlockDetectedError(SECRET_DETAIL),
    "serialization-sqlalchemy": through_sqlalchemy(asyncpg.SerializationError(SECRET_DETAIL)),
}


@get("/raise/{kind:str}", sync_to_thread=False)
def raiser(kind: FromPath[str]) -> None:
    raise RAISES[kind]


@pytest.fixture(scope="module")
def app_client() -> TestClient[Litestar]:
    return TestClient(Litestar([raiser], exception_handlers=exception_handlers, logging_config=None))


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("not-found", 404), ("integrity", 409), ("duplicate", 409), ("repository", 500), ("runtime", 500),
        ("pool-timeout", 503), ("connection-lost", 503), ("pg-shutdown", 503), ("pg-data", 400),
        ("pg-unique", 409), ("pg-other", 500), ("socket", 503), ("pg-broken-state", 503),
        ("slots-raw", 503), ("slots-sqlalchemy", 503), ("slots-aa", 503), ("starting-up-aa", 503),
        ("resources-sqlalchemy", 503), ("crash-shutdown-raw", 503), ("lost-connection-aa", 503),
        ("slots-under-runtime", 503), ("constraint-aa", 409), ("syntax-sqlalchemy", 500),
        ("deadlock-raw", 503), ("serialization-sqlalchemy", 503), ("syntax-aa", 500),
        ("statement-lost-aa", 500), ("data-aa", 400), ("foreign-key-aa", 409),
    ],
)  # fmt: skip
def test_exceptions_map_to_problem_documents(
    app_client: TestClient[Litestar], kind: str, status: int
) -> None:
    with app_client as client:
        response = client.get(f"/raise/{kind}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["detail"]
    assert "tasks_secret_internal" not in response.text
    assert "Traceback" not in response.text
    if status == 503:
        assert response.headers["Retry-After"]


@pytest.mark.parametrize(
    ("kind", "detail"),
    [
        ("not-found", "Widget not found"),
        ("not-found-bare", "Not found"),
        ("not-found-by-the-library", "Not found"),
    ],
)
def test_404_is_worded_by_the_resource_that_raised_it(
    app_client: TestClient[Litestar], kind: str, detail: str
) -> None:
    with app_client as client:
        response = client.get(f"/raise/{kind}")
    assert response.status_code == 404
    assert response.json() == {"type": "about:blank", "title": "Not Found", "status": 404, "detail": detail}


def test_problem_responses_are_the_problem_struct() -> None:
    response = problem(400, "Invalid", errors=[{"field": "title", "message": "must not be blank"}])
    assert isinstance(response.content, Problem)
    assert response.media_type == "application/problem+json"
    assert response.content.errors[0].field == "title"  # type: ignore[index]


def test_405_and_unknown_routes_are_problem_documents(anon: httpx.Client) -> None:
    response = anon.put("/api/u1/tasks")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert "POST" in response.headers["Allow"]
    missing = anon.get("/no/such/route")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
