"""The TypeScript client's live updates (``followEvents``) against a live API: in Node (``example/events.ts``)
and in a real headless Chromium. A token that expires while the stream is open, a server restart with a
token that expired meanwhile (a 401 at reconnect), and a sixth stream (429) each end in an open stream
that delivers every change, without the token ever showing in a URL or on the console."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import chromium
from tests.node_project import QUIET_NODE_ENV, run_bin
from tests.support import ApiServer, Tokens, api_server, free_port
from tests.test_client import client_project

WAIT = 60.0  # seconds for anything the server or the client must do; a failure says what never came


def built_client() -> Path:
    """The client with its sources and examples compiled to ``dist/`` (``npm run build``)."""
    project = client_project()
    shutil.rmtree(project / "dist", ignore_errors=True)
    done = run_bin(project, "tsc", "-p", "tsconfig.json", "--noEmit", "false", "--outDir", "dist")
    assert done.returncode == 0, done.stdout + done.stderr
    return project


@dataclass
class TokenServer:
    """Hands out tokens as Better Auth's ``/api/auth/token`` does (``{"token": ...}``); ``mint`` decides
    which, ``handed`` keeps them in order."""

    mint: Callable[[], str]
    handed: list[str] = field(default_factory=list)
    url: str = ""


@contextmanager
def token_server(mint: Callable[[], str], page: bytes = b"", script: bytes = b"") -> Iterator[TokenServer]:
    """``/token`` (CORS-open for the browser test), and for the browser a page and the client's module."""
    server = TokenServer(mint)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/token":
                token = server.mint()
                server.handed.append(token)
                self._send(json.dumps({"token": token}).encode(), "application/json")
            elif self.path == "/events.js":
                self._send(script, "text/javascript")
            else:
                self._send(page, "text/html")

        def _send(self, body: bytes, media_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", media_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class Follower:
    """``node dist/example/events.js``: every JSON line it prints, as it prints it."""

    process: subprocess.Popen[str]
    lines: list[dict[str, Any]] = field(default_factory=list)
    _queue: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                self._queue.put(json.loads(line))
        self._queue.put(None)

    def until(self, what: str, matches: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The next line that ``matches`` (lines before it are kept in ``lines``)."""
        deadline = time.monotonic() + WAIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if matches(line):
                return line
        raise AssertionError(f"never saw {what}; lines: {self.lines}")

    def until_open(self) -> dict[str, Any]:
        return self.until("the stream open", lambda line: line.get("status", {}).get("state") == "open")

    def until_event(self, kind: str, task_id: str | None = None) -> dict[str, Any]:
        def matches(line: dict[str, Any]) -> bool:
            event = line.get("event", {})
            return bool(
                event.get("type") == kind and (task_id is None or event.get("task", {}).get("id") == task_id)
            )

        return self.until(f"{kind} {task_id or ''}", matches)


@contextmanager
def follower(project: Path, api_url: str, user: str, tokens_url: str) -> Iterator[Follower]:
    node = shutil.which("node")
    assert node, "node is needed (apt-get install nodejs)"
    process = subprocess.Popen(  # noqa: S603 - our own example
        [node, str(project / "dist" / "example" / "events.js")],
        cwd=project,
        env={
            **os.environ,
            **QUIET_NODE_ENV,
            "TASKS_API_URL": api_url,
            "TASKS_USER": user,
            "TASKS_TOKEN_URL": tokens_url,
        },
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield Follower(process)
    finally:
        assert process.stdin is not None
        process.stdin.close()  # the example closes its stream and exits
        try:
            process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def create(api_url: str, tokens: Tokens, user: str, title: str) -> str:
    response = httpx.post(f"{api_url}/api/{user}/tasks", headers=tokens.headers(user), json={"title": title})
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    return task_id


@pytest.fixture(scope="module")
def project() -> Path:
    return built_client()


@pytest.fixture(scope="module")
def strict_api(api_env: dict[str, str]) -> Iterator[ApiServer]:
    """No leeway: a token is refused the second its ``exp`` passes."""
    with api_server({**api_env, "JWT_LEEWAY_SECONDS": "0"}) as server:
        yield server


def short_lived(tokens: Tokens, user: str, seconds: int) -> Callable[[], str]:
    def mint() -> str:
        now = int(time.time())
        return tokens.jwks(user, iat=now, exp=now + seconds)

    return mint


def test_a_token_that_expires_is_refreshed_and_the_stream_goes_on(
    project: Path, strict_api: ApiServer, tokens: Tokens, user: str
) -> None:
    with (
        token_server(short_lived(tokens, user, 3)) as auth,
        follower(project, strict_api.url, user, f"{auth.url}/token") as node,
    ):
        node.until_open()
        first = create(strict_api.url, tokens, user, "Before expiry")
        node.until_event("task.created", first)
        node.until_event("token-expired")
        node.until("a fresh token", lambda line: line.get("token") == "refresh")
        node.until_open()
        second = create(strict_api.url, tokens, user, "After expiry")
        node.until_event("task.created", second)
    assert len(auth.handed) >= 2
    assert not any("resync" in line for line in node.lines), node.lines
    assert not any(token in json.dumps(node.lines) for token in auth.handed)


def test_a_restart_with_an_expired_token_ends_in_a_fresh_token_and_the_missed_events(
    project: Path, api: ApiServer, api_env: dict[str, str], tokens: Tokens, user: str
) -> None:
    """While the server is down the token expires: the reconnect gets a 401, takes a fresh token, and
    ``Last-Event-ID`` brings the change made meanwhile (through another instance)."""
    lifetime = 8
    minted = short_lived(tokens, user, lifetime)
    expires: list[int] = []

    def mint() -> str:
        expires.append(int(time.time()) + lifetime)
        return minted()

    port = free_port()
    env = {**api_env, "JWT_LEEWAY_SECONDS": "0"}
    server = ApiServer(env, port=port).start()
    try:
        with token_server(mint) as auth, follower(project, server.url, user, f"{auth.url}/token") as node:
            node.until_open()
            first = create(server.url, tokens, user, "Before the restart")
            node.until_event("task.created", first)
            server.stop()
            node.until(
                "a reconnect attempt failing", lambda line: line.get("status", {}).get("reason") == "network"
            )
            missed = create(api.url, tokens, user, "While it was down")  # another instance, same database
            while time.time() <= expires[0]:  # the token must have expired before the server is back
                time.sleep(0.2)
            server = ApiServer(env, port=port).start()
            node.until("a 401 at reconnect", lambda line: line.get("token") == "refresh")
            node.until_open()
            node.until_event("task.created", missed)
            after = create(server.url, tokens, user, "After the restart")
            node.until_event("task.created", after)
    finally:
        server.stop()
    assert not any("resync" in line for line in node.lines), node.lines
    assert not any(t in json.dumps(node.lines) for t in auth.handed)


def test_a_sixth_stream_waits_for_a_free_place(
    project: Path, strict_api: ApiServer, tokens: Tokens, user: str
) -> None:
    url = f"{strict_api.url}/api/{user}/events"
    with contextlib.ExitStack() as streams, httpx.Client(timeout=WAIT) as http:
        held = [
            streams.enter_context(http.stream("GET", url, headers=tokens.headers(user))) for _ in range(5)
        ]
        assert [r.status_code for r in held] == [200] * 5
        with (
            token_server(short_lived(tokens, user, 900)) as auth,
            follower(project, strict_api.url, user, f"{auth.url}/token") as node,
        ):
            waiting = node.until("a 429", lambda line: line.get("status", {}).get("status") == 429)
            assert waiting["status"]["reason"] == "too-many"
            held[0].close()
            node.until_open()
            task_id = create(strict_api.url, tokens, user, "Sixth stream")
            node.until_event("task.created", task_id)


PAGE = b"""<!doctype html><title>frontend</title>
<script type="module">
import { followEvents } from "/events.js";
window.seen = [];
let cached = null;
window.stream = followEvents({
  baseUrl: new URLSearchParams(location.search).get("api"),
  userId: new URLSearchParams(location.search).get("user"),
  token: async ({ refresh }) => {
    if (cached === null || refresh) {
      window.seen.push({ token: refresh ? "refresh" : "first" });
      cached = (await (await fetch("/token")).json()).token;
    }
    return cached;
  },
  onEvent: (event, id) => window.seen.push({ event, id }),
  resync: () => window.seen.push({ resync: true }),
  onStatus: (status) => window.seen.push({ status }),
});
</script>
"""


def test_in_chromium_an_expired_token_and_a_401_are_refreshed_and_never_shown(
    project: Path, api_env: dict[str, str], tokens: Tokens, user: str
) -> None:
    script = (project / "dist" / "src" / "events.js").read_bytes()
    handed: list[int] = []

    def mint() -> str:
        # First an expired token (a 401 at connect), then tokens that expire 3 s after they are handed.
        handed.append(1)
        now = int(time.time())
        if len(handed) == 1:
            return tokens.jwks(user, iat=now - 120, exp=now - 60)
        return tokens.jwks(user, iat=now, exp=now + 3)

    with token_server(mint, PAGE, script) as page_server:
        env = {**api_env, "JWT_LEEWAY_SECONDS": "0", "CORS_ALLOW_ORIGINS": page_server.url}
        with api_server(env) as server, chromium() as page:
            page.goto(f"{page_server.url}/?api={server.url}&user={user}")
            seen = "JSON.stringify(window.seen || [])"
            page.wait_for("(window.seen || []).some(l => l.status && l.status.state === 'open')")
            first = create(server.url, tokens, user, "In the browser")
            page.wait_for(
                f"window.seen.some(l => l.event && l.event.task && l.event.task.id === {json.dumps(first)})"
            )
            page.wait_for("window.seen.some(l => l.event && l.event.type === 'token-expired')")
            page.wait_for(
                "window.seen.filter(l => l.status && l.status.state === 'open').length >= 2"
                " && window.seen.at(-1).status && window.seen.at(-1).status.state === 'open'"
            )
            second = create(server.url, tokens, user, "After a fresh token")
            page.wait_for(
                f"window.seen.some(l => l.event && l.event.task && l.event.task.id === {json.dumps(second)})"
            )
            lines: list[dict[str, Any]] = json.loads(page.evaluate(seen))
            events_url = f"{server.url}/api/{user}/events"
            statuses = [s for m, url, s in page.responses if m == "GET" and url == events_url]
            console, requests = list(page.console), list(page.requests)
            assert page.foreign_requests() == []
    tokens_asked = [line["token"] for line in lines if "token" in line]
    assert tokens_asked[:2] == ["first", "refresh"], lines  # the 401 at connect asked for a fresh one
    assert "refresh" in tokens_asked[2:], lines  # and so did token-expired
    assert statuses[:2] == [401, 200], statuses
    assert not any("access_token" in url for url in requests), requests
    assert not any("eyJ" in line for line in console), console


def test_a_rate_limited_reconnect_waits_as_retry_after_says(
    project: Path, api_env: dict[str, str], tokens: Tokens, user: str
) -> None:
    with api_server({**api_env, "RATE_LIMIT": "3/day"}) as server:
        for _ in range(3):
            assert (
                httpx.get(f"{server.url}/api/{user}/tasks", headers=tokens.headers(user)).status_code == 200
            )
        limited = httpx.get(f"{server.url}/api/{user}/tasks", headers=tokens.headers(user))
        assert limited.status_code == 429
        retry_after = int(limited.headers["Retry-After"])
        with (
            token_server(short_lived(tokens, user, 900)) as auth,
            follower(project, server.url, user, f"{auth.url}/token") as node,
        ):
            waiting = node.until("a 429", lambda line: line.get("status", {}).get("status") == 429)
    # The stream's own backoff would start at 1 s; the server asked for hours.
    assert retry_after > 60
    assert retry_after * 1000 - 5000 <= waiting["status"]["ms"] <= retry_after * 1000
