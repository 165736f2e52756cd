"""CORS for browser frontends on other origins (``CORS_ALLOW_ORIGINS``).

Litestar's CORS middleware answers preflights itself; a refused one (origin, method or header not
allowed) is a ``text/plain`` 400 "Disallowed CORS ..." (``litestar/middleware/_internal/cors.py``).
``problem_preflights`` turns that answer into a problem document like every other error when the origin
is not allowed. When the origin is allowed but a header or method is not, it answers as for any allowed
preflight (204, ``Access-Control-Allow-Origin`` and the allow lists, which lack what was asked for): the
browser then refuses the request itself and names the header or method. A 400, or an answer without
``Access-Control-Allow-Origin``, would have Chrome blame the status or a missing
``Access-Control-Allow-Origin`` and send the developer after the wrong cause.
"""

from __future__ import annotations

from http import HTTPStatus

import msgspec
from litestar.config.cors import CORSConfig
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

from backend.errors import PROBLEM_JSON
from backend.settings import Settings

# What browser code sends: the token, JSON, conditional requests, retries, and the ids that
# Sentry's and OpenTelemetry's browser SDKs add to every fetch.
ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "X-Request-ID",
    "Last-Event-ID",  # a live-updates client reconnecting with fetch (EventSource needs no preflight)
    "traceparent",
    "tracestate",
    "baggage",
    "sentry-trace",
)
# A browser hides every response header it is not told about from JavaScript.
EXPOSE_HEADERS = (
    "ETag",
    "Location",
    "Link",
    "X-Total-Count",
    "Retry-After",
    "X-Request-ID",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
    "WWW-Authenticate",
    "Idempotent-Replayed",
)


def cors_config(settings: Settings) -> CORSConfig | None:
    if not settings.cors_allow_origins:
        return None
    extra = [h for h in settings.cors_allow_headers if h.lower() not in {a.lower() for a in ALLOW_HEADERS}]
    return CORSConfig(
        allow_origins=list(settings.cors_allow_origins),
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=[*ALLOW_HEADERS, *extra],
        expose_headers=list(EXPOSE_HEADERS),
        max_age=600,
    )


def problem_preflights(app: ASGIApp) -> ASGIApp:
    """Wrap the Litestar app so that a refused CORS preflight answers ``application/problem+json``."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != "OPTIONS" or not _has(scope, b"origin"):
            await app(scope, receive, send)
            return
        refused: HTTPResponseStartEvent | None = None

        async def rewrite(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 400 and _is_text(message):
                refused = message  # held until its body says why
                return
            if refused is not None and message["type"] == "http.response.body":
                reason = bytes(message.get("body", b"")).decode("utf-8", "replace")
                allowed = _allowed_origin_headers(scope, reason)
                if allowed:
                    await _send_allow_lists(send, refused, allowed)
                else:
                    await _send_problem(send, refused, reason)
                refused = None
                return
            await send(message)

        await app(scope, receive, rewrite)

    return middleware


def _allowed_origin_headers(scope: Scope, reason: str) -> list[tuple[bytes, bytes]]:
    """For an allowed origin asking for a header or method that is not: what lets the browser say so."""
    config: CORSConfig | None = getattr(scope.get("litestar_app"), "cors_config", None)
    origin = next((v for k, v in scope["headers"] if k == b"origin"), b"")
    if config is None or "Origin" in reason or not config.is_origin_allowed(origin.decode("latin-1")):
        return []
    return [
        (b"access-control-allow-origin", origin),
        (b"vary", b"Origin"),
        (b"access-control-allow-headers", ", ".join(sorted(set(config.allow_headers))).encode()),
        (b"access-control-allow-methods", ", ".join(sorted(set(config.allow_methods))).encode()),
    ]


async def _send_allow_lists(
    send: Send, start: HTTPResponseStartEvent, allowed: list[tuple[bytes, bytes]]
) -> None:
    dropped = {b"content-type", b"content-length"}
    kept = [(k, v) for k, v in start["headers"] if k.lower() not in dropped]
    await send({"type": "http.response.start", "status": 204, "headers": [*kept, *allowed]})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_problem(send: Send, start: HTTPResponseStartEvent, reason: str) -> None:
    body = msgspec.json.encode(
        {
            "type": "about:blank",
            "title": HTTPStatus.BAD_REQUEST.phrase,
            "status": 400,
            "detail": f"{reason} for this request",
        }
    )
    dropped = {b"content-type", b"content-length"}
    kept = [(k, v) for k, v in start["headers"] if k.lower() not in dropped]
    headers = [*kept, (b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": start["status"], "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _has(scope: Scope, name: bytes) -> bool:
    return any(key == name for key, _ in scope["headers"])


def _is_text(message: HTTPResponseStartEvent) -> bool:
    return any(k.lower() == b"content-type" and v.startswith(b"text/plain") for k, v in message["headers"])
