"""CORS as real browsers use it: a page on another origin (another local port) calls the API from a
headless Chromium with the headers browser SDKs add, and reads every header the API exposes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.browser import chromium
from tests.support import ApiServer, Tokens, api_server

# What the issue asks of the API (not imported from backend.http.cors: the test says it independently).
ALLOW_HEADERS = (
    "Authorization", "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key", "X-Request-ID",
    "traceparent", "tracestate", "baggage", "sentry-trace",
)  # fmt: skip
EXPOSE_HEADERS = (
    "ETag", "Location", "Link", "X-Total-Count", "Retry-After", "X-Request-ID", "RateLimit-Limit",
    "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy", "WWW-Authenticate", "Idempotent-Replayed",
)  # fmt: skip
TRACE_HEADERS = {
    "X-Request-ID": "browser-request-1",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "vendor=opaque",
    "baggage": "userId=alice,release=1.2.3",
    "sentry-trace": "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
    "X-Frontend-Build": "2026.12.3",  # CORS_ALLOW_HEADERS adds it
}
RATE = 12  # per user per minute: low enough for the flood below to reach a 429


@contextmanager
def frontend_origin() -> Iterator[str]:
    """A blank page served from its own loopback port: another origin than the API's."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>frontend</title><p>frontend"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[str, str]]:
    """(allowed, refused): two pages on two ports; the API allows only the first."""
    with frontend_origin() as allowed, frontend_origin() as refused:
        yield allowed, refused


@pytest.fixture(scope="module")
def cors_api(api_env: dict[str, str], origins: tuple[str, str]) -> Iterator[ApiServer]:
    env = {
        **api_env,
        "CORS_ALLOW_ORIGINS": f"{origins[0]},http://localhost:3000",
        "CORS_ALLOW_HEADERS": "X-Frontend-Build",
        "RATE_LIMIT": f"{RATE}/minute",
    }
    with api_server(env) as server:
        yield server


# Runs in the page; every fetch is cross-origin. Returns what JavaScript could see.
FLOW = """
(async () => {
  const api = %(api)s, user = %(user)s, other = %(other)s;
  const trace = %(trace)s, exposed = %(exposed)s;
  const auth = {Authorization: `Bearer ${%(token)s}`};
  const seen = r => Object.fromEntries(exposed.map(h => [h, r.headers.get(h)]));
  const call = async (path, init = {}) => {
    const r = await fetch(api + path, {...init, headers: {...trace, ...(init.headers || {})}});
    const type = r.headers.get('Content-Type');
    return {status: r.status, type, headers: seen(r), body: type ? await r.json() : null};
  };
  const json = {...auth, 'Content-Type': 'application/json'};
  const tasks = `/api/${user}/tasks`;
  const out = {};
  out.create = await call(tasks, {method: 'POST', headers: {...json, 'Idempotency-Key': 'browser-key-1'},
                                  body: JSON.stringify({title: 'From the browser'})});
  out.replay = await call(tasks, {method: 'POST', headers: {...json, 'Idempotency-Key': 'browser-key-1'},
                                  body: JSON.stringify({title: 'From the browser'})});
  await call(tasks, {method: 'POST', headers: json, body: JSON.stringify({title: 'Another'})});
  out.list = await call(`${tasks}?limit=1&sort=title`, {headers: auth});
  const task = `${tasks}/${out.create.body.id}`;
  out.stale = await call(task, {method: 'PATCH', headers: {...json, 'If-Match': '"999"'},
                                body: JSON.stringify({title: 'Lost update'})});
  out.toggle = await call(`${task}/complete`, {method: 'PATCH', headers: auth});
  out.unauthenticated = await call(tasks, {headers: {Authorization: 'Bearer not-a-token'}});
  out.flood = [];
  for (let i = 0; i < %(flood)d; i++) {
    const r = await call(`/api/${other}/tasks`, {headers: {Authorization: `Bearer ${%(other_token)s}`}});
    out.flood.push(r);
    if (r.status === 429) break;
  }
  return out;
})()
"""

REFUSED = """
(async () => {
  try {
    await fetch(%(url)s, {headers: {Authorization: 'Bearer x', 'X-Request-ID': 'r1'}});
    return 'answered';
  } catch (error) {
    return error.name;
  }
})()
"""


