"""A stream's place (5 per user) is free as soon as its client goes away: a reload of five open tabs
never meets a 429, which ``EventSource`` would take as final. And a reconnect that presents the
``Last-Event-ID`` of a stream the server still thinks open (its client vanished without a word) takes
that stream's place. Through the real server (Granian)."""

from __future__ import annotations

import socket

import httpx

from tests.support import ApiServer, Tokens

STREAMS = 5


def _open(
    api: ApiServer, user: str, token: str, last_event_id: int | None = None
) -> tuple[socket.socket, bytes]:
    """A raw ``GET /events``: the socket and what came first (status line and headers, maybe more)."""
    port = int(api.url.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
    s.sendall(
        f"GET /api/{user}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Accept: text/event-stream\r\n{extra}\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(65536)
        if not chunk:
            break
        head += chunk
    return s, head


def _status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def _read_until(s: socket.socket, seen: bytes, marker: bytes) -> bytes:
    while marker not in seen:
        chunk = s.recv(65536)
        assert chunk, seen
        seen += chunk
    return seen


def test_closed_streams_free_their_places_at_once(api: ApiServer, tokens: Tokens, user: str) -> None:
    token = tokens.jwks(user)
    for _ in range(3):  # a reload of five tabs, three times over
        opened = [_open(api, user, token) for _ in range(STREAMS)]
        assert [_status(head) for _, head in opened] == [200] * STREAMS, [h[:200] for _, h in opened]
        for s, _ in opened:
            s.close()
    s, head = _open(api, user, token)
    assert _status(head) == 200
    s.close()


def test_a_reconnect_with_the_last_event_id_takes_the_place_of_its_dead_stream(
    api: ApiServer, tokens: Tokens, user: str
) -> None:
    token = tokens.jwks(user)
    opened = [_open(api, user, token) for _ in range(STREAMS)]
    try:
        assert [_status(head) for _, head in opened] == [200] * STREAMS
        with httpx.Client(base_url=api.url, headers=tokens.headers(user), timeout=30) as c:
            c.post(f"/api/{user}/tasks", json={"title": "seen by every tab"}).raise_for_status()
        # Every stream got the event; then its client vanished without closing (a phone off the network).
        seen = _read_until(opened[0][0], opened[0][1], b"event: task.created")
        event_id = int(seen.split(b"event: task.created", 1)[0].rsplit(b"id: ", 1)[1].split(b"\n", 1)[0])
        # A sixth stream is still one too many...
        s, head = _open(api, user, token)
        s.close()
        assert _status(head) == 429, head[:300]
        # ...but the tab's reconnect, carrying that Last-Event-ID, takes a dead stream's place.
        s, head = _open(api, user, token, last_event_id=event_id)
        try:
            assert _status(head) == 200, head[:300]
        finally:
            s.close()
    finally:
        for s, _ in opened:
            s.close()
