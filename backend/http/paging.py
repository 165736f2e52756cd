"""Paging headers for collections: ``X-Total-Count`` and an RFC 8288 ``Link``."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from urllib.parse import quote, urlencode

from litestar import Request
from litestar.datastructures import ResponseHeader

from backend.http.headers import documented_header


def page_headers(
    request: Request[Any, Any, Any], *, total: int, limit: int, offset: int, keep: Collection[str]
) -> dict[str, str]:
    """``keep``: the query parameters the links carry over (the filters and sort); only the page moves.
    Anything else in the query (a cache-buster, junk) stays out of the header, and a kept parameter goes
    in once (the value the handler read; a repeat is a 400 before it: backend.http.query.strict_query),
    so the header never grows with what a client repeats."""
    query = request.query_params
    kept = urlencode([(k, query[k]) for k in dict.fromkeys(query) if k in keep])
    prefix = f"<{quote(request.url.path)}?{kept}{'&' if kept else ''}limit={limit}&offset="

    def link(rel: str, at: int) -> str:
        return f'{prefix}{at}>; rel="{rel}"'

    last = max(total - 1, 0) // limit * limit
    links = [link("first", 0)]
    if offset > 0:
        links.append(link("prev", max(min(offset - limit, last), 0)))
    if offset + limit < total:
        links.append(link("next", offset + limit))
    links.append(link("last", last))
    return {"X-Total-Count": str(total), "Link": ", ".join(links)}


def paging_headers(noun: str) -> list[ResponseHeader]:
    """OpenAPI entries for the headers ``page_headers`` sets."""
    return [
        documented_header("X-Total-Count", f"{noun} matching the whole filter (an integer).", 120),
        documented_header(
            "Link",
            "RFC 8288 links `first`, `prev`, `next`, `last` (where they exist), keeping the filters.",
            '</api/u1/tasks?sort=title&limit=50&offset=50>; rel="next"',
        ),
    ]