def test_a_page_on_another_origin_runs_the_flow_and_reads_every_exposed_header(
    cors_api: ApiServer, origins: tuple[str, str], tokens: Tokens, user: str
) -> None:
    allowed, refused = origins
    other = f"{user}-flood"
    with chromium() as page:
        page.goto(allowed)
        out = page.evaluate(
            FLOW
            % {
                "api": json.dumps(cors_api.url),
                "user": json.dumps(user),
                "other": json.dumps(other),
                "token": json.dumps(tokens.jwks(user)),
                "other_token": json.dumps(tokens.jwks(other)),
                "trace": json.dumps(TRACE_HEADERS),
                "exposed": json.dumps(list(EXPOSE_HEADERS)),
                "flood": RATE + 2,
            },
            timeout=60,
        )
        page.goto(refused)
        blocked = page.evaluate(REFUSED % {"url": json.dumps(f"{cors_api.url}/api/{user}/tasks")})
        assert page.foreign_requests() == []

    create, listing, stale, toggle = out["create"], out["list"], out["stale"], out["toggle"]
    assert create["status"] == 201
    assert create["headers"]["ETag"] == '"1"'
    assert create["headers"]["Location"].endswith(f"/api/{user}/tasks/{create['body']['id']}")
    assert listing["status"] == 200
    assert int(listing["headers"]["X-Total-Count"]) >= 2
    assert 'rel="next"' in listing["headers"]["Link"]
    assert stale["status"] == 412
    assert stale["type"] == "application/problem+json"
    assert stale["body"]["status"] == 412
    assert toggle["status"] == 200
    assert toggle["body"]["completed"] is True
    assert toggle["headers"]["ETag"] == '"2"'
    unauthenticated = out["unauthenticated"]
    assert unauthenticated["status"] == 401
    assert unauthenticated["headers"]["WWW-Authenticate"].startswith("Bearer")
    limited = out["flood"][-1]
    assert limited["status"] == 429
    assert int(limited["headers"]["Retry-After"]) >= 0

    rate_limit = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")
    for name in ("create", "list", "stale", "toggle", "unauthenticated"):
        response = out[name]
        # The browser's own X-Request-ID comes back; JavaScript can read it.
        assert response["headers"]["X-Request-ID"] == TRACE_HEADERS["X-Request-ID"], name
        for header in rate_limit:
            assert response["headers"][header] is not None, (name, header)
    assert limited["headers"]["RateLimit-Remaining"] == "0"

    # Replays are the idempotency feature's business; when the API marks one, the page can read it.
    replayed = out["replay"]
    assert replayed["status"] in (200, 201)
    if replayed["headers"]["Idempotent-Replayed"] is None:
        again = httpx.post(
            f"{cors_api.url}/api/{user}/tasks",
            headers={**tokens.headers(user), "Idempotency-Key": "browser-key-1", "Origin": allowed},
            json={"title": "From the browser"},
        )
        assert "idempotent-replayed" not in {h.lower() for h in again.headers}

    # A page on an origin the API does not allow gets nothing: the browser refuses the answer.
    assert blocked == "TypeError"


def test_preflights_allow_the_browser_sdk_headers(cors_api: ApiServer, origins: tuple[str, str]) -> None:
    requested = [*ALLOW_HEADERS, "X-Frontend-Build"]
    preflight = httpx.options(
        f"{cors_api.url}/api/u1/tasks/0193f3c4-6a1e-7c2b-9a55-2f1e0c8d4b21",
        headers={
            "Origin": origins[0],
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": ",".join(h.lower() for h in requested),
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == origins[0]
    allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {h.lower() for h in requested} <= allowed
    assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]

    response = httpx.get(f"{cors_api.url}/health", headers={"Origin": origins[0]})
    exposed = {h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {h.lower() for h in EXPOSE_HEADERS} <= exposed


@pytest.mark.parametrize(
    "origin", ["http://evil.test", "http://127.0.0.1:1"]
)  # the second: not the allowed port
def test_preflights_from_origins_not_allowed_are_problem_documents(cors_api: ApiServer, origin: str) -> None:
    refused = httpx.options(
        f"{cors_api.url}/api/u1/tasks",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization,x-not-allowed",
        },
    )
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["status"] == 400
    assert "Origin" in problem["detail"]
    assert refused.headers["X-Request-ID"]
    assert "access-control-allow-origin" not in {h.lower() for h in refused.headers}


@pytest.mark.parametrize(
    ("method", "request_headers", "refused"),
    [("GET", "authorization,x-not-allowed", "x-not-allowed"), ("PROPFIND", "authorization", "PROPFIND")],
)
def test_an_allowed_origin_hears_what_is_allowed_and_what_it_asked_for_is_not(
    cors_api: ApiServer, method: str, request_headers: str, refused: str
) -> None:
    """As a browser needs it to name the header or method refused: the origin allowed, and the lists."""
    origin = "http://localhost:3000"
    answer = httpx.options(
        f"{cors_api.url}/api/u1/tasks",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": request_headers,
        },
    )
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == origin
    assert answer.headers["X-Request-ID"]
    headers = {h.strip().lower() for h in answer.headers["Access-Control-Allow-Headers"].split(",")}
    methods = {m.strip() for m in answer.headers["Access-Control-Allow-Methods"].split(",")}
    assert "authorization" in headers
    assert "GET" in methods
    assert refused.lower() not in headers
    assert refused not in methods


NOT_ALLOWED = """
(async () => {
  try {
    await fetch(%(url)s, {headers: {Authorization: 'Bearer x', 'X-Not-Allowed': '1'}});
    return 'answered';
  } catch (error) {
    return error.name;
  }
})()
"""


def test_the_browser_names_a_header_the_api_does_not_allow(
    cors_api: ApiServer, origins: tuple[str, str], user: str
) -> None:
    url = f"{cors_api.url}/api/{user}/tasks"
    with chromium() as page:
        page.goto(origins[0])
        assert page.evaluate(NOT_ALLOWED % {"url": json.dumps(url)}) == "TypeError"
        page.wait_for("true")  # reads the events the refusal produced
        errors = list(page.cors_errors)
    assert (url, "HeaderDisallowedByPreflightResponse", "x-not-allowed") in errors, errors


def test_localhost_and_127_0_0_1_are_different_origins(cors_api: ApiServer) -> None:
    """``CORS_ALLOW_ORIGINS`` lists http://localhost:3000: http://127.0.0.1:3000 is not it."""
    for origin, allowed in (("http://localhost:3000", True), ("http://127.0.0.1:3000", False)):
        preflight = httpx.options(
            f"{cors_api.url}/api/u1/tasks",
            headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
        )
        assert (preflight.status_code == 204) is allowed, origin
        assert (preflight.headers.get("Access-Control-Allow-Origin") == origin) is allowed, origin
