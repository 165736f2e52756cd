"""HTTP handlers for ``/api/{user_id}/tasks``: one service call and one conversion each.

The owner guard (``backend.auth``) has already checked that ``{user_id}`` is the token's subject;
``tasks`` is a ``TaskService`` on this request's session (``backend.tasks.provide_tasks``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response
from litestar.di import NamedDependency
from litestar.dto import DTOData
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from backend.errors import problem_responses
from backend.http.etags import IfMatch, IfNoneMatch, parse_if_match, unless_not_modified, with_etag
from backend.http.idempotency import REPLAYED_HEADER, IdempotencyKey, request_once
from backend.http.paging import page_headers, paging_headers
from backend.http.resource_routes import create_route, delete_route, read_route, write_route
from backend.http.routes import delete, get, post
from backend.tasks.filters import FILTER_PARAMS, Status, TaskFilter
from backend.tasks.models import Priority
from backend.tasks.schemas import (
    TAG_MAX,
    CompleteAllBody,
    CompleteAllDTO,
    CompletedBody,
    CompletedDTO,
    DeletedCount,
    SortKey,
    TaskCreateDTO,
    TaskMove,
    TaskMoveDTO,
    TaskRead,
    TaskStats,
    TaskUpdateDTO,
    TaskWrite,
    UpdatedCount,
)
from backend.tasks.service import TaskService, task_location

MAX_OFFSET = 10_000_000
_ONE = "/{task_id:str}"
_RFC3339 = "RFC 3339 timestamp with a zone, e.g. `2026-12-01T09:00:00Z` (encode `+` as `%2B`)."
_THE_TASK = "The task, with its ETag."

# Every parameter is declared where it comes from (path, query, dependency): Litestar 3 stops inferring it.
Tasks = NamedDependency[TaskService]
UserId = FromPath[str]
TaskId = Annotated[str, PathParameter(description="The task's id (a UUID; anything else is a 404).")]
Completed = Annotated[
    bool | None, QueryParameter(description="true: completed tasks only; false: not completed only.")
]
StatusFilter = Annotated[
    Status | None,
    QueryParameter(
        description="all (the default), active (not completed) or completed: the completed filter by "
        "name; contradicting completed is a 400."
    ),
]
PriorityFilter = Annotated[Priority | None, QueryParameter(description="Only tasks of this priority.")]
TagFilter = Annotated[
    str | None,
    QueryParameter(
        description="Only tasks carrying this tag (trimmed, compared lower-cased).",
        min_length=1,
        max_length=TAG_MAX,
    ),
]
TextFilter = Annotated[
    str | None,
    QueryParameter(
        description="Only tasks whose title or description contains this text (case-insensitive).",
        min_length=1,
        max_length=255,
    ),
]
# One declaration each: of two nested ``Annotated`` parameter declarations, only the inner one counts.
DueBefore = Annotated[
    str | None,
    QueryParameter(description=_RFC3339 + " Exclusive.", schema_extra={"format": "date-time"}),
]
DueAfter = Annotated[
    str | None,
    QueryParameter(description=_RFC3339 + " Inclusive.", schema_extra={"format": "date-time"}),
]
ListFilter = Annotated[str | None, QueryParameter(description="A list's id, or `inbox`: tasks in no list.")]
ParentFilter = Annotated[
    str | None, QueryParameter(description="A task's id: its subtasks; `none`: top-level tasks only.")
]
Sort = Annotated[
    SortKey,
    QueryParameter(description="Order by this field; a leading - reverses it (-created_at: newest first)."),
]
Limit = Annotated[int, QueryParameter(description="Tasks per page, 1-200.", ge=1, le=200)]
Offset = Annotated[
    int,
    QueryParameter(description="Tasks to skip before the page starts (0-10,000,000).", ge=0, le=MAX_OFFSET),
]
ClearCompleted = Annotated[
    Literal["true"], QueryParameter(description="Must be `true`: only completed tasks go.")
]


class TaskController(Controller):
    path = "/api/{user_id:str}/tasks"
    tags = ["tasks"]
    security = [{"BearerAuth": []}]

    @get(
        "/",
        summary="List the caller's tasks",
        description="Filtered, sorted and paged. `X-Total-Count` counts the whole filter; `Link` has "
        "`first`, `prev`, `next` and `last` (RFC 8288) keeping the filters. `due_after` is inclusive, "
        "`due_before` exclusive. Unknown values and out-of-range numbers are a 400.",
        responses=problem_responses(),
        response_headers=paging_headers("Tasks"),
        response_description="The page of tasks (X-Total-Count: how many match; Link: the other pages).",
    )
    async def list_tasks(
        self,
        request: Request[Any, Any, Any],
        tasks: Tasks,
        user_id: UserId,
        completed: Completed = None,
        status: StatusFilter = None,
        priority: PriorityFilter = None,
        tag: TagFilter = None,
        q: TextFilter = None,
        due_before: DueBefore = None,
        due_after: DueAfter = None,
        list_id: ListFilter = None,
        parent_id: ParentFilter = None,
        sort: Sort = "-created_at",
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response[list[TaskRead]]:
        query = TaskFilter.build(
            completed=completed,
            status=status,
            priority=priority,
            tag=tag,
            q=q,
            due_before=due_before,
            due_after=due_after,
            list_id=list_id,
            parent_id=parent_id,
            sort=sort,
            limit=limit,
            offset=offset,
        )
        items, total = await tasks.list_tasks(user_id, query)
        headers = page_headers(request, total=total, limit=limit, offset=offset, keep=FILTER_PARAMS)
        return Response(items, headers=headers)

    @create_route(
        "task",
        "/api/u1/tasks/0193f3c4-6a1e-7c2b-9a55-2f1e0c8d4b21",
        summary="Create a task",
        dto=TaskCreateDTO,
    )
    async def create_task(
        self,
        request: Request[Any, Any, Any],
        tasks: Tasks,
        user_id: UserId,
        data: JSONBody[TaskWrite],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[TaskRead]:
        task = await tasks.add_task(user_id, data, await request_once(request, idempotency_key))
        return with_etag(task, HTTP_201_CREATED, task_location(user_id, task.id))

    @get(
        "/stats",
        summary="Count the caller's tasks",
        description="`overdue`: not completed and `due_at` in the past.",
        responses=problem_responses(),
        response_description="The counts: total, completed, active, overdue.",
    )
    async def get_task_stats(self, tasks: Tasks, user_id: UserId, list_id: ListFilter = None) -> TaskStats:
        return await tasks.stats(user_id, list_id)

    @post(
        "/complete-all",
        summary="Set completed on every task of the caller",
        dto=CompleteAllDTO,
        return_dto=None,
        status_code=HTTP_200_OK,
        responses=problem_responses(409, 413, 415, 422),
        response_headers=[REPLAYED_HEADER],
        response_description="How many tasks changed.",
    )
    async def complete_all_tasks(
        self,
        request: Request[Any, Any, Any],
        tasks: Tasks,
        user_id: UserId,
        data: JSONBody[CompleteAllBody],
        idempotency_key: IdempotencyKey = None,
    ) -> UpdatedCount:
        once = await request_once(request, idempotency_key)
        updated = await tasks.complete_all(user_id, data.completed, once, data.list_id)
        return UpdatedCount(updated=updated)

    @delete(
        "/",
        summary="Delete the caller's completed tasks (clear completed)",
        description="Requires `completed=true`; anything else is a 400, never a wipe.",
        status_code=HTTP_200_OK,
        responses=problem_responses(),
        response_description="How many tasks were deleted.",
    )
    async def clear_completed_tasks(
        self, tasks: Tasks, user_id: UserId, completed: ClearCompleted, list_id: ListFilter = None
    ) -> DeletedCount:
        return DeletedCount(deleted=await tasks.clear_completed(user_id, list_id))

    @read_route(
        _ONE,
        summary="Get one task",
        description="`If-None-Match` with its current ETag gives 304 and no body.",
        response_description=_THE_TASK,
    )
    async def get_task(
        self, tasks: Tasks, user_id: UserId, task_id: TaskId, if_none_match: IfNoneMatch = None
    ) -> Response[TaskRead]:
        return unless_not_modified(await tasks.get_task(user_id, task_id), if_none_match)

    @write_route(
        _ONE,
        methods=("PATCH", "PUT"),
        summary="Update the fields given (PATCH and PUT alike)",
        description="A field left out stays as it is; `null` clears `description` or `due_at`; "
        "an empty object changes nothing.",
        dto=TaskUpdateDTO,
        response_description=_THE_TASK,
    )
    async def update_task(
        self,
        tasks: Tasks,
        user_id: UserId,
        task_id: TaskId,
        data: JSONBody[DTOData[TaskWrite]],
        if_match: IfMatch = None,
    ) -> Response[TaskRead]:
        changes = data.as_builtins()
        return with_etag(await tasks.update_task(user_id, task_id, changes, parse_if_match(if_match)))

    @delete_route(_ONE, summary="Delete a task")
    async def delete_task(
        self, tasks: Tasks, user_id: UserId, task_id: TaskId, if_match: IfMatch = None
    ) -> None:
        await tasks.delete_task(user_id, task_id, parse_if_match(if_match))

    @write_route(
        _ONE + "/move",
        summary="Move a task right after a sibling",
        description="`after` (required): the sibling to follow, null for first. `list_id`/`parent_id` "
        "name the destination group (left out: the task's own). Moves that one task; a parent's "
        "subtasks follow it to another list.",
        dto=TaskMoveDTO,
        response_description=_THE_TASK,
    )
    async def move_task(
        self,
        tasks: Tasks,
        user_id: UserId,
        task_id: TaskId,
        data: JSONBody[DTOData[TaskMove]],
        if_match: IfMatch = None,
    ) -> Response[TaskRead]:
        where = data.as_builtins()
        return with_etag(await tasks.move_task(user_id, task_id, where, parse_if_match(if_match)))

    @write_route(
        _ONE + "/complete",
        methods=("PATCH",),
        summary="Toggle completed, or set it",
        description='No body: toggle atomically. Body `{"completed": true|false}`: set it.',
        dto=CompletedDTO,
        response_description=_THE_TASK,
    )
    async def set_task_completion(
        self,
        tasks: Tasks,
        user_id: UserId,
        task_id: TaskId,
        data: JSONBody[CompletedBody | None] = None,
        if_match: IfMatch = None,
    ) -> Response[TaskRead]:
        completed = None if data is None else data.completed
        return with_etag(await tasks.set_completed(user_id, task_id, completed, parse_if_match(if_match)))
