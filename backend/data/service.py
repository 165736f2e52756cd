"""The service base of a resource served by prebuilt statements (``OwnedRepository``)."""

from __future__ import annotations

from typing import Any, NoReturn, TypeVar

from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService

from backend.data.repository import OwnedRepository
from backend.data.resource import Resource
from backend.sql import ModelT

RepositoryT = TypeVar("RepositoryT", bound=OwnedRepository[Any, Any])


class UnscopedWrite(TypeError):
    """An inherited Advanced Alchemy write was called on a service whose writes are its own methods."""


class DriverService(Resource, SQLAlchemyAsyncRepositoryService[ModelT, RepositoryT]):
    """AA's service whose reads (``count``, ``get_one_or_none``, ``list``...) work as usual, and whose
    inherited writes are unreachable.

    AA's ``create``/``update``/``delete``/``upsert``... go through the ORM: they would skip what the
    resource's own statements do in the write itself (owner check, version bump and ``If-Match``, the
    quota under the owner's lock, derived columns), and AA's update/delete by id check no owner. They
    raise ``UnscopedWrite`` instead: the resource's methods are the only way to write.
    """

    def _unscoped(self, *_: Any, **__: Any) -> NoReturn:
        raise UnscopedWrite(f"{type(self).__name__} writes through its own methods, which check the owner")

    create = create_many = update = update_many = _unscoped
    upsert = upsert_many = get_or_upsert = get_and_update = _unscoped
    delete = delete_many = delete_where = _unscoped
