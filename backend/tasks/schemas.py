"""The wire contract: msgspec Structs for every request and response body."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from backend.body import FieldErrors
from backend.tasks.models import Priority

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


class TaskCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    """A new task. Only ``title`` is required."""

    title: Title
    description: Description | None = None
    completed: Annotated[bool, _doc("Done or not.", False)] = False
    priority: Annotated[Priority, _doc("low, medium or high.", "high")] = Priority.MEDIUM
    tags: Tags = msgspec.field(default_factory=list)
    due_at: DueAt | None = None

    def __post_init__(self) -> None:
        errors = FieldErrors()
        self.title = clean_title(errors, self.title)
        self.description = clean_description(errors, self.description)
        self.tags = clean_tags(errors, self.tags)
        errors.raise_if_any()


class TaskUpdate(Struct, forbid_unknown_fields=True, kw_only=True):
    """The fields to change; a field left out stays as it is, ``null`` clears a nullable one."""

    title: Title | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    completed: Annotated[bool, _doc("Setting true sets completed_at; false clears it.", True)] | UnsetType = (
        UNSET
    )
    priority: Annotated[Priority, _doc("low, medium or high.", "low")] | UnsetType = UNSET
    tags: Tags | UnsetType = UNSET
    due_at: DueAt | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        errors = FieldErrors()
        if self.title is not UNSET:
            self.title = clean_title(errors, self.title)
        if self.description is not UNSET:
            self.description = clean_description(errors, self.description)
        if self.tags is not UNSET:
            self.tags = clean_tags(errors, self.tags)
        errors.raise_if_any()

    def changes(self) -> dict[str, Any]:
        """The given fields, by column name."""
        return {f: v for f in self.__struct_fields__ if (v := getattr(self, f)) is not UNSET}


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
