"""Response headers as OpenAPI documents them."""

from __future__ import annotations

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
