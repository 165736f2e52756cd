"""Response headers as OpenAPI documents them."""

from __future__ import annotations

from urllib.parse import quote

from litestar.datastructures import ResponseHeader


def documented_header(name: str, description: str, example: str | int) -> ResponseHeader:
    """A response header for OpenAPI only: the handler sets the value; the example's type is the
    documented one (Litestar derives the header schema from ``type(value)``)."""
    return ResponseHeader(
        name=name,
        description=description,
        value=example,  # type: ignore[arg-type]
        documentation_only=True,
    )


def location(*segments: object) -> str:
    """An absolute path from ``segments``, each percent-encoded whole (``/`` too), so no value can add a
    segment or climb one: a "." or ".." segment is encoded as well (``%2E``), since clients resolve
    dot-segments before sending (RFC 3986 5.2.4)."""
    return "".join("/" + _segment(str(s)) for s in segments)


def _segment(value: str) -> str:
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if value in {".", ".."} else encoded
