"""The serving event loop (backend/eventloop.py): bursts accepted in small batches, no Nagle delays."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from backend.eventloop import ACCEPT_BATCH, ServingLoop


@contextmanager
def _listening_like_uvicorn_workers() -> Iterator[socket.socket]:
    # uvicorn --workers N binds the socket itself this way: protocol number 0, not IPPROTO_TCP.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    assert sock.proto == 0
    with sock:
        yield sock


def _nodelay_of_accepted(loop: asyncio.AbstractEventLoop) -> int:
    async def main() -> int:
        with _listening_like_uvicorn_workers() as listener:
            accepted: asyncio.Future[asyncio.BaseTransport] = loop.create_future()

            class Protocol(asyncio.Protocol):
                def connection_made(self, transport: asyncio.BaseTransport) -> None:
                    accepted.set_result(transport)

            server = await loop.create_server(Protocol, sock=listener)
            _, writer = await asyncio.open_connection(*listener.getsockname())
            transport = await asyncio.wait_for(accepted, 5)
            value = transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            transport.close()
            writer.close()
            server.close()
            return int(value)

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def test_connections_accepted_from_a_socket_bound_like_uvicorns_get_tcp_nodelay() -> None:
    assert _nodelay_of_accepted(ServingLoop()) != 0


def test_the_stock_loop_leaves_them_with_nagle() -> None:
    """The control for the test above: asyncio alone skips TCP_NODELAY on such a socket's connections."""
    assert _nodelay_of_accepted(asyncio.SelectorEventLoop()) == 0


def _accepted_per_turn(loop: asyncio.AbstractEventLoop, clients: int) -> Counter[int]:
    """Connect ``clients`` at once, then count how many connections the loop takes in each turn."""
    turn = 0
    per_turn: Counter[int] = Counter()
    all_in = asyncio.Event()

    def tick() -> None:
        nonlocal turn
        turn += 1
        loop.call_soon(tick)  # runs once per loop turn

    async def main() -> None:
        with _listening_like_uvicorn_workers() as listener:

            class Protocol(asyncio.Protocol):
                def connection_made(self, transport: asyncio.BaseTransport) -> None:
                    per_turn[turn] += 1
                    transport.close()
                    if per_turn.total() == clients:
                        all_in.set()

            server = await loop.create_server(Protocol, sock=listener, backlog=2048, start_serving=False)
            # The whole burst is queued in the kernel before the loop starts accepting.
            sockets = [socket.create_connection(listener.getsockname()) for _ in range(clients)]
            try:
                loop.call_soon(tick)
                await server.start_serving()
                await asyncio.wait_for(all_in.wait(), 10)
            finally:
                for s in sockets:
                    s.close()
                server.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return per_turn


def test_a_burst_of_new_connections_is_all_accepted_a_batch_per_turn() -> None:
    per_turn = _accepted_per_turn(ServingLoop(), 200)
    assert per_turn.total() == 200
    assert max(per_turn.values()) <= ACCEPT_BATCH
    # ...and promptly: a batch every turn or two, not one connection per turn as uvloop does.
    assert len(per_turn) <= 2 * (200 // ACCEPT_BATCH + 1)


def test_the_stock_loop_takes_a_burst_at_once() -> None:
    """The control: asyncio alone accepts a burst in one turn (the first of several workers takes it)."""
    assert max(_accepted_per_turn(asyncio.SelectorEventLoop(), 200).values()) > ACCEPT_BATCH
