"""The production server (scripts/serve: `litestar run` on Granian) as a client or an attacker meets it:
bounded request heads, a deadline to send them, and a shutdown that neither cuts requests off nor waits
on live streams."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.serving_app import HOOKS_RAN
from tests.support import ApiServer, api_server

MB = 2**20


def _host_port(server: ApiServer) -> tuple[str, int]:
    return "127.0.0.1", server.port


def worker_rss(server: ApiServer) -> int:
    """Resident memory of every process of the server (supervisor, Granian, its workers)."""
    assert server.process is not None
    root = psutil.Process(server.process.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def _read_reply(sock: socket.socket) -> bytes:
    """What the server sent back before closing (empty when it just closed or reset)."""
    sock.settimeout(10)
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _send_huge_header(address: tuple[str, int], size: int) -> bytes:
    """One request whose single header is ``size`` bytes long; the server's reply (or b"")."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Flood: ")
        chunk = b"a" * 65536
        sent = 0
        with contextlib.suppress(OSError):  # the server may close or reset mid-way: that is the point
            while sent < size:
                sock.sendall(chunk)
                sent += len(chunk)
            sock.sendall(b"\r\n\r\n")
        return _read_reply(sock)


def test_a_header_flood_gets_431_or_a_closed_connection_and_no_memory(api: ApiServer) -> None:
    before = worker_rss(api)
    replies: list[bytes] = []
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                peak = max(peak, worker_rss(api))
            done.wait(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [
        threading.Thread(target=lambda: replies.append(_send_huge_header(_host_port(api), 20 * MB)))
        for _ in range(10)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        done.set()
        sampler.join()
    assert len(replies) == 10
    for reply in replies:
        assert reply == b"" or reply.startswith(b"HTTP/1.1 431"), reply[:200]
    assert peak - before < 10 * MB, f"RSS grew by {(peak - before) / MB:.1f} MB during the flood"
    # ...and the server still serves.
    assert httpx.get(f"{api.url}/health").status_code == 200


def test_a_request_head_past_the_limit_is_a_431(api: ApiServer) -> None:
    # Twice the 32 KiB buffer (SERVER_HEADER_BUFFER_BYTES) or more is always refused.
    too_big = httpx.get(f"{api.url}/health", headers={"X-Big": "a" * 65_536})
    assert too_big.status_code == 431
    assert httpx.get(f"{api.url}/health").status_code == 200


def test_too_many_headers_is_a_431(api: ApiServer) -> None:
    many = [(f"X-H{i}", "1") for i in range(200)]
    assert httpx.get(f"{api.url}/health", headers=many).status_code == 431


def test_a_large_but_reasonable_head_is_served(api: ApiServer) -> None:
    # A browser with a fat cookie jar: 24 KB of headers, under the 32 KiB buffer.
    cookies = "; ".join(f"c{i}={'v' * 230}" for i in range(100))
    assert httpx.get(f"{api.url}/health", headers={"Cookie": cookies}).status_code == 200


def _hung_up(sock: socket.socket) -> bool:
    """Whether the server closed (or reset) the connection, without waiting."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(4096) == b""
    except OSError:
        return True


def test_a_slow_header_sender_is_cut_off(api_env: dict[str, str]) -> None:
    with (
        api_server({**api_env, "SERVER_HEADER_READ_TIMEOUT": "1"}) as server,
        socket.create_connection(_host_port(server), timeout=10) as sock,
    ):
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n")
        # One byte every 0.2 s: the head would take 24 s; the server must hang up long before.
        hung_up = False
        for byte in b"X-Slow: " + b"s" * 110 + b"\r\n\r\n":
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                hung_up = True
            time.sleep(0.2)
            if hung_up or _hung_up(sock):
                hung_up = True
                break
    assert hung_up, "the server read the whole slow head"


@contextlib.contextmanager
def _serving_app(api_env: dict[str, str], **extra: str) -> Iterator[ApiServer]:
    env = {**api_env, "LITESTAR_APP": "tests.serving_app:create_app", **extra}
    server = ApiServer(env).start()
    try:
        yield server
    finally:
        server.stop()


def _stop_while_streaming(server: ApiServer, path: str) -> tuple[bytes, str]:
    """Open a stream, SIGTERM the server once it flows, return what the stream got and the log."""
    assert server.process is not None
    received = b""
    signalled = False
    with (
        httpx.stream("GET", f"{server.url}{path}", timeout=30) as response,
        contextlib.suppress(httpx.HTTPError),  # a stream cut off by a killed worker
    ):
        for chunk in response.iter_bytes():
            received += chunk
            if b"data: 1" in received and not signalled:
                os.killpg(server.process.pid, signal.SIGTERM)
                signalled = True
    server.process.wait(60)
    return received, server.output()


def test_a_live_stream_ends_on_sigterm_and_the_worker_stops_cleanly(api_env: dict[str, str]) -> None:
    with _serving_app(api_env, SERVER_SHUTDOWN_TIMEOUT="60") as server:
        received, log = _stop_while_streaming(server, "/stream")
    assert b"event: bye" in received  # the stream said goodbye instead of being cut off
    assert "Killing worker" not in log
    assert HOOKS_RAN in log


def test_control_a_stream_that_ignores_shutdown_holds_its_worker_until_killed(
    api_env: dict[str, str],
) -> None:
    """Without watching the exit signal, the worker waits SERVER_SHUTDOWN_TIMEOUT, is killed, and its
    shutdown hooks never run: what the test above guards against."""
    with _serving_app(api_env, SERVER_SHUTDOWN_TIMEOUT="2") as server:
        received, log = _stop_while_streaming(server, "/stream-forever")
    assert b"event: bye" not in received
    assert "Killing worker" in log
    assert HOOKS_RAN not in log


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SERVER_HEADER_BUFFER_BYTES", "4096", "SERVER_HEADER_BUFFER_BYTES must be at least 8192"),
        ("SERVER_HEADER_READ_TIMEOUT", "61", "SERVER_HEADER_READ_TIMEOUT must be between"),
        ("SERVER_SHUTDOWN_TIMEOUT", "0", "SERVER_SHUTDOWN_TIMEOUT must be between"),
    ],
)
def test_out_of_range_server_limits_are_one_line_errors(
    api_env: dict[str, str], name: str, value: str, message: str
) -> None:
    with pytest.raises(RuntimeError, match=message):
        ApiServer({**api_env, name: value}).start()
