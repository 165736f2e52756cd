"""HTTP handlers for ``/api/{user_id}/tasks``: one service call and one conversion each.

The owner guard (``backend.auth``) has already checked that ``{user_id}`` is the token's subject;
``tasks`` is the app's one ``TaskService`` (``create_app``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

import msgspec
from litestar import Controller, Request, Response
from litestar.datastructures import ResponseHeader
from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Operation, RequestBody
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT, HTTP_304_NOT_MODIFIED
from msgspec import Meta

from backend.body import StrictBody
from backend.errors import problem_responses
from backend.routes import delete, get, patch, post, put
from backend.tasks.etags import etag, matches_current, parse_if_match
from backend.tasks.models import Priority
from backend.tasks.paging import page_headers
from backend.tasks.schemas import (
    CompletedBody,
    DeletedCount,
    TaskCreate,
    TaskRead,
    TaskStats,
    TaskUpdate,
    UpdatedCount,
)
from backend.tasks.service import TaskFilter, TaskService

SortKey = Literal[
    "created_at", "-created_at", "updated_at", "-updated_at", "due_at", "-due_at",
    "priority", "-priority", "title", "-title",
]  # fmt: skip
TaskId = Annotated[str, Parameter(description="The task's id (a UUID; anything else is a 404).")]
IfMatch = Annotated[
    str | None,
    Parameter(
        header="If-Match",
        description='Apply only if the task\'s ETag is one of these (e.g. `"3"`), else 412.',
    ),
]


def _header(name: str, description: str, example: str) -> ResponseHeader:
    # documentation_only: the handler sets the value; `value` here only gives OpenAPI its type.
    return ResponseHeader(name=name, description=description, value=example, documentation_only=True)


_RFC3339 = "RFC 3339 timestamp with a zone, e.g. `2026-12-01T09:00:00Z` (encode `+` as `%2B`)."
AwareDatetime = Annotated[datetime, Meta(tz=True)]
MAX_OFFSET = 10_000_000


class _OptionalBody(Operation):
    """OpenAPI: the body of this operation may be left out (Litestar marks every body required)."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False


_ETAG = _header("ETag", "The task's version, quoted.", '"3"')
_LOCATION = _header("Location", "The new task's URL.", "/api/u1/tasks/0193f3c4-6a1e-7c2b-9a55-2f1e0c8d4b21")
_PAGING = [
    _header("X-Total-Count", "Tasks matching the whole filter.", "120"),
    _header(
        "Link",
        "RFC 8288 links `first`, `prev`, `next`, `last` (where they exist), keeping the filters.",
        '</api/u1/tasks?sort=title&limit=50&offset=50>; rel="next"',
    ),
]


def _task(task: TaskRead, status_code: int = HTTP_200_OK, location: str | None = None) -> Response[TaskRead]:
    headers = {"ETag": etag(task.version)}
    if location:
        headers["Location"] = location
    return Response(task, status_code=status_code, headers=headers)


