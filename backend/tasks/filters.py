"""The listing's query: filters, sort and page, checked and normalised."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar.exceptions import ValidationException
from msgspec import Meta

from backend.http.dto import FieldErrors
from backend.http.fields import TIMESTAMP_MESSAGE, in_utc
from backend.tasks.models import Priority
from backend.tasks.schemas import TAG_MAX, SortKey

Status = Literal["all", "active", "completed"]
AwareDatetime = Annotated[datetime, Meta(tz=True)]
# The parameters a page link carries over: everything that selects or orders, nothing else.
FILTER_PARAMS = (
    "completed", "status", "priority", "tag", "q", "due_before", "due_after", "list_id", "parent_id", "sort",
)  # fmt: skip
INBOX, TOP_LEVEL = "inbox", "none"


def group_filter(errors: FieldErrors, field: str, value: str | None, word: str) -> UUID | str | None:
    """``list_id``/``parent_id`` as a query value: an id, or ``word`` (inbox, none) for the null group."""
    if value is None or value == word:
        return value
    try:
        return UUID(value)
    except ValueError:
        errors.add(field, f"must be an id (a UUID) or {word}")
        return None


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """The listing's filters, sort and page, already validated."""

    completed: bool | None = None
    priority: Priority | None = None
    tag: str | None = None
    q: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    list_id: UUID | str | None = None
    parent_id: UUID | str | None = None
    sort: SortKey = "-created_at"
    limit: int = 100
    offset: int = 0

    def params(self, user_id: str) -> dict[str, Any]:
        q = self.q and "%" + self.q.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
        return {
            "owner": user_id,
            "completed": self.completed,
            "priority": self.priority and self.priority.value,
            "tag": [self.tag],
            "q": q,
            "due_before": self.due_before,
            "due_after": self.due_after,
            "list_id": self.list_id if isinstance(self.list_id, UUID) else None,
            "parent_id": self.parent_id if isinstance(self.parent_id, UUID) else None,
            "limit": self.limit,
            "offset": self.offset,
        }

    @property
    def shape(self) -> tuple[object, ...]:
        """Which filters are present (and for a group, an id or the null group): statements are compiled
        once per shape."""
        values = (self.completed, self.priority, self.tag, self.q, self.due_before, self.due_after)
        groups = tuple("id" if isinstance(v, UUID) else v for v in (self.list_id, self.parent_id))
        return (*(v is not None for v in values), *groups)

    @classmethod
    def build(
        cls,
        *,
        completed: bool | None,
        status: Status | None,
        priority: Priority | None,
        tag: str | None,
        q: str | None,
        due_before: str | None,
        due_after: str | None,
        list_id: str | None = None,
        parent_id: str | None = None,
        sort: SortKey,
        limit: int,
        offset: int,
    ) -> TaskFilter:
        """Checks that Litestar's parameter parsing cannot express, every problem reported at once."""
        errors = FieldErrors()
        from_status = {"all": None, "active": False, "completed": True, None: None}[status]
        if completed is not None and status not in (None, "all") and completed != from_status:
            errors.add("status", "contradicts completed")
        due: dict[str, datetime | None] = {}
        for name, value in (("due_before", due_before), ("due_after", due_after)):
            try:
                # Strict: a bare number is not a timestamp here, and the zone is required.
                parsed = None if value is None else msgspec.convert(value, AwareDatetime, strict=True)
            except msgspec.ValidationError:
                errors.add(name, TIMESTAMP_MESSAGE)
            else:
                due[name] = in_utc(errors, name, parsed)
        # Compared as stored: trimmed and lower-cased, and 1-30 characters *after* that ("İ" lower-cases
        # to two characters).
        tag = tag.strip().lower() if tag is not None else None
        if tag is not None and not 1 <= len(tag) <= TAG_MAX:
            errors.add("tag", f"must be 1-{TAG_MAX} characters after trimming")
        for name, text in (("q", q), ("tag", tag)):
            if text and "\x00" in text:
                errors.add(name, "must not contain NUL characters")
        groups = {
            "list_id": group_filter(errors, "list_id", list_id, INBOX),
            "parent_id": group_filter(errors, "parent_id", parent_id, TOP_LEVEL),
        }
        if errors.errors:
            raise ValidationException(detail="Invalid query parameters", extra=errors.errors)
        return cls(
            completed=completed if completed is not None else from_status,
            priority=priority,
            tag=tag,
            q=q,
            due_before=due.get("due_before"),
            due_after=due.get("due_after"),
            **groups,
            sort=sort,
            limit=limit,
            offset=offset,
        )
