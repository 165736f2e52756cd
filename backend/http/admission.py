"""Admission: a worker lets as many API requests in at once as its pool has connections; the rest wait at
the door, before they parse a body or open a session.

Without it, 1,000 connections meant 1,000 requests inside the app at once, nearly all of them waiting
for one of the pool's connections while holding their request, session, service and repository objects
(peak RSS 184-196 MB per worker at 1,000 connections in the bench, against ~115 MB at 64). Waiting here
they hold only their ASGI scope. Granian's ``--backpressure`` would bound the requests in flight too, but
it counts open event streams as requests: streams, which hold no pool connection for their lifetime,
skip this door (their handler's ``opt`` says so).

The wait is first come, first served (``asyncio.Semaphore`` wakes waiters in order and lets no newcomer
pass them) and bounded by the pool's own timeout: past it the request is answered like a pool timeout,
a 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from backend.settings import Settings

# A handler whose ``opt`` has this key set holds no pool connection while it runs (an event stream).
LONG_LIVED = "long_lived"


def admission(settings: Settings) -> list[ASGIMiddleware]:
    """The door for the API's routes, sized to the pool; none when the pool has no limit."""
    if settings.database_max_overflow < 0:
        return []
    capacity = settings.database_pool_size + settings.database_max_overflow
    return [Admission(capacity, settings.database_pool_timeout)]


class Admission(ASGIMiddleware):
    """At most ``capacity`` requests of this worker past this point at once; the next one waits up to
    ``timeout`` seconds for a place, then gets a 503."""

    scopes = (ScopeType.HTTP,)
    exclude_opt_key = LONG_LIVED

    def __init__(self, capacity: int, timeout: float) -> None:
        self.capacity = capacity
        self.timeout = timeout
        self._places = asyncio.Semaphore(capacity)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if not self._places.locked():
            await self._places.acquire()  # free: no timer to arm
        else:
            try:
                await asyncio.wait_for(self._places.acquire(), self.timeout)
            except TimeoutError:
                raise PoolTimeoutError(f"no database connection free within {self.timeout:g} s") from None
        try:
            await next_app(scope, receive, send)
        finally:
            self._places.release()
