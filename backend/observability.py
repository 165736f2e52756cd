"""Request ids, one JSON access-log line per request, and security headers (one ASGI middleware)."""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("tasks.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
_API_HEADERS = [
    # Per-user data: never in a shared cache; a browser may keep it but must revalidate (ETag).
    (b"cache-control", b"private, no-cache"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
# A bearer token sent as a query parameter (RFC 6750 §2.3, the live-updates route) is a credential:
# whatever logs a URL, the value never reaches a log line.
# The name may arrive percent-encoded (``access%5Ftoken``): query parsers decode it to the same name.
_ACCESS_TOKEN = re.compile(r"(access(?:_|%5f)token=)[^&\s\"'\\]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every ``access_token=...`` value replaced by ``REDACTED``."""
    lowered = text.lower()
    if "access_token" not in lowered and "access%5ftoken" not in lowered:
        return text
    return _ACCESS_TOKEN.sub(r"\1REDACTED", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        try:
            line = msgspec.json.encode(entry, enc_hook=str).decode()
        except (msgspec.EncodeError, UnicodeEncodeError):
            # A lone surrogate (e.g. in a client-chosen value) has no UTF-8 form: escape it, keep the line.
            line = json.dumps(entry, default=str)
        return redact(line)


def configure_logging() -> None:
    """JSON lines on stdout for the app's loggers."""
    # A line per request: skip, process-wide, what no formatter here prints, above all the stack
    # walk for the caller's file and line. ``_srcfile`` is private by name but is the documented switch
    # (the logging HOWTO's "Optimization" section; typed in python/typeshed#3840);
    # tests/test_logging_setup.py fails if setting it stops skipping the walk.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    for name in ("tasks", "backend"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False


def request_context(app: ASGIApp) -> ASGIApp:
    """Wrap ``app`` (the whole Litestar ASGI handler)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        given = _header(scope, b"x-request-id")
        request_id = given if given and _REQUEST_ID.match(given) else secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        is_api = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                    *_SECURITY_HEADERS,
                ]
                if is_api:
                    headers.extend(_API_HEADERS)
                if scope.get("scheme") == "https":
                    headers.append(_HSTS)
                message["headers"] = headers
            await send(message)

        try:
            await app(scope, receive, send_with_headers)
        finally:
            state = scope.get("state", {})
            access_log.info(
                "request",
                extra={
                    "fields": {
                        "method": scope.get("method"),
                        # The route template, not the raw path: ids stay out of log aggregation keys.
                        "path": scope.get("path_template") or scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "request_id": request_id,
                        "user_id": state.get("user_id"),
                    }
                },
            )

    return middleware


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
