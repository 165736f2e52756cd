"""A standing fuzz of the parsers: broken JSON, huge numbers, deep nesting, odd Unicode, odd headers,
odd queries and paths, thrown at every route of a live server. No answer may be a 5xx, every error
must be a problem document, and the server log must hold no traceback.

The corpus is fixed plus seeded mutations of valid bodies, so a failure reproduces. Each test names
every case that failed, not just the first. (Why Schemathesis missed these: see tests/test_fuzz.py.)
"""

from __future__ import annotations

import random
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
import pytest

from tests.support import UNHANDLED, ApiServer, Tokens, api_server

SEED = 20261203
MUTATIONS = 40
VALID_BODY = (
    b'{"title": "buy milk", "description": "2 l", "priority": "high", "tags": ["home"], "completed": false}'
)

BROKEN_JSON: dict[str, bytes] = {
    "unclosed arrays": b"[[[[",
    "trailing comma": b'{"title":1,}',
    "truncated object": b'{"x":1,',
    "NaN": b'{"title":"a","x":NaN}',
    "Infinity": b'{"title":"a","priority":Infinity}',
    "1e999": b'{"title":1e999}',
    "-1e999 in a list": b'{"title":"a","tags":[-1e999]}',
    "5,000-digit number": b'{"title":' + b"9" * 5000 + b"}",
    "5,000-digit fraction": b'{"title":"a","completed":0.' + b"1" * 5000 + b"}",
    "nesting 10,000 deep (arrays)": b"[" * 10_000 + b"]" * 10_000,
    "nesting 10,000 deep (objects)": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "nesting 1,000 deep in a field": b'{"title":"a","tags":' + b"[" * 1000 + b"]" * 1000 + b"}",
    "truncated UTF-8": b'{"title":"\xe2\x82',
    "invalid UTF-8": b'{"title":"\xff\xfe"}',
    "UTF-8 encoded surrogate": b'{"title":"\xed\xa0\x80"}',
    "escaped lone surrogate": b'{"title":"\\ud800"}',
    "escaped lone low surrogate": b'{"title":"a\\udc00b"}',
    "white space only": b" \n\t\r ",
    "empty": b"",
    "NUL byte": b"\x00",
    "raw control character in a string": b'{"title":"a\x01b"}',
    "escaped NUL": b'{"title":"\\u0000"}',
    "BOM": b'\xef\xbb\xbf{"title":"a"}',
    "UTF-16": '{"title":"a"}'.encode("utf-16"),
    "garbage after the value": b'{"title":"a"} x',
    "two values": b'{"title":"a"}{"title":"b"}',
    "duplicate keys": b'{"title":"a","title":"b"}',
    "null": b"null",
    "string": b'"title"',
    "number": b"123",
    "array of objects": b'[{"title":"a"}]',
    "single quotes": b"{'title':'a'}",
    "unquoted key": b"{title:1}",
    "comment": b'{"title":"a" /* x */}',
    "huge exponent priority": b'{"title":"a","priority":1e400}',
    "huge string key": b'{"' + b"k" * 30_000 + b'":1}',
    "many keys": b"{" + b",".join(b'"k%d":1' % i for i in range(5000)) + b"}",
    "odd Unicode title": '{"title":"\u202e\u200b\ufeff\U0001f4a9\u0301"}'.encode(),
    "title of combining marks": ('{"title":"a' + "\u0301" * 3000 + '"}').encode(),
    "due_at year 0": b'{"title":"a","due_at":"0000-01-01T00:00:00Z"}',
    "due_at leap second": b'{"title":"a","due_at":"2026-12-31T23:59:60Z"}',
    "due_at huge year": b'{"title":"a","due_at":"99999-01-01T00:00:00Z"}',
    "due_at a number": b'{"title":"a","due_at":1e999}',
}

