"""The wire contract: msgspec Structs for every request and response body."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args
from uuid import UUID

import msgspec
from litestar.dto import DTOConfig
from msgspec import Meta, Struct

from backend.http.dto import FieldErrors, StrictMsgspecDTO
from backend.http.fields import check_text, clean_name, doc, in_utc
from backend.tasks.models import Priority

SortKey = Literal[
    "-created_at", "created_at", "-updated_at", "updated_at", "-due_at", "due_at",
    "-priority", "priority", "-title", "title", "-position", "position",
]  # fmt: skip
SORTABLE = tuple(k for k in get_args(SortKey) if not k.startswith("-"))
TITLE_MAX = 255
DESCRIPTION_MAX = 1000
TAG_MAX = 30
TAGS_MAX = 10


# Lengths are checked after trimming (in __post_init__), so they are documented rather than enforced here.
Title = Annotated[str, doc("Trimmed; 1-255 characters.", "Buy milk", min_length=1, max_length=TITLE_MAX)]
Description = Annotated[str, doc("At most 1000 characters.", "Two litres", max_length=DESCRIPTION_MAX)]
Tags = Annotated[
    list[str],
    doc(
        "At most 10 distinct tags of 1-30 characters; stored trimmed and lower-cased.",
        ["home"],
        max_items=TAGS_MAX,
        # Litestar documents no metadata of list items, so the item bounds are spelled out here.
        items={"type": "string", "minLength": 1, "maxLength": TAG_MAX},
    ),
]
DueAt = Annotated[datetime, Meta(tz=True), doc("RFC 3339 timestamp with a zone.", "2026-11-30T17:00:00Z")]


def clean_title(errors: FieldErrors, value: str) -> str:
    return clean_name(errors, "title", value, TITLE_MAX)


def clean_description(errors: FieldErrors, value: str | None) -> str | None:
    if value is None or not check_text(errors, "description", value):
        return value
    if len(value) > DESCRIPTION_MAX:
        errors.add("description", f"must be at most {DESCRIPTION_MAX} characters")
    return value


def clean_tags(errors: FieldErrors, value: list[str]) -> list[str]:
    tags = [t.strip().lower() for t in value]
    if len(tags) > TAGS_MAX:
        errors.add("tags", f"must hold at most {TAGS_MAX} tags")
    for i, tag in enumerate(tags):
        field = f"tags[{i}]"
        if check_text(errors, field, tag) and not 1 <= len(tag) <= TAG_MAX:
            errors.add(field, f"must be 1-{TAG_MAX} characters after trimming")
    if len(set(tags)) != len(tags):
        errors.add("tags", "must be distinct (compared trimmed and lower-cased)")
    return tags


class TaskWrite(Struct, kw_only=True):
    """The writable fields of a task; only ``title`` is required on create.

    Read-only fields (``id``, ``user_id``, ``completed_at``, ``created_at``, ``updated_at``, ``version``)
    are not part of it, so a body naming one is refused by name (the DTOs forbid unknown fields).
    """

    title: Title
    description: Description | None = None
    completed: Annotated[
        bool, doc("Done or not. Setting true sets completed_at; false clears it.", False)
    ] = False
    priority: Annotated[Priority, doc("low, medium or high.", "high")] = Priority.MEDIUM
    tags: Tags = msgspec.field(default_factory=list)
    due_at: DueAt | None = None
    list_id: Annotated[
        UUID | None,
        doc("The list it goes in; null: the inbox. A subtask is always in its parent's list.", None),
    ] = None
    parent_id: Annotated[
        UUID | None, doc("The task it is a step of (one level only); null: a top-level task.", None)
    ] = None

    def __post_init__(self) -> None:
        fields = {
            "title": self.title,
            "description": self.description,
            "tags": self.tags,
            "due_at": self.due_at,
        }
        cleaned = self.clean(fields)
        self.title, self.description, self.tags = cleaned["title"], cleaned["description"], cleaned["tags"]
        self.due_at = cleaned["due_at"]

    @classmethod
    def clean(cls, fields: dict[str, Any]) -> dict[str, Any]:
        """The given fields trimmed and checked (a partial update's too); FieldErrors lists every problem."""
        errors = FieldErrors()
        cleaned = dict(fields)
        if "title" in fields:
            cleaned["title"] = clean_title(errors, fields["title"])
        if "description" in fields:
            cleaned["description"] = clean_description(errors, fields["description"])
        if "tags" in fields:
            cleaned["tags"] = clean_tags(errors, fields["tags"])
        if "due_at" in fields:
            # Zone checked here too: the DTO's transfer model does not carry msgspec's ``tz`` over.
            cleaned["due_at"] = in_utc(errors, "due_at", fields["due_at"])
        errors.raise_if_any()
        return cleaned


class CompletedBody(Struct, forbid_unknown_fields=True):
    """Set ``completed`` explicitly."""

    completed: Annotated[bool, doc("The value to set.", True)]


class TaskMove(Struct, kw_only=True):
    """Where to put a task: right after the sibling ``after`` (null: first), in the group ``list_id`` and
    ``parent_id`` name (each left out: as it is now)."""

    after: Annotated[UUID | None, doc("The sibling to follow, or null to go first. Required.", None)] = None
    list_id: Annotated[
        UUID | None, doc("The destination list; null: the inbox. Left out: unchanged.", None)
    ] = None
    parent_id: Annotated[
        UUID | None, doc("The destination parent; null: top level. Left out: unchanged.", None)
    ] = None

    @classmethod
    def clean(cls, fields: dict[str, Any]) -> dict[str, Any]:
        errors = FieldErrors()
        if "after" not in fields:
            errors.add("after", "is required: the sibling to follow, or null to go first")
        errors.raise_if_any()
        return fields


class CompleteAllBody(Struct, forbid_unknown_fields=True):
    """Set ``completed`` on every task of the caller, or of one list."""

    completed: Annotated[bool, doc("The value to set.", True)]
    list_id: Annotated[str | None, doc("Only the tasks of this list (its id), or `inbox`.", "inbox")] = None


class TaskRead(Struct):
    """A task as the API returns it. The repository's SELECT list follows this field order (a row becomes
    a TaskRead positionally)."""

    id: Annotated[
        UUID, doc("Time-ordered UUIDv7, chosen by the server.", "0193f3c4-6a1e-7c2b-9a55-2f1e0c8d4b21")
    ]
    user_id: Annotated[str, doc("The owner: the token's subject.", "k3JZ8cQ1vO2p")]
    title: Title
    description: Description | None
    completed: Annotated[bool, doc("Done or not.", False)]
    completed_at: Annotated[
        datetime | None, doc("When the task became completed; null when it is not.", None)
    ]
    priority: Annotated[Priority, doc("low < medium < high.", "medium")]
    tags: Annotated[list[str], doc("Trimmed and lower-cased.", ["home"])]
    due_at: Annotated[datetime | None, doc("RFC 3339, UTC.", "2026-11-30T17:00:00Z")]
    created_at: Annotated[datetime, doc("RFC 3339, UTC.", "2026-11-21T10:00:00Z")]
    updated_at: Annotated[
        datetime, doc("RFC 3339, UTC; changes on every modification.", "2026-11-21T10:00:00Z")
    ]
    version: Annotated[int, doc("Starts at 1, +1 on every change; the ETag is its quoted value.", 1)]
    list_id: Annotated[UUID | None, doc("The list it is in; null: the inbox.", None)]
    parent_id: Annotated[UUID | None, doc("The task it is a subtask of; null: a top-level task.", None)]
    position: Annotated[
        str, doc("Its place among its siblings (same list_id and parent_id), compared byte by byte.", "a0")
    ]


class TaskStats(Struct):
    total: Annotated[int, doc("All the caller's tasks.", 12)]
    completed: Annotated[int, doc("Completed tasks.", 5)]
    active: Annotated[int, doc("Not completed.", 7)]
    overdue: Annotated[int, doc("Not completed and due in the past.", 2)]


class UpdatedCount(Struct):
    updated: Annotated[int, doc("Tasks whose `completed` changed.", 3)]


class DeletedCount(Struct):
    deleted: Annotated[int, doc("Completed tasks deleted.", 4)]


class TaskCreateDTO(StrictMsgspecDTO[TaskWrite]):
    """A new task: unknown and read-only fields refused by name."""

    config = DTOConfig(forbid_unknown_fields=True)


class TaskUpdateDTO(StrictMsgspecDTO[TaskWrite]):
    """The fields to change (``DTOData``): a field left out stays as it is, ``null`` clears a nullable one."""

    config = DTOConfig(partial=True, forbid_unknown_fields=True)


class TaskMoveDTO(StrictMsgspecDTO[TaskMove]):
    """The move's body (``DTOData``): ``list_id``/``parent_id`` left out keep the task's group."""

    config = DTOConfig(partial=True, forbid_unknown_fields=True)


class CompleteAllDTO(StrictMsgspecDTO[CompleteAllBody]):
    config = DTOConfig(forbid_unknown_fields=True)


class CompletedDTO(StrictMsgspecDTO[CompletedBody]):
    config = DTOConfig(forbid_unknown_fields=True)
