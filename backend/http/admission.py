"""Admission: a worker lets as many requests in at once as its pool has connections; the rest wait at the
door, outside Litestar, before they are routed, parse a body or open a session.

Without it, 1,000 connections meant 1,000 requests inside the app at once, nearly all of them waiting
for one of the pool's connections while holding their request, session, service and repository objects
(peak RSS 184-196 MB per worker at 1,000 connections in the bench, against ~115 MB at 64). Waiting at
the door they hold only their ASGI scope and the access log's frame. Granian's ``--backpressure`` bounds
connections instead: the ones past it are not read at all, so keep-alive clients past the bound starve.

A place is given back when the response starts: by then the request's session is closed (Advanced
Alchemy's ``before_send`` runs first) and its connection is back in the pool. So an event stream, which
holds no connection while it streams, holds a place only until its first byte.

The wait is first come, first served (``asyncio.Semaphore`` wakes waiters in order and lets no newcomer
pass them) and bounded by the pool's own timeout. Past it the request goes on without a place, marked,
and the route refuses it like a pool timeout, a 503 with ``Retry-After`` (inside Litestar, so it gets CORS
headers and the problem document like every error), unless its handler's ``opt`` says it holds no
connection (an event stream: refusing it would make ``EventSource`` give up for good).
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from backend.settings import Settings

# A handler whose ``opt`` has this key set holds no pool connection while it runs (an event stream).
LONG_LIVED = "long_lived"
# Only the API's requests: health checks and the docs pages never wait behind them.
API_PREFIX = "/api/"
# In ``scope["state"]``: the request waited its whole turn at the door and came in without a place.
_REFUSED = "tasks.admission_refused"


class Admission:
    """At most ``capacity`` requests of this worker between the door and their response's start; the next
    one waits up to ``timeout`` seconds for a place."""

    def __init__(self, capacity: int, timeout: float) -> None:
        self.capacity = capacity
        self.timeout = timeout
        self._places = asyncio.Semaphore(capacity)
        # For the API's routes: where a request that came in without a place is refused.
        self.refusal = RefuseLate(timeout)

    @classmethod
    def from_settings(cls, settings: Settings) -> Admission | None:
        """The door sized to the pool; none when the pool has no limit."""
        if settings.database_max_overflow < 0:
            return None
        return cls(
            settings.database_pool_size + settings.database_max_overflow, settings.database_pool_timeout
        )

    def door(self, app: ASGIApp) -> ASGIApp:
        """Wrap ``app``: every API request takes a place first, or its turn's time runs out."""

        async def door(scope: Scope, receive: Receive, send: Send) -> None:
            if not _waits(scope):
                await app(scope, receive, send)
                return
            if not await self._enter():
                scope.setdefault("state", {})[_REFUSED] = True
                await app(scope, receive, send)
                return
            held = True

            def leave() -> None:
                nonlocal held
                if held:
                    held = False
                    self._places.release()

            async def send_then_leave(message: Message) -> None:
                if message["type"] == "http.response.start":
                    leave()
                await send(message)

            try:
                await app(scope, receive, send_then_leave)
            finally:
                leave()

        return door

    async def _enter(self) -> bool:
        if not self._places.locked():
            await self._places.acquire()  # free: no timer to arm
            return True
        try:
            async with asyncio.timeout(self.timeout):
                await self._places.acquire()
        except TimeoutError:
            return False
        return True


def _waits(scope: Scope) -> bool:
    # OPTIONS (CORS preflights included) is answered without the database: it never waits.
    return (
        scope["type"] == ScopeType.HTTP
        and scope["method"] != "OPTIONS"
        and scope["path"].startswith(API_PREFIX)
    )


class RefuseLate(ASGIMiddleware):
    """Per route: a request that came in without a place gets the pool timeout's 503, unless its handler
    holds no connection."""

    scopes = (ScopeType.HTTP,)
    exclude_opt_key = LONG_LIVED

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        state: dict[str, Any] = scope.get("state", {})
        if state.get(_REFUSED):
            raise PoolTimeoutError(f"no database connection free within {self.timeout:g} s")
        await next_app(scope, receive, send)
