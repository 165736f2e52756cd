"""The OpenAPI document and the interactive docs served at ``/schema``."""

from __future__ import annotations

from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Tasks API",
        version="1.0.0",
        description="Each signed-in user's tasks, and nobody else's. Every `/api/{user_id}/...` call needs "
        "`Authorization: Bearer <JWT>` whose subject is `{user_id}`. Errors are `application/problem+json`.",
        path="/schema",
        render_plugins=[ScalarRenderPlugin()],
        components=Components(
            security_schemes={
                "BearerAuth": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="A Better Auth JWT (from `/api/auth/token`) or an HS256 token signed with "
                    "JWT_SECRET (`litestar tasks token <user_id>`).",
                )
            }
        ),
    )
