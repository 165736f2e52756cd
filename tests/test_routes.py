"""``backend.http.routes``: guards get the registered handler itself, every layer's guards still run, and
defining a route warns about nothing (Litestar 2 deprecates subclassing its ``get``/``post``... classes).

The control test pins what the override is for: the day Litestar 2's own handler stops copying itself for
its guards (as Litestar 3 does), it fails, and ``SharedHandlerRoute`` can go.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any

import litestar
import pytest
from litestar import Litestar, Router
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.testing import TestClient

from backend.http import routes


def _app(decorator: Callable[..., HTTPRouteHandler]) -> tuple[Litestar, list[tuple[str, BaseRouteHandler]]]:
    seen: list[tuple[str, BaseRouteHandler]] = []

    def record(layer: str) -> Any:
        def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
            seen.append((layer, handler))
            if connection.headers.get("x-deny") == layer:
                raise NotAuthorizedException(f"{layer} said no")

        return guard

    @decorator("/thing", name="thing", guards=[record("handler")], sync_to_thread=False)
    def thing() -> dict[str, str]:
        return {"ok": "yes"}

    router = Router("/api", route_handlers=[thing], guards=[record("router")])
    return Litestar([router], guards=[record("app")]), seen


def _registered(app: Litestar) -> BaseRouteHandler:
    index = app.get_handler_index_by_name("thing")
    assert index is not None
    return index["handler"]


def test_our_guards_get_the_registered_handler_itself_and_every_layer_runs() -> None:
    app, seen = _app(routes.get)
    with TestClient(app) as client:
        assert client.get("/api/thing").json() == {"ok": "yes"}
        assert [layer for layer, _ in seen] == ["app", "router", "handler"]
        assert all(handler is _registered(app) for _, handler in seen)
        for layer in ("app", "router", "handler"):
            assert client.get("/api/thing", headers={"x-deny": layer}).status_code == 401


def test_control_litestar_2_hands_its_guards_a_copy() -> None:
    """Fails once Litestar's own handlers stop copying: then ``SharedHandlerRoute`` is no longer needed."""
    app, seen = _app(litestar.get)
    with TestClient(app) as client:
        assert client.get("/api/thing").status_code == 200
    assert seen
    assert all(handler is not _registered(app) for _, handler in seen)


def test_importing_the_decorators_warns_about_nothing() -> None:
    """Subclassing Litestar 2's ``get``/``post``... classes warns at import (deprecated, gone in 3.0)."""
    code = "import backend.http.routes"
    result = subprocess.run(  # noqa: S603 - this interpreter
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("decorator", "method", "status"),
    [
        (routes.get, "GET", 200),
        (routes.post, "POST", 201),
        (routes.put, "PUT", 200),
        (routes.patch, "PATCH", 200),
        (routes.delete, "DELETE", 204),
    ],
)
def test_each_decorator_is_its_method_with_litestars_default_status_and_no_warning(
    decorator: Callable[..., HTTPRouteHandler], method: str, status: int
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        @decorator("/x", sync_to_thread=False)
        def handler() -> None:
            return None

        app = Litestar([handler])
    assert isinstance(handler, HTTPRouteHandler)
    assert handler.http_methods == {method}
    with TestClient(app) as client:
        assert client.request(method, "/x").status_code == status
