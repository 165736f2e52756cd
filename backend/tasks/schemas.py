"""The wire contract: msgspec Structs for every request and response body."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args
from uuid import UUID

import msgspec
from litestar.dto import DTOConfig
from msgspec import Meta, Struct

from backend.http.dto import FieldErrors, StrictMsgspecDTO
from backend.tasks.models import Priority

SortKey = Literal[
    "-created_at", "created_at", "-updated_at", "updated_at", "-due_at", "due_at",
    "-priority", "priority", "-title", "title",
]  # fmt: skip
SORTABLE = tuple(k for k in get_args(SortKey) if not k.startswith("-"))
TITLE_MAX = 255
DESCRIPTION_MAX = 1000
TAG_MAX = 30
TAGS_MAX = 10


def _doc(description: str, example: Any = None, **extra: Any) -> Meta:
    schema: dict[str, Any] = {"description": description}
    if example is not None:
        schema["examples"] = [example]
    if extra:
        schema["extra"] = extra
    return Meta(extra_json_schema=schema)


# Lengths are checked after trimming (in __post_init__), so they are documented rather than enforced here.
Title = Annotated[str, _doc("Trimmed; 1-255 characters.", "Buy milk", min_length=1, max_length=TITLE_MAX)]
Description = Annotated[str, _doc("At most 1000 characters.", "Two litres", max_length=DESCRIPTION_MAX)]
Tags = Annotated[
    list[str],
    _doc(
        "At most 10 distinct tags of 1-30 characters; stored trimmed and lower-cased.",
        ["home"],
        max_items=TAGS_MAX,
        # Litestar documents no metadata of list items, so the item bounds are spelled out here.
        items={"type": "string", "minLength": 1, "maxLength": TAG_MAX},
    ),
]
DueAt = Annotated[datetime, Meta(tz=True), _doc("RFC 3339 timestamp with a zone.", "2026-11-30T17:00:00Z")]


def _check_text(errors: FieldErrors, field: str, value: str) -> bool:
    # PostgreSQL text cannot hold NUL; reject it here rather than fail in the driver.
    if "\x00" in value:
        errors.add(field, "must not contain NUL characters")
        return False
    return True


def clean_title(errors: FieldErrors, value: str) -> str:
    title = value.strip()
    if not _check_text(errors, "title", title):
        return title
    if not title:
        errors.add("title", "must not be blank")
    elif len(title) > TITLE_MAX:
        errors.add("title", f"must be at most {TITLE_MAX} characters after trimming")
    return title


def clean_description(errors: FieldErrors, value: str | None) -> str | None:
    if value is None or not _check_text(errors, "description", value):
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
        if _check_text(errors, field, tag) and not 1 <= len(tag) <= TAG_MAX:
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
        bool, _doc("Done or not. Setting true sets completed_at; false clears it.", False)
    ] = False
    priority: Annotated[Priority, _doc("low, medium or high.", "high")] = Priority.MEDIUM
    tags: Tags = msgspec.field(default_factory=list)
    due_at: DueAt | None = None

    def __post_init__(self) -> None:
        fields = {
            "title": self.title,
            "description": self.description,
            "tags": self.tags,
            "due_at": self.due_at,
        }
        cleaned = self.clean(fields)
        self.title, self.description, self.tags = cleaned["title"], cleaned["description"], cleaned["tags"]

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
        # Checked here too: the DTO's transfer model does not carry msgspec's ``tz`` constraint over.
        due_at = fields.get("due_at")
        if isinstance(due_at, datetime) and due_at.tzinfo is None:
            errors.add("due_at", "must be an RFC 3339 timestamp with a zone (Z or +01:00)")
        errors.raise_if_any()
        return cleaned


class CompletedBody(Struct, forbid_unknown_fields=True):
    """Set ``completed`` explicitly."""

    completed: Annotated[bool, _doc("The value to set.", True)]


class TaskRead(Struct):
    """A task as the API returns it. Field order matches the service's SELECT list."""

    id: Annotated[
        UUID, _doc("Time-ordered UUIDv7, chosen by the server.", "0193f3c4-6a1e-7c2b-9a55-2f1e0c8d4b21")
    ]
    user_id: Annotated[str, _doc("The owner: the token's subject.", "k3JZ8cQ1vO2p")]
    title: Title
    description: Description | None
    completed: Annotated[bool, _doc("Done or not.", False)]
    completed_at: Annotated[
        datetime | None, _doc("When the task became completed; null when it is not.", None)
    ]
    priority: Annotated[Priority, _doc("low < medium < high.", "medium")]
    tags: Annotated[list[str], _doc("Trimmed and lower-cased.", ["home"])]
    due_at: Annotated[datetime | None, _doc("RFC 3339, UTC.", "2026-11-30T17:00:00Z")]
    created_at: Annotated[datetime, _doc("RFC 3339, UTC.", "2026-11-21T10:00:00Z")]
    updated_at: Annotated[
        datetime, _doc("RFC 3339, UTC; changes on every modification.", "2026-11-21T10:00:00Z")
    ]
    version: Annotated[int, _doc("Starts at 1, +1 on every change; the ETag is its quoted value.", 1)]


class TaskStats(Struct):
    total: Annotated[int, _doc("All the caller's tasks.", 12)]
    completed: Annotated[int, _doc("Completed tasks.", 5)]
    active: Annotated[int, _doc("Not completed.", 7)]
    overdue: Annotated[int, _doc("Not completed and due in the past.", 2)]


class UpdatedCount(Struct):
    updated: Annotated[int, _doc("Tasks whose `completed` changed.", 3)]


class DeletedCount(Struct):
    deleted: Annotated[int, _doc("Completed tasks deleted.", 4)]


class TaskCreateDTO(StrictMsgspecDTO[TaskWrite]):
    """A new task: unknown and read-only fields refused by name."""

    config = DTOConfig(forbid_unknown_fields=True)


class TaskUpdateDTO(StrictMsgspecDTO[TaskWrite]):
    """The fields to change (``DTOData``): a field left out stays as it is, ``null`` clears a nullable one."""

    config = DTOConfig(partial=True, forbid_unknown_fields=True)


class CompletedDTO(StrictMsgspecDTO[CompletedBody]):
    config = DTOConfig(forbid_unknown_fields=True)
