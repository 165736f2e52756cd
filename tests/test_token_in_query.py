"""The owner guard's contract with long-lived routes (live updates): the token from ``?access_token=`` on
a route that opts in, its expiry on ``scope["state"]``, and the query token never in a log line.

A tiny app of its own (the guard, the error map and the request middleware of the real one, routes made
here), driven in-process: the live-updates route itself is built elsewhere on this contract.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from litestar import Litestar, Request, Router, get
from litestar.testing import TestClient

from backend.auth import TokenVerifier, owner_guard
from backend.errors import exception_handlers
from backend.http.wrapping import WrappedLitestar
from backend.observability import JsonFormatter, redact, request_context
from backend.settings import Settings
from tests.support import AUDIENCE, ISSUER, SECRET

LEEWAY = 30
IN_QUERY = {"token_in_query": True}


def token(sub: str, **extra: Any) -> str:
    now = int(time.time())
    claims = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, **extra}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def state(request: Request[Any, Any, Any]) -> dict[str, Any]:
    s = request.scope["state"]
    return {"user_id": s["user_id"], "token_expires_at": s["token_expires_at"]}


@get("/api/{user_id:str}/stream", opt=IN_QUERY, sync_to_thread=False)
def stream(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return state(request)


@get("/api/{user_id:str}/plain", sync_to_thread=False)
def plain(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return state(request)


@get("/api/{user_id:str}/broken", opt=IN_QUERY, sync_to_thread=False)
def broken(request: Request[Any, Any, Any]) -> None:
    # What a careless handler might log: the whole URL, query and all; then a 500.
    logging.getLogger("backend.test").warning("about to fail on %s", request.url)
    raise RuntimeError(f"failed on {request.url}")


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    """Everything the app's loggers write, formatted as in production."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in ("tasks", "backend")]
    saved = [(lg.handlers, lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.handlers, lg.propagate = [handler], False
        lg.setLevel(logging.INFO)
    yield buffer
    for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        lg.handlers, lg.propagate = handlers, propagate
        lg.setLevel(level)


@pytest.fixture
def client() -> Iterator[TestClient[Litestar]]:
    settings = Settings(
        database_url="postgresql+asyncpg://test@127.0.0.1/test",
        jwt_secret=SECRET,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_leeway_seconds=LEEWAY,
    )
    verifier = TokenVerifier(settings)
    api = Router("/", guards=[owner_guard(verifier)], route_handlers=[stream, plain, broken])
    app: Litestar = WrappedLitestar(
        around=request_context,
        route_handlers=[api],
        exception_handlers=exception_handlers,
        logging_config=None,
    )
    with TestClient(app) as c:
        yield c


def test_query_token_is_accepted_only_where_the_route_opts_in(client: TestClient[Litestar]) -> None:
    exp = int(time.time()) + 600
    t = token("ann", exp=exp)
    opted = client.get("/api/ann/stream", params={"access_token": t})
    assert opted.status_code == 200
    assert opted.json() == {"user_id": "ann", "token_expires_at": float(exp + LEEWAY)}
    # Elsewhere a token in the URL is no credential at all.
    other = client.get("/api/ann/plain", params={"access_token": t})
    assert other.status_code == 401
    assert other.headers["WWW-Authenticate"] == "Bearer"


def test_query_token_gets_the_same_checks_as_a_header(client: TestClient[Litestar]) -> None:
    assert client.get("/api/bob/stream", params={"access_token": token("ann")}).status_code == 403
    bad = client.get("/api/ann/stream", params={"access_token": "not-a-jwt"})
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    expired = token("ann", iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    assert client.get("/api/ann/stream", params={"access_token": expired}).status_code == 401
    assert client.get("/api/ann/stream", params={"access_token": ""}).status_code == 401


def test_header_token_wins_over_the_query(client: TestClient[Litestar]) -> None:
    headers = {"Authorization": f"Bearer {token('ann')}"}
    response = client.get("/api/ann/stream", params={"access_token": "junk"}, headers=headers)
    assert response.status_code == 200
    # A header of the wrong kind is not replaced by the query token either.
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    assert (
        client.get("/api/ann/stream", params={"access_token": token("ann")}, headers=basic).status_code == 401
    )


def test_header_token_sets_the_expiry_too(client: TestClient[Litestar]) -> None:
    exp = int(time.time()) + 300
    response = client.get("/api/ann/plain", headers={"Authorization": f"Bearer {token('ann', exp=exp)}"})
    assert response.json()["token_expires_at"] == float(exp + LEEWAY)


def test_query_token_never_reaches_a_log_line(client: TestClient[Litestar], log: io.StringIO) -> None:
    secret = token("ann")
    assert client.get("/api/ann/stream", params={"access_token": secret}).status_code == 200
    failed = client.get("/api/ann/broken", params={"access_token": secret, "x": "1"})
    assert failed.status_code == 500
    assert secret not in failed.text
    assert client.get("/api/ann/nowhere", params={"access_token": secret}).status_code == 404
    lines = log.getvalue().splitlines()
    assert len(lines) >= 5  # 3 access lines, the handler's warning, the 500's error with its traceback
    entries = [json.loads(line) for line in lines]
    assert secret not in log.getvalue()
    assert secret.split(".")[2] not in log.getvalue()  # not even the signature alone
    assert any("access_token=REDACTED" in e["msg"] for e in entries)
    assert any("access_token=REDACTED" in e.get("exc", "") for e in entries)


def test_redaction_in_any_text() -> None:
    assert redact("bad request /x?a=1&access_token=abc.def") == "bad request /x?a=1&access_token=REDACTED"
    assert redact("?ACCESS_TOKEN=abc&b=2") == "?ACCESS_TOKEN=REDACTED&b=2"
    assert redact("/x?access%5Ftoken=abc.def") == "/x?access%5Ftoken=REDACTED"


def test_a_lone_surrogate_does_not_break_a_log_line() -> None:
    record = logging.LogRecord("tasks.access", logging.INFO, __file__, 1, "request", (), None)
    record.fields = {"user_id": "bad\ud800id", "path": "/api/x"}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["user_id"] == "bad\ud800id"
    assert entry["path"] == "/api/x"
