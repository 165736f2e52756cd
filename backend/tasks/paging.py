"""Paging headers for the task list: ``X-Total-Count`` and an RFC 8288 ``Link``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from litestar import Request


def page_headers(request: Request[Any, Any, Any], *, total: int, limit: int, offset: int) -> dict[str, str]:
    # Keep the caller's filters; only the page moves.
    kept = urlencode([(k, v) for k, v in request.query_params.multi_items() if k not in ("limit", "offset")])
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
