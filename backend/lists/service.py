"""The rules of lists, on Advanced Alchemy's own service methods (``backend.data.owned_service``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from backend.data.owned_service import OwnedService
from backend.http.etags import etag
from backend.http.headers import location
from backend.idempotency import Once, StoredResponse, keep_response
from backend.lists.models import TaskList
from backend.lists.repository import ListRepository
from backend.lists.schemas import ListMove, ListRead, ListWrite


class ListService(OwnedService[TaskList, ListRepository]):
    """Lists of one user at a time, in their order."""

    repository_type = ListRepository
    noun = "List"
    quota = 1_000

    def read(self, item: TaskList) -> ListRead:
        return self.to_schema(item, schema_type=ListRead)

    async def lists(self, user_id: str) -> list[ListRead]:
        await self.read_only()
        items = await self.get_many(
            TaskList.user_id == user_id, order_by=[("position", False), ("id", False)]
        )
        return [self.read(item) for item in items]

    async def get_list(self, user_id: str, list_id: str) -> ListRead:
        await self.read_only()
        return self.read(await self.get_owned(user_id, list_id))

    async def add_list(self, user_id: str, data: ListWrite, once: Once | None = None) -> ListRead:
        """The new list, last in order. With ``once``, stored with its key in the same transaction."""
        created = self.read(await self.create_owned(user_id, msgspec.to_builtins(data), commit=once is None))
        if once is not None:
            body = msgspec.json.encode(created).decode()
            url = list_location(user_id, created.id)
            await keep_response(self.repository, user_id, once, StoredResponse(201, body, url, etag(1)))
            await self.repository.session.commit()
        return created

    async def rename(
        self, user_id: str, list_id: str, changes: dict[str, Any], if_match: tuple[int, ...] | None
    ) -> ListRead:
        return self.read(await self.update_owned(user_id, list_id, changes, if_match))

    async def remove(self, user_id: str, list_id: str, if_match: tuple[int, ...] | None) -> None:
        """Delete the list and every task in it (the database cascades, in this transaction)."""
        await self.delete_owned(user_id, list_id, if_match)

    async def move(
        self, user_id: str, list_id: str, data: ListMove, if_match: tuple[int, ...] | None
    ) -> ListRead:
        try:
            return await self.repository.move(
                user_id, self.parse_id(list_id), data.after, datetime.now(UTC), if_match
            )
        except asyncpg.PostgresError as exc:
            self.refused(exc)


def list_location(user_id: str, list_id: object) -> str:
    return location("api", user_id, "lists", list_id)
