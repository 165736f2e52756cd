"""Every error is problem+json, and nothing internal leaks: the central map, exercised directly."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from advanced_alchemy.exceptions import DuplicateKeyError, IntegrityError, NotFoundError, RepositoryError
from litestar import Litestar, get
from litestar.testing import TestClient
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from backend.errors import exception_handlers

SECRET_DETAIL = "relation tasks_secret_internal does not exist at /srv/app/db.py line 42"

RAISES: dict[str, BaseException] = {
    "not-found": NotFoundError(SECRET_DETAIL),
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
}


@get("/raise/{kind:str}", sync_to_thread=False)
def raiser(kind: str) -> None:
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


def test_405_and_unknown_routes_are_problem_documents(anon: httpx.Client) -> None:
    response = anon.put("/api/u1/tasks")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert "POST" in response.headers["Allow"]
    missing = anon.get("/no/such/route")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
