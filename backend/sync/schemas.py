"""The body of ``GET /api/{user_id}/sync``."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from msgspec import Struct

from backend.http.fields import doc
from backend.lists.schemas import ListRead
from backend.tasks.schemas import TaskRead


class Deleted(Struct):
    """A list or task deleted after the cursor."""

    id: UUID
    version: Annotated[int, doc("The version it had when it was deleted.", 7)]


class SyncPage(Struct):
    """Lists and tasks changed after the cursor (all of them without one), and the ones deleted."""

    lists: list[ListRead]
    tasks: list[TaskRead]
    deleted_lists: list[Deleted]
    deleted_tasks: list[Deleted]
    cursor: Annotated[
        str, doc("Opaque: send it back as `cursor` to get what changed after this answer.", "YzEuNDI")
    ]
    more: Annotated[bool, doc("True: call again with `cursor` now. False: up to date as of `cursor`.", False)]
