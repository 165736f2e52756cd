"""``WrappedLitestar``: a Litestar app whose every HTTP request runs inside ASGI wrappers of ours."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Litestar
from litestar.types import ASGIApp


class WrappedLitestar(Litestar):
    """``Litestar(**options)``, with ``around(app)`` outside everything it does for a request.

    Litestar 2's ``middleware=`` runs per route, after routing: a 404 for an unknown path, a 405 and a CORS
    preflight never pass through it. ``around`` sees every request and response, the lifespan excepted.
    The object stays a ``Litestar`` (the CLI and its plugins need one); only ``__call__`` is ours.
    """

    def __init__(self, around: Callable[[ASGIApp], ASGIApp], **options: Any) -> None:
        super().__init__(**options)
        self._around = around(super().__call__)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await super().__call__(scope, receive, send)
            return
        await self._around(scope, receive, send)
