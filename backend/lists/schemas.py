"""The wire contract of lists: msgspec Structs and their strict DTOs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from msgspec import Struct

from backend.http.dto import FieldErrors
from backend.http.fields import body_dtos, clean_name, doc

NAME_MAX = 100
ListId = Annotated[UUID, doc("A list's id.", "0193f3c4-6a1e-7c2b-9a55-2f1e0c8d4b22")]
Name = Annotated[str, doc("Trimmed; 1-100 characters; need not be unique.", "Groceries", max_length=NAME_MAX)]


class ListWrite(Struct, kw_only=True):
    """The writable field of a list (read-only fields are refused by name: the DTOs forbid unknown ones)."""

    name: Name

    def __post_init__(self) -> None:
        self.name = self.clean({"name": self.name})["name"]

    @classmethod
    def clean(cls, fields: dict[str, Any]) -> dict[str, Any]:
        errors = FieldErrors()
        cleaned = dict(fields)
        if "name" in fields:
            cleaned["name"] = clean_name(errors, "name", fields["name"], NAME_MAX)
        errors.raise_if_any()
        return cleaned


class ListMove(Struct, forbid_unknown_fields=True):
    """Where to put the list: right after the list ``after`` (``null``: first)."""

    after: Annotated[ListId | None, doc("The list to follow, or null to go first.", None)]


class ListRead(Struct):
    """A list as the API returns it; the move statement returns its columns in this order."""

    id: ListId
    user_id: Annotated[str, doc("The owner: the token's subject.", "k3JZ8cQ1vO2p")]
    name: Name
    position: Annotated[str, doc("Its place among the caller's lists, compared byte by byte.", "a0")]
    created_at: Annotated[datetime, doc("RFC 3339, UTC.", "2026-11-21T10:00:00Z")]
    updated_at: Annotated[
        datetime, doc("RFC 3339, UTC; changes on every modification.", "2026-11-21T10:00:00Z")
    ]
    version: Annotated[int, doc("Starts at 1, +1 on every change; the ETag is its quoted value.", 1)]


ListCreateDTO, ListUpdateDTO = body_dtos(ListWrite)
ListMoveDTO = body_dtos(ListMove)[0]
