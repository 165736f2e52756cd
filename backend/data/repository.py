"""The repository base of an owned, versioned resource: its prebuilt statements, run for one owner."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from backend.data.locking import LOCK_OWNER
from backend.data.statements import OwnedTable
from backend.idempotency import Once, StoredResponse, key_params, run_once
from backend.sql import DriverRepository, ModelT

ReadT = TypeVar("ReadT")


class OwnedRepository(DriverRepository[ModelT], Generic[ModelT, ReadT]):
    """Rows of one owner at a time, as ``read_type`` Structs; ``None`` where no such row is the owner's.

    A subclass names its ``owned`` statements and its ``read_type`` (whose fields ``owned.columns`` follow).
    """

    owned: OwnedTable
    read_type: type[ReadT]

    def _read(self, row: Any) -> ReadT | None:
        return None if row is None else self.read_type(*row)

    async def lock_owner(self, user_id: str) -> None:
        """Take the owner's lock now: before a bulk write, whose snapshot must come after the wait."""
        await self.fetch_value(LOCK_OWNER, {"owner": user_id})

    async def fetch_owned(self, user_id: str, item_id: UUID) -> ReadT | None:
        return self._read(
            await self.fetch_row(self.owned.get, {self.owned.id_param: item_id, "owner": user_id})
        )

    async def owned_exists(self, user_id: str, item_id: UUID) -> bool:
        params = {self.owned.id_param: item_id, "owner": user_id}
        return await self.fetch_row(self.owned.exists, params) is not None

    async def insert_owned(self, values: dict[str, Any], quota: int) -> ReadT | None:
        """The new row; None when its owner already holds ``quota`` rows."""
        params = {**values, "owner": values["user_id"], "quota": quota}
        return self._read(await self.fetch_row(self.owned.insert, params))

    async def insert_owned_once(
        self, values: dict[str, Any], quota: int, once: Once, response: StoredResponse
    ) -> ReadT | None:
        """Insert the row and store ``response`` under ``once``'s key, in one statement; None when the
        quota refused it (then nothing is stored). Raises the key's outcome when it was used before."""
        owner = values["user_id"]
        params = {**values, "owner": owner, "quota": quota, "body": response.body}
        params.update(key_params(owner, once, response.status_code, response.location, response.etag))
        return self._read(await run_once(self, owner, once, self.owned.insert_once, params))

    async def update_owned(
        self,
        user_id: str,
        item_id: UUID,
        changes: dict[str, Any],
        now: datetime,
        if_match: tuple[int, ...] | None,
    ) -> ReadT | None:
        """Apply ``changes`` (column -> value) and bump the version, if the row matches ``if_match``."""
        params = {f"v_{k}": v for k, v in changes.items()}
        params.update({self.owned.id_param: item_id}, owner=user_id, now=now, versions=list(if_match or ()))
        sql = self.owned.update_fields(tuple(sorted(changes)), if_match is not None)
        return self._read(await self.fetch_row(sql, params))

    async def delete_owned(self, user_id: str, item_id: UUID, if_match: tuple[int, ...] | None) -> int | None:
        """The deleted row's version."""
        params = {self.owned.id_param: item_id, "owner": user_id, "versions": list(if_match or ())}
        row = await self.fetch_row(self.owned.delete[if_match is not None], params)
        return None if row is None else int(row[0])
