"""``HEAD`` on every ``GET`` route (RFC 9110 9.3.2): the ``GET`` answer's status and headers, no body."""

from __future__ import annotations

from typing import cast

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPDisconnectEvent, Message, Receive, ReceiveMessage, Scope, Send

_DISCONNECT: HTTPDisconnectEvent = {"type": "http.disconnect"}


def head_as_get(app: ASGIApp) -> ASGIApp:
    """Wrap ``app``: a ``HEAD`` request is routed as ``GET``, and the body of its answer is dropped.

    Once the status and headers are out the answer ends, and the app is told the client left (a
    streaming route, e.g. live updates, would otherwise keep producing a body nobody reads)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope.get("method") != "HEAD":
            await app(scope, receive, send)
            return
        done = False

        async def receive_until_done() -> ReceiveMessage:
            return _DISCONNECT if done else await receive()

        async def send_head(message: Message) -> None:
            nonlocal done
            if done:
                return
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body":
                done = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        as_get = cast("Scope", {**scope, "method": "GET"})
        await app(as_get, receive_until_done, send_head)

    return middleware
