"""Litestar's route decorators, minus a copy of the route handler per guard call.

Litestar 2 passes every guard ``copy(route_handler)`` (``BaseRouteHandler.authorize_connection``), so a
guard cannot change the shared handler. That copy was 8 % of a create request's CPU (py-spy:
bench/results/2026-11-21_233842_quick_profile_create.txt). Our guard never reads or changes the
handler, so it gets the handler itself.
"""

from __future__ import annotations

from typing import Any

import litestar
from litestar.connection import ASGIConnection


class _GuardsSeeTheHandler:
    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        for guard in self.resolve_guards():  # type: ignore[attr-defined]
            await guard(connection, self)


class get(_GuardsSeeTheHandler, litestar.get):
    pass


class post(_GuardsSeeTheHandler, litestar.post):
    pass


class put(_GuardsSeeTheHandler, litestar.put):
    pass


class patch(_GuardsSeeTheHandler, litestar.patch):
    pass


class delete(_GuardsSeeTheHandler, litestar.delete):
    pass


class route(_GuardsSeeTheHandler, litestar.route):
    """One handler serving several methods (``http_method=[...]``)."""
