"""``/schema``: Scalar's API reference from a copy the app serves itself, so the docs work offline.

The bundle is ``dist/browser/standalone.js`` of the npm package ``@scalar/api-reference`` at the
version in ``backend/static/scalar/VERSION`` (MIT, ``backend/static/scalar/LICENSE``); refresh it with
``backend/static/scalar/update``. Litestar's ``ScalarRenderPlugin`` loads Scalar, its CSS and a favicon
from jsDelivr, and Scalar itself would fetch its fonts and send telemetry: the page below asks for none.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from litestar import Request, Response, Router, get
from litestar.enums import MediaType
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.response import File

from backend.errors import problem

ASSETS = Path(__file__).resolve().parent.parent / "static" / "scalar"
SCALAR_VERSION = (ASSETS / "VERSION").read_text().strip()
SCALAR_JS = f"/assets/scalar-api-reference-{SCALAR_VERSION}.js"
_SCALAR_JS_NAME = "scalar-js"

# Scalar's configuration: nothing that would reach another host.
SCALAR_OPTIONS: dict[str, Any] = {
    "withDefaultFonts": False,
    "telemetry": False,
    "showDeveloperTools": "never",
    "agent": {"disabled": True},
    "mcp": {"disabled": True},
    "persistAuth": False,
}


class OfflineScalar(ScalarRenderPlugin):
    """Scalar from ``/schema/assets/``; the page names no other host."""

    def __init__(self) -> None:
        super().__init__(path="/", options=SCALAR_OPTIONS, favicon="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema["info"]["title"]))
        base = request.app.route_reverse(_SCALAR_JS_NAME)
        config = {**SCALAR_OPTIONS, "url": self.get_openapi_json_route(request)}
        # json.dumps does not escape "</": keep the config from closing the script element.
        config_js = json.dumps(config).replace("</", "<\\/")
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
{self.style}
</head>
<body>
<noscript>The API reference needs JavaScript; the document is at {html.escape(config["url"])}.</noscript>
<div id="app"></div>
<script src="{html.escape(base)}"></script>
<script>Scalar.createApiReference("#app", {config_js});</script>
</body>
</html>
""".encode()

    def receive_router(self, router: Router) -> None:
        # A handler per router: each app built in this process gets its own.
        @get(SCALAR_JS, name=_SCALAR_JS_NAME, sync_to_thread=False, include_in_schema=False)
        def scalar_js() -> File:
            # The version is in the URL, so a browser may keep it for good.
            return File(
                ASSETS / "standalone.js",
                media_type="text/javascript",
                content_disposition_type="inline",
                headers={"Cache-Control": "public, max-age=31536000, immutable"},
            )

        router.register(scalar_js)


def _problem_not_found(response: Response[Any]) -> Response[Any]:
    # Litestar's schema router answers unknown paths with an HTML page (handle_schema_path_not_found
    # in litestar/_openapi/plugin.py); the API answers every error with a problem document.
    if response.status_code == 404 and response.media_type == MediaType.HTML:
        return problem(404, "No such page under /schema")
    return response


def schema_router() -> Router:
    """The router Litestar adds the docs routes to (as its default one, plus problem+json 404s)."""
    return Router(
        "/schema",
        route_handlers=[],
        include_in_schema=False,
        dto=None,
        return_dto=None,
        after_request=_problem_not_found,
    )