ODD_HEADERS: dict[str, list[tuple[bytes, bytes]]] = {
    "non-UTF-8 token": [(b"authorization", b"Bearer \xff\xfe\x80")],
    "huge token": [(b"authorization", b"Bearer " + b"A" * 6000)],
    "token of dots": [(b"authorization", b"Bearer ....")],
    "content-type utf-16": [(b"content-type", b"application/json; charset=utf-16")],
    "content-type empty": [(b"content-type", b"")],
    "content-type params only": [(b"content-type", b";;;=")],
    "content-type form": [(b"content-type", b"application/x-www-form-urlencoded")],
    "content-type multipart, no boundary": [(b"content-type", b"multipart/form-data; boundary=")],
    "content-type non-ASCII": [(b"content-type", b"application/json; charset=\xff")],
    "if-match quote": [(b"if-match", b'"')],
    "if-match weak empty": [(b"if-match", b'W/"')],
    "if-match list": [(b"if-match", b'*, "1", ,,W/"2"')],
    "if-match huge number": [(b"if-match", b'"' + b"9" * 5000 + b'"')],
    "if-match negative": [(b"if-match", b'"-1"')],
    "if-match non-ASCII": [(b"if-match", b'"\xc4\xb0"')],
    "if-none-match odd": [(b"if-none-match", b'"1e999", *')],
    "x-request-id non-ASCII": [(b"x-request-id", b"\xff\xfe")],
    "x-request-id long": [(b"x-request-id", b"r" * 5000)],
    "accept xml": [(b"accept", b"application/xml")],
    "accept odd q": [(b"accept", b"*/*;q=abc, application/json;q=1e999")],
    "accept-encoding odd": [(b"accept-encoding", b"gzip;q=NaN, br;q=-1")],
    "idempotency-key odd": [(b"idempotency-key", b"\xc4\xb0key")],
    "origin odd": [(b"origin", b"http://\xff")],
}

ODD_QUERIES = [
    "limit=1e999", "limit=99999999999999999999999999", "limit=NaN", "limit=-0", "offset=-1",
    "offset=1e2", "limit=5&limit=6", "tag=%ED%A0%80", "tag=%FF", "tag=" + "%C4%B0" * 40, "q=%00",
    "q=" + "x" * 5000, "sort=%C4%B0", "sort=", "completed=%E2%80%8B", "completed=null",
    "due_before=9999-12-31T23:59:60Z", "due_after=0000-00-00", "due_before=1e999", "%FF=1",
    "status=%00", "priority=" + "h" * 3000, "&&&==&", "a" * 8000,
]  # fmt: skip

ODD_TASK_IDS = [
    "%00", "%ED%A0%80", "%FF", quote("İ" * 40), "..%2F..%2Fstats", "a" * 3000,
    "0193f3c4-6a1e-7c2b-9a55-2f1e0c8d4b2%00", "{" * 40, "%20", "00000000-0000-0000-0000-000000000000",
]  # fmt: skip


def mutations(rng: random.Random, n: int) -> dict[str, bytes]:
    """Seeded byte-level damage to a valid body: flips, cuts, insertions, duplications."""
    found: dict[str, bytes] = {}
    for i in range(n):
        body = bytearray(VALID_BODY)
        for _ in range(rng.randint(1, 4)):
            op, at = rng.choice("fcid"), rng.randrange(len(body))
            if op == "f":
                body[at] = rng.randrange(256)
            elif op == "c":
                del body[at:]
            elif op == "i":
                body[at:at] = bytes(rng.choice(b'[]{}",:\\0e-.') for _ in range(rng.randint(1, 5)))
            else:
                body[at:at] = body[at : at + rng.randint(1, 20)]
            if not body:
                body = bytearray(b"{")
        found[f"mutation {i}"] = bytes(body)
    return found


@dataclass
class Route:
    method: str
    path: str  # with {task_id} still in it where there is one
    takes_body: bool


ROUTES = [
    Route("GET", "/tasks", False), Route("POST", "/tasks", True), Route("DELETE", "/tasks", False),
    Route("GET", "/tasks/stats", False), Route("POST", "/tasks/complete-all", True),
    Route("GET", "/tasks/{task_id}", False), Route("PUT", "/tasks/{task_id}", True),
    Route("PATCH", "/tasks/{task_id}", True), Route("DELETE", "/tasks/{task_id}", False),
    Route("PATCH", "/tasks/{task_id}/complete", True),
]  # fmt: skip


