"""The service base of a cold owned resource: Advanced Alchemy's own methods, always for one owner.

Reads are AA's ``get_one_or_none``/``get_many`` with the owner among the filters; writes lock the
caller's row (``FOR UPDATE``) and check ``If-Match`` before AA's ``update``/``delete`` touch it, so AA's
by-id methods only ever see a row already proven to be the caller's. The hooks keep the rules: the
quota on create (``to_model_on_create``), the version bump on update (``to_model_on_update``).

Writes commit inside the request (AA's ``auto_commit``): a commit that fails is then an error answer.
The plugin's autocommit ``before_send`` handler, which commits whatever is left, logs a failed commit
at debug level and still sends the 2xx it was given.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar, cast

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from advanced_alchemy.utils.serialization import ModelDictT
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.data.locking import owner_locked
from backend.data.resource import Resource
from backend.db import AUTOCOMMIT_READS
from backend.errors import VersionMismatch


class Owned(Protocol):
    user_id: Any
    version: Any


ModelT = TypeVar("ModelT", bound=Any)
RepositoryT = TypeVar("RepositoryT", bound=SQLAlchemyAsyncRepository[Any])


class OwnedService(Resource, SQLAlchemyAsyncRepositoryService[ModelT, RepositoryT]):
    """AA's service for rows of one owner at a time; every method takes the caller's ``user_id``."""

    async def get_owned(self, user_id: str, raw_id: str, *, for_update: bool = False) -> ModelT:
        """The caller's row; ``for_update`` locks it, after the owner's lock (``backend.data.locking``)."""
        writing = (owner_locked(user_id),) if for_update else ()
        item = await self.get_one_or_none(
            *writing, id=self.parse_id(raw_id), user_id=user_id, with_for_update=for_update
        )
        return item if item is not None else self.not_found()

    async def read_only(self) -> None:
        """Call first in a request that only reads: its session reads in autocommit, one round trip per
        statement instead of BEGIN, the statement and the ROLLBACK of its close (SQLAlchemy starts a
        transaction for any statement otherwise). Every statement still sees a consistent snapshot of
        its own; a request that needs several statements to agree, or writes, must not call it. Behind
        a transaction-mode pooler (``backend.db.AUTOCOMMIT_READS`` off) it does nothing."""
        session = cast("AsyncSession", self.repository.session)
        if session.info.get(AUTOCOMMIT_READS) and not session.in_transaction():
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})

    async def get_for_write(self, user_id: str, raw_id: str, if_match: tuple[int, ...] | None) -> ModelT:
        """The caller's row, locked until the request's transaction ends, if it matches ``If-Match``."""
        item = await self.get_owned(user_id, raw_id, for_update=True)
        if if_match is not None and item.version not in if_match:
            raise VersionMismatch(self.noun)
        return item

    async def create_owned(self, user_id: str, data: dict[str, Any], *, commit: bool = True) -> ModelT:
        """The new row; ``commit=False`` leaves the transaction open for more (an Idempotency-Key row)."""
        # No refresh: the INSERT's RETURNING already brought what the database decided (position), and
        # AA refreshes after its commit, which took a second transaction (BEGIN, SELECT, COMMIT).
        return await self.create({**data, "user_id": user_id}, auto_commit=commit, auto_refresh=False)

    async def update_owned(
        self, user_id: str, raw_id: str, changes: dict[str, Any], if_match: tuple[int, ...] | None
    ) -> ModelT:
        """Apply ``changes``; none at all changes nothing (same version), ``If-Match`` still checked."""
        item = await self.get_for_write(user_id, raw_id, if_match)
        if not changes:
            return item
        for name, value in changes.items():
            setattr(item, name, value)
        # No refresh either: every changed column was set here (version by ``to_model_on_update``,
        # ``updated_at`` by AA's listener), and no trigger changes the row on update.
        return await self.update(item, auto_commit=True, auto_refresh=False)

    async def delete_owned(self, user_id: str, raw_id: str, if_match: tuple[int, ...] | None) -> None:
        item = await self.get_for_write(user_id, raw_id, if_match)
        await self.delete(item.id, auto_commit=True)

    async def to_model_on_create(self, data: ModelDictT[ModelT]) -> ModelDictT[ModelT]:
        """Refuse past the quota. The count runs after the owner's lock (``owned_count_locked``), as the
        create's first statement: concurrent creates of one user are counted one after the other."""
        # Our services hand AA a dict or the model itself, which is Owned.
        owner = data["user_id"] if isinstance(data, dict) else cast("Owned", data).user_id
        table = self.repository.model_type.__tablename__
        held = await self.repository.session.scalar(select(func.owned_count_locked(table, owner)))
        if held is not None and held >= self.quota:
            self.quota_reached(table)
        return data

    async def to_model_on_update(self, data: ModelDictT[ModelT]) -> ModelDictT[ModelT]:
        """Every change is a new version (``updated_at`` is AA's audit listener's)."""
        if not isinstance(data, dict):
            item = cast("Owned", data)
            item.version = item.version + 1
        return data