class TaskController(Controller):
    path = "/api/{user_id:str}/tasks"
    tags = ["tasks"]
    security = [{"BearerAuth": []}]
    return_dto = None

    @get(
        "/",
        summary="List the caller's tasks",
        description="Filtered, sorted and paged. `X-Total-Count` counts the whole filter; `Link` has "
        "`first`, `prev`, `next` and `last` (RFC 8288) keeping the filters. `due_after` is inclusive, "
        "`due_before` exclusive. Unknown values and out-of-range numbers are a 400.",
        responses=problem_responses(),
        response_headers=_PAGING,
    )
    async def list_tasks(
        self,
        request: Request[Any, Any, Any],
        tasks: TaskService,
        user_id: str,
        completed: bool | None = None,
        status: Literal["all", "active", "completed"] | None = None,
        priority: Priority | None = None,
        tag: Annotated[str | None, Parameter(min_length=1, max_length=30)] = None,
        q: Annotated[str | None, Parameter(min_length=1, max_length=255)] = None,
        due_before: Annotated[str | None, Parameter(description=_RFC3339 + " Exclusive.")] = None,
        due_after: Annotated[str | None, Parameter(description=_RFC3339 + " Inclusive.")] = None,
        sort: SortKey = "-created_at",
        limit: Annotated[int, Parameter(ge=1, le=200)] = 100,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
    ) -> Response[list[TaskRead]]:
        f = _list_filter(
            completed, status, priority, tag, q, due_before, due_after, sort=sort, limit=limit, offset=offset
        )
        items, total = await tasks.list_tasks(user_id, f)
        return Response(items, headers=page_headers(request, total=total, limit=limit, offset=offset))

    @post(
        "/",
        summary="Create a task",
        dto=StrictBody[TaskCreate],
        status_code=HTTP_201_CREATED,
        responses=problem_responses(413, 415),
        response_description="The new task.",
        response_headers=[_LOCATION, _ETAG],
    )
    async def create_task(self, tasks: TaskService, user_id: str, data: TaskCreate) -> Response[TaskRead]:
        task = await tasks.add_task(user_id, data)
        return _task(task, HTTP_201_CREATED, f"/api/{quote(user_id, safe='')}/tasks/{task.id}")

    @get(
        "/stats",
        summary="Count the caller's tasks",
        description="`overdue`: not completed and `due_at` in the past.",
        responses=problem_responses(),
    )
    async def stats(self, tasks: TaskService, user_id: str) -> TaskStats:
        return await tasks.stats(user_id)

    @post(
        "/complete-all",
        summary="Set `completed` on every task of the caller",
        dto=StrictBody[CompletedBody],
        status_code=HTTP_200_OK,
        responses=problem_responses(413, 415),
    )
    async def complete_all(self, tasks: TaskService, user_id: str, data: CompletedBody) -> UpdatedCount:
        return UpdatedCount(updated=await tasks.complete_all(user_id, data.completed))

    @delete(
        "/",
        summary="Delete the caller's completed tasks (clear completed)",
        description="Requires `completed=true`; anything else is a 400, never a wipe.",
        status_code=HTTP_200_OK,
        responses=problem_responses(),
    )
    async def clear_completed(
        self,
        tasks: TaskService,
        user_id: str,
        completed: Annotated[
            Literal["true"], Parameter(description="Must be `true`: only completed tasks go.")
        ],
    ) -> DeletedCount:
        return DeletedCount(deleted=await tasks.delete_completed(user_id))

    @get(
        "/{task_id:str}",
        summary="Get one task",
        description="`If-None-Match` with its current ETag gives 304 and no body.",
        responses={**problem_responses(404), 304: ResponseSpec(None, description="Not modified")},
        response_headers=[_ETAG],
    )
    async def get_task(
        self,
        tasks: TaskService,
        user_id: str,
        task_id: TaskId,
        if_none_match: Annotated[str | None, Parameter(header="If-None-Match")] = None,
    ) -> Response[TaskRead]:
        task = await tasks.get_task(user_id, task_id)
        if if_none_match and matches_current(if_none_match, task.version):
            return Response(None, status_code=HTTP_304_NOT_MODIFIED, headers={"ETag": etag(task.version)})  # type: ignore[arg-type]
        return _task(task)

    @put(
        "/{task_id:str}",
        summary="Update the fields given",
        description="A field left out stays as it is; `null` clears `description` or `due_at`; "
        "an empty object changes nothing.",
        dto=StrictBody[TaskUpdate],
        responses=problem_responses(404, 412, 413, 415),
        response_headers=[_ETAG],
    )
    async def put_task(
        self, tasks: TaskService, user_id: str, task_id: TaskId, data: TaskUpdate, if_match: IfMatch = None
    ) -> Response[TaskRead]:
        return _task(await tasks.update_task(user_id, task_id, data.changes(), parse_if_match(if_match)))

    @patch(
        "/{task_id:str}",
        summary="Update the fields given (same as PUT)",
        dto=StrictBody[TaskUpdate],
        responses=problem_responses(404, 412, 413, 415),
        response_headers=[_ETAG],
    )
    async def patch_task(
        self, tasks: TaskService, user_id: str, task_id: TaskId, data: TaskUpdate, if_match: IfMatch = None
    ) -> Response[TaskRead]:
        return _task(await tasks.update_task(user_id, task_id, data.changes(), parse_if_match(if_match)))

    @delete(
        "/{task_id:str}",
        summary="Delete a task",
        status_code=HTTP_204_NO_CONTENT,
        responses=problem_responses(404, 412),
    )
    async def delete_task(
        self, tasks: TaskService, user_id: str, task_id: TaskId, if_match: IfMatch = None
    ) -> None:
        await tasks.delete_task(user_id, task_id, parse_if_match(if_match))

    @patch(
        "/{task_id:str}/complete",
        summary="Toggle `completed`, or set it",
        description='No body: toggle atomically. Body `{"completed": true|false}`: set it.',
        dto=StrictBody[CompletedBody],
        responses=problem_responses(404, 412, 413, 415),
        operation_class=_OptionalBody,
        response_headers=[_ETAG],
    )
    async def complete_task(
        self,
        tasks: TaskService,
        user_id: str,
        task_id: TaskId,
        data: CompletedBody | None = None,
        if_match: IfMatch = None,
    ) -> Response[TaskRead]:
        completed = None if data is None else data.completed
        return _task(await tasks.set_completed(user_id, task_id, completed, parse_if_match(if_match)))


def _list_filter(
    completed: bool | None,
    status: str | None,
    priority: Priority | None,
    tag: str | None,
    q: str | None,
    due_before: str | None,
    due_after: str | None,
    **page: Any,
) -> TaskFilter:
    """Checks Litestar's parameter parsing cannot express, with every problem reported at once."""
    errors = []
    from_status = {"all": None, "active": False, "completed": True, None: None}[status]
    if completed is not None and status not in (None, "all") and completed != from_status:
        errors.append({"field": "status", "message": "contradicts completed"})
    due: dict[str, datetime | None] = {}
    for name, value in (("due_before", due_before), ("due_after", due_after)):
        try:
            # Strict: a bare number is not a timestamp here, and the zone is required.
            due[name] = None if value is None else msgspec.convert(value, AwareDatetime, strict=True)
        except msgspec.ValidationError:
            errors.append(
                {"field": name, "message": "must be an RFC 3339 timestamp with a zone (Z or +01:00)"}
            )
    tag = tag.strip().lower() if tag is not None else None
    if tag is not None and not tag:
        errors.append({"field": "tag", "message": "must be 1-30 characters after trimming"})
    errors.extend(
        {"field": n, "message": "must not contain NUL characters"}
        for n, v in (("q", q), ("tag", tag))
        if v and "\x00" in v
    )
    if errors:
        raise ValidationException(detail="Invalid query parameters", extra=errors)
    return TaskFilter(
        completed=completed if completed is not None else from_status,
        priority=priority,
        tag=tag,
        q=q,
        due_before=due.get("due_before"),
        due_after=due.get("due_after"),
        **page,
    )
