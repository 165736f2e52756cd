"""CORS for browser frontends on other origins (``CORS_ALLOW_ORIGINS``)."""

from __future__ import annotations

from litestar.config.cors import CORSConfig

from backend.settings import Settings


def cors_config(settings: Settings) -> CORSConfig | None:
    if not settings.cors_allow_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.cors_allow_origins),
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "If-Match", "If-None-Match"],
        # A browser hides response headers it is not told about; a frontend needs these.
        expose_headers=["ETag", "Location", "Link", "X-Total-Count", "Retry-After"],
        max_age=600,
    )
