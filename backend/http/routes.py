"""Route decorators ``get``/``post``/``put``/``patch``/``delete``: Litestar's, minus a handler copy per guard.

Litestar 2 gives every guard ``copy(route_handler)`` (``BaseRouteHandler.authorize_connection``), so a
guard cannot change the shared handler. That copy was 8 % of a create request's CPU (py-spy:
bench/results/2026-11-21_233842_quick_profile_create.txt). Our guard (``backend.auth.owner_guard``) only
reads the handler's ``opt`` and never changes it, so it gets the handler itself. Litestar 3 does the same:
its guards get ``self`` (litestar-org/litestar#3900, commit aefa474d1, "static handler configuration").
tests/test_routes.py pins both sides: our guards see the registered handler, Litestar 2's own see a copy.

The decorators are functions building one ``HTTPRouteHandler`` subclass: subclassing Litestar's
``get``/``post``... classes is deprecated (they become functions in Litestar 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.types import Method


class SharedHandlerRoute(HTTPRouteHandler):
    """``HTTPRouteHandler`` whose guards receive the handler itself, not a copy."""

    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        for guard in self.resolve_guards():
            await guard(connection, self)  # type: ignore[misc]  # resolve_guards made them async


Path = str | Sequence[str] | None


def get(path: Path = None, **options: Any) -> SharedHandlerRoute:
    """Like ``litestar.get``."""
    return SharedHandlerRoute(path, http_method=HttpMethod.GET, **options)


def post(path: Path = None, **options: Any) -> SharedHandlerRoute:
    """Like ``litestar.post`` (201 by default)."""
    return SharedHandlerRoute(path, http_method=HttpMethod.POST, **options)


def put(path: Path = None, **options: Any) -> SharedHandlerRoute:
    """Like ``litestar.put``."""
    return SharedHandlerRoute(path, http_method=HttpMethod.PUT, **options)


def patch(path: Path = None, **options: Any) -> SharedHandlerRoute:
    """Like ``litestar.patch``."""
    return SharedHandlerRoute(path, http_method=HttpMethod.PATCH, **options)


def delete(path: Path = None, **options: Any) -> SharedHandlerRoute:
    """Like ``litestar.delete`` (204 by default)."""
    return SharedHandlerRoute(path, http_method=HttpMethod.DELETE, **options)


def route(path: Path = None, *, http_method: Sequence[Method], **options: Any) -> SharedHandlerRoute:
    """Like ``litestar.route``: one handler serving several methods."""
    return SharedHandlerRoute(path, http_method=http_method, **options)
