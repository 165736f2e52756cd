"""HTTP handlers for ``/api/{user_id}/lists``: one service call and one conversion each."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response
from litestar.di import Provide
from litestar.dto import DTOData
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED

from backend.errors import problem_responses
from backend.http.etags import IfMatch, IfNoneMatch, parse_if_match, unless_not_modified, with_etag
from backend.http.idempotency import provide_once
from backend.http.resource_routes import create_route, delete_route, read_route, write_route
from backend.http.routes import get
from backend.idempotency import Once
from backend.lists.schemas import ListCreateDTO, ListMove, ListMoveDTO, ListRead, ListUpdateDTO, ListWrite
from backend.lists.service import ListService, list_location

PathId = Annotated[str, Parameter(description="The list's id (a UUID; anything else is a 404).")]
# The fields a rename gives (``{}``: none), as the partial DTO decoded them.
Renaming = DTOData[ListWrite]
_EXAMPLE_URL = "/api/u1/lists/0193f3c4-6a1e-7c2b-9a55-2f1e0c8d4b22"
_ONE = "/{list_id:str}"


class ListController(Controller):
    path = "/api/{user_id:str}/lists"
    tags = ["lists"]
    security = [{"BearerAuth": []}]

    @get("/", summary="List the caller's lists, in their order", responses=problem_responses())
    async def list_lists(self, lists: ListService, user_id: str) -> list[ListRead]:
        return await lists.lists(user_id)

    @create_route(
        "list",
        _EXAMPLE_URL,
        summary="Create a list (appended last)",
        dto=ListCreateDTO,
        dependencies={"once": Provide(provide_once)},
    )
    async def create_list(
        self, lists: ListService, user_id: str, data: ListWrite, once: Once | None
    ) -> Response[ListRead]:
        created = await lists.add_list(user_id, data, once)
        return with_etag(created, HTTP_201_CREATED, list_location(user_id, created.id))

    @delete_route(_ONE, summary="Delete a list and every task in it")
    async def delete_list(
        self, lists: ListService, user_id: str, list_id: PathId, if_match: IfMatch = None
    ) -> None:
        """The list's tasks, subtasks included, go in the same transaction (the database cascades)."""
        await lists.remove(user_id, list_id, parse_if_match(if_match))

    @read_route(_ONE, summary="Get one list")
    async def get_list(
        self, lists: ListService, user_id: str, list_id: PathId, if_none_match: IfNoneMatch = None
    ) -> Response[ListRead]:
        return unless_not_modified(await lists.get_list(user_id, list_id), if_none_match)

    @write_route(
        _ONE, methods=("PATCH", "PUT"), summary="Rename a list (PATCH and PUT alike)", dto=ListUpdateDTO
    )
    async def update_list(
        self, lists: ListService, user_id: str, list_id: PathId, data: Renaming, if_match: IfMatch = None
    ) -> Response[ListRead]:
        return with_etag(await lists.rename(user_id, list_id, data.as_builtins(), parse_if_match(if_match)))

    @write_route(
        _ONE + "/move", summary="Move a list right after another (`after: null`: first)", dto=ListMoveDTO
    )
    async def move_list(
        self, lists: ListService, user_id: str, list_id: PathId, data: ListMove, if_match: IfMatch = None
    ) -> Response[ListRead]:
        return with_etag(await lists.move(user_id, list_id, data, parse_if_match(if_match)))
