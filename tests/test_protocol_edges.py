"""HTTP edges a careless or hostile client meets, through the real server: ``HEAD`` on every ``GET``
route, a 413 that says the connection closes, a malformed chunked body, and what a failing readiness
check logs."""

from __future__ import annotations

import json
import socket
import uuid

import httpx

from tests.support import ApiServer, Tokens, api_server, free_port


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _read_until_closed(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def test_head_answers_like_get_without_a_body(api: ApiServer, tokens: Tokens, user: str) -> None:
    headers = tokens.headers(user)
    with httpx.Client(base_url=api.url, headers=headers, timeout=30) as c:
        task = c.post(f"/api/{user}/tasks", json={"title": "headed"}).json()
        paths = [
            "/health",
            "/health/ready",
            f"/api/{user}/tasks?limit=1",
            f"/api/{user}/tasks/{task['id']}",
            f"/api/{user}/tasks/stats",
            f"/api/{user}/tasks/{uuid.uuid4()}",  # a 404 is a 404 for HEAD too
        ]
        for path in paths:
            got, head = c.get(path), c.head(path)
            assert head.status_code == got.status_code, (path, head.status_code, head.text)
            assert head.content == b"", path
            for name in ("content-type", "etag", "x-total-count", "link"):
                assert head.headers.get(name) == got.headers.get(name), (path, name)
        # The live-updates stream answers HEAD with its headers and ends at once.
        events = c.head(f"/api/{user}/events")
        assert events.status_code == 200
        assert events.headers["content-type"].startswith("text/event-stream")
        assert events.content == b""
        # Only GET routes: HEAD where there is no GET is still a 405.
        assert c.head(f"/api/{user}/tasks/complete-all").status_code == 405


def test_413_says_the_connection_closes_and_the_server_closes_it(
    api: ApiServer, tokens: Tokens, user: str
) -> None:
    body = json.dumps({"title": "x" * 100_000}).encode()
    head = (
        f"POST /api/{user}/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {tokens.jwks(user)}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", _port(api.url)), timeout=30) as s:
        s.sendall(head + body[:1000])
        answer = _read_until_closed(s)  # returns only once the server closes
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 413"), answer[:300]
    header_block = rest.partition(b"\r\n\r\n")[0].decode().lower().split("\r\n")
    assert "connection: close" in header_block, header_block


def test_a_malformed_chunk_size_is_a_400_that_does_not_blame_a_disconnect(
    api: ApiServer, tokens: Tokens, user: str
) -> None:
    head = (
        f"POST /api/{user}/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {tokens.jwks(user)}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", _port(api.url)), timeout=30) as s:
        s.sendall(head + b'5\r\n{"tit\r\nzz\r\nle": "x"}\r\n0\r\n\r\n')
        answer = _read_until_closed(s)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b"disconnect" not in answer.lower(), answer
    with httpx.Client(base_url=api.url, headers=tokens.headers(user), timeout=30) as c:
        assert c.get(f"/api/{user}/tasks").json() == []  # nothing was created


def test_a_failing_readiness_check_logs_one_line_with_its_cause(api_env: dict[str, str]) -> None:
    nowhere = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/tasks"
    env = {**api_env, "DATABASE_URL": nowhere, "DATABASE_LISTEN_URL": nowhere, "DATABASE_POOL_TIMEOUT": "1"}
    with api_server(env) as server:
        for _ in range(2):
            assert httpx.get(f"{server.url}/health/ready", timeout=30).status_code == 503
        log = server.output()
    lines = [line for line in log.splitlines() if "readiness" in line]
    assert len(lines) == 2, log[-3000:]
    for line in lines:
        entry = json.loads(line)
        assert entry["level"] == "warning"
        assert "ConnectionRefusedError" in entry["msg"] or "Connect call failed" in entry["msg"], entry
        assert "exc" not in entry, entry  # no traceback
    assert "Traceback" not in log, log[-3000:]