@dataclass
class Target:
    server: ApiServer
    user: str
    token: str
    client: httpx.Client
    failures: list[str] = field(default_factory=list)
    log_from: int = 0

    def task_id(self) -> str:
        made = self.client.post(f"/api/{self.user}/tasks", json={"title": "fuzz target"}, headers=self.auth())
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, route: Route, task_id: str | None = None) -> str:
        return f"/api/{self.user}" + route.path.replace("{task_id}", task_id or self.task_id())

    def send(self, case: str, method: str, url: str, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        try:
            r = self.client.request(method, url, headers=headers, content=body)
        except httpx.HTTPError as exc:
            self.failures.append(f"{case}: {method} {url[:120]}: no answer ({type(exc).__name__}: {exc})")
            return
        problem = r.headers.get("content-type") == "application/problem+json"
        if r.status_code >= 500:
            self.failures.append(f"{case}: {method} {url[:120]}: {r.status_code} {r.text[:200]}")
        elif r.status_code >= 400 and not (problem and r.json().get("status") == r.status_code):
            self.failures.append(
                f"{case}: {method} {url[:120]}: {r.status_code} not a problem document: "
                f"{r.headers.get('content-type')} {r.text[:200]}"
            )

    def check(self) -> None:
        log = self.server.output()[self.log_from :]
        tracebacks = [line[:300] for line in log.splitlines() if "Traceback" in line or UNHANDLED in line]
        problems = self.failures + [f"server log: {t}" for t in tracebacks[:20]]
        assert not problems, f"{len(self.failures)} bad answer(s):\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def server(api_env: dict[str, str]) -> Iterator[ApiServer]:
    # Each test checks the log lines written during it; this one server may log the body tests' 500s.
    with api_server(api_env, expect_errors=True) as s:
        yield s


@pytest.fixture
def target(server: ApiServer, tokens: Tokens) -> Iterator[Target]:
    user = f"hostile-{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield Target(server, user, tokens.jwks(user), client, log_from=len(server.output()))


def test_broken_json_bodies_on_every_write_route(target: Target) -> None:
    corpus = {**BROKEN_JSON, **mutations(random.Random(SEED), MUTATIONS)}
    headers = [
        (b"content-type", b"application/json"),
        *[(k.lower().encode(), v.encode()) for k, v in target.auth().items()],
    ]
    for route in ROUTES:
        if not route.takes_body:
            continue
        url = target.url(route)  # one real task per route: a successful write may change it
        for case, body in corpus.items():
            target.send(case, route.method, url, headers, body)
    target.check()


def test_odd_headers_on_every_route(target: Target) -> None:
    for route in ROUTES:
        url = target.url(route)
        for case, odd in ODD_HEADERS.items():
            names = {name for name, _ in odd}
            base = [(b"content-type", b"application/json")] if route.takes_body else []
            auth = (
                [] if b"authorization" in names else [(b"authorization", f"Bearer {target.token}".encode())]
            )
            headers = [*(h for h in base if h[0] not in names), *auth, *odd]
            body = b'{"title": "odd headers"}' if route.takes_body else b""
            target.send(case, route.method, url, headers, body)
    target.check()


def test_odd_queries_and_task_ids(target: Target) -> None:
    auth = [(b"authorization", f"Bearer {target.token}".encode())]
    for route in ROUTES:
        url = target.url(route)
        for query in ODD_QUERIES:
            target.send(f"query {query[:40]}", route.method, f"{url}?{query}", auth, b"")
        if "{task_id}" in route.path:
            for task_id in ODD_TASK_IDS:
                target.send(f"task id {task_id[:40]}", route.method, target.url(route, task_id), auth, b"")
    for user in ("%00", "%ED%A0%80", "%FF", "a" * 300, quote("İ" * 200)):
        target.send(f"user id {user[:20]}", "GET", f"/api/{user}/tasks", auth, b"")
    target.check()


def test_a_client_leaving_mid_body_is_no_server_error(target: Target) -> None:
    port = int(target.server.url.rsplit(":", 1)[1])
    for route in ROUTES:
        if not route.takes_body:
            continue
        head = (
            f"{route.method} {target.url(route)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {target.token}\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(head + b'{"title": "and then the client went away')
            time.sleep(0.2)  # the server is now waiting for the rest of the body
    # Still serving, and nothing in the log but the access lines.
    time.sleep(0.5)
    assert target.client.get(f"/api/{target.user}/tasks", headers=target.auth()).status_code == 200
    target.check()
