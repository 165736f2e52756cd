"""HTTP handler for ``/api/{user_id}/sync``: one service call."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import FromPath, QueryParameter

from backend.errors import problem_responses
from backend.http.routes import get
from backend.sync.schemas import SyncPage
from backend.sync.service import SyncService

_KNOWN = {"cursor", "limit"}
_DESCRIPTION = """\
Without `cursor`: everything the caller has now (lists and tasks as `GET` returns them), in pages.
With the `cursor` of an earlier answer: every list and task created or changed after it, in its current
state, and every one deleted after it (`deleted_lists`, `deleted_tasks`, with the version each had).
`more: true`: call again with the new `cursor` now. The cursor is opaque. A change that commits while a
sync is read is never skipped: it comes in this answer or a later one. Deletions are kept at least 30
days; an older cursor, or one that does not parse, is a 410: sync again without a cursor.
After a `resync` live-update event, call this with your last cursor."""


def _strict(request: Request[Any, Any, Any]) -> str | None:
    """The raw cursor (``null`` and empty are cursors that do not parse); 400 on unknown or repeated names."""
    query = request.query_params
    errors = [
        {"field": name, "message": "is not a parameter of this route"} for name in query if name not in _KNOWN
    ]
    cursors = query.getall("cursor", [])
    if len(cursors) > 1:
        errors.append({"field": "cursor", "message": "must be given at most once"})
    if errors:
        raise ValidationException(detail="Invalid query parameters", extra=errors)
    return cursors[0] if cursors else None


class SyncController(Controller):
    path = "/api/{user_id:str}/sync"
    tags = ["sync"]
    security = [{"BearerAuth": []}]

    @get(
        "/", summary="Every change since a cursor", description=_DESCRIPTION, responses=problem_responses(410)
    )
    async def sync(
        self,
        request: Request[Any, Any, Any],
        sync: NamedDependency[SyncService],
        user_id: FromPath[str],
        cursor: Annotated[str | None, QueryParameter(description="From an earlier answer; opaque.")] = None,
        limit: Annotated[
            int, QueryParameter(ge=1, le=1000, description="Objects per answer, all kinds.")
        ] = 500,
    ) -> SyncPage:
        del cursor  # read raw: Litestar would turn "null" into None
        return await sync.page(user_id, _strict(request), limit)
