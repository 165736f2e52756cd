"""Session fixtures: a throwaway PostgreSQL cluster, migrated with the real CLI, and the API as a real server.

``TEST_DATABASE_URL`` (an admin URL) points the suite at an existing server instead; a fresh database is
created there either way. ``TASKS_TEST_POOLER=pgbouncer`` serves the API through a real PgBouncer in
transaction pooling mode (with ``DATABASE_POOL_MODE=transaction``); migrations still run directly.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import httpx
import pytest

from backend.devdb import asyncpg_url, start_cluster
from tests.pgbouncer import pgbouncer
from tests.support import (
    AUDIENCE,
    ISSUER,
    SECRET,
    ApiServer,
    JWKSServer,
    KeySet,
    Tokens,
    api_server,
    create_database,
    run_cli,
    with_database,
)

POOLERS = ("pgbouncer",)


def pooler() -> str:
    return os.environ.get("TASKS_TEST_POOLER", "").strip().lower()


def pytest_configure(config: pytest.Config) -> None:
    if pooler() and pooler() not in POOLERS:
        raise pytest.UsageError(f"TASKS_TEST_POOLER must be empty or one of {', '.join(POOLERS)}")


def pytest_report_header(config: pytest.Config) -> str | None:
    return f"API database through: {pooler()} (transaction pooling)" if pooler() else None


@pytest.fixture(scope="session")
def admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
        return
    server = start_cluster(Path(tmp_path_factory.mktemp("pg")) / "data", keep=False)
    try:
        yield asyncpg_url(server)
    finally:
        server.cleanup()


def new_database(admin_url: str) -> str:
    name = f"tasks_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(create_database(admin_url, name))
    return with_database(admin_url, name)


@pytest.fixture(scope="session")
def database_url(admin_url: str) -> str:
    url = new_database(admin_url)
    run_cli("database", "upgrade", "--no-prompt", env={"DATABASE_URL": url, "JWT_SECRET": SECRET})
    return url


@pytest.fixture(scope="session")
def api_database_url(database_url: str) -> Iterator[str]:
    """The API's ``DATABASE_URL``: ``database_url``, or the same database through the pooler if one is set."""
    if not pooler():
        yield database_url
        return
    with pgbouncer(database_url) as url:
        yield url


@pytest.fixture(scope="session")
def keys() -> KeySet:
    return KeySet()


@pytest.fixture(scope="session")
def jwks_server(keys: KeySet) -> Iterator[JWKSServer]:
    server = JWKSServer(keys)
    yield server
    server.close()


@pytest.fixture(scope="session")
def tokens(keys: KeySet) -> Tokens:
    return Tokens(keys)


@pytest.fixture(scope="session")
def api_env(api_database_url: str, database_url: str, jwks_server: JWKSServer) -> dict[str, str]:
    # Live updates LISTEN on a direct connection: a transaction-mode pooler does not keep sessions.
    pooled = {"DATABASE_POOL_MODE": "transaction", "DATABASE_LISTEN_URL": database_url} if pooler() else {}
    return {
        "DATABASE_URL": api_database_url,
        **pooled,
        "JWT_JWKS_URL": jwks_server.url,
        "JWT_SECRET": SECRET,
        "JWT_ALGORITHMS": "EdDSA,ES256,RS256,PS256,HS256",
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "JWT_JWKS_MIN_REFRESH_SECONDS": "5",
        # The whole suite comes from one IP and fuzzes unauthenticated calls: keep the limiter on (its
        # headers and code path run everywhere) but out of reach; tests/test_rate_limit.py tests limits.
        "RATE_LIMIT": "100000/minute",
    }


@pytest.fixture(scope="session")
def api(api_env: dict[str, str]) -> Iterator[ApiServer]:
    with api_server(api_env) as server:
        yield server


@pytest.fixture
def user() -> str:
    """A fresh user per test, so tests never see each other's tasks."""
    return f"user-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(api: ApiServer, tokens: Tokens, user: str) -> Iterator[httpx.Client]:
    """Signed in as ``user`` (EdDSA via JWKS, like Better Auth), based at ``/api/{user}``."""
    with httpx.Client(base_url=f"{api.url}/api/{user}", headers=tokens.headers(user), timeout=30) as c:
        yield c


@pytest.fixture
def anon(api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as c:
        yield c


@pytest.fixture
def api_url(api: ApiServer) -> str:
    return api.url


@pytest.fixture
def other_client(api: ApiServer, tokens: Tokens) -> Iterator[httpx.Client]:
    """Like ``client``, as another user: what they do must never show in the first one's answers."""
    other = f"user-{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=f"{api.url}/api/{other}", headers=tokens.headers(other), timeout=30) as c:
        yield c


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test that used an API server shows the server's warnings and errors: a 503 or a 409
    says why only there."""
    report = yield
    server = getattr(item, "funcargs", {}).get("api")
    if call.when == "call" and report.failed and isinstance(server, ApiServer):
        lines = [line for line in server.output().splitlines() if '"level":"info"' not in line]
        report.sections.append(("API server warnings and errors", "\n".join(lines[-40:]) or "(none)"))
    return report
