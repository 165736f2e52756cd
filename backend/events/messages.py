"""What goes on the wire: each ``task_events`` row as one Server-Sent Events message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from backend.tasks.schemas import TaskRead

EventType = Literal["task.created", "task.updated", "task.deleted", "tasks.changed"]
TASK_EVENTS = ("task.created", "task.updated")


@dataclass(frozen=True, slots=True)
class Message:
    """One SSE message, encoded once for every stream of its user; ``id`` is None for control messages."""

    id: int | None
    frame: bytes


class _Deleted(msgspec.Struct):
    id: str
    version: int


class _Changed(msgspec.Struct):
    action: str
    count: int


def _control(name: str) -> Message:
    data = msgspec.json.encode({"type": name})
    return Message(None, b"event: %s\ndata: %s\n\n" % (name.encode(), data))


RESYNC = _control("resync")
TOKEN_EXPIRED = _control("token-expired")
PING = b": ping\n\n"
# Sent first: the response starts at once (clients see the stream open) and says how soon to reconnect.
HELLO = b"retry: 2000\n: connected\n\n"

_TIMESTAMPS = ("completed_at", "due_at", "created_at", "updated_at")


def _utc(task: TaskRead) -> TaskRead:
    # row_to_json writes timestamps in the writing session's TimeZone (SQL run by hand may use any):
    # the API always answers in UTC.
    for name in _TIMESTAMPS:
        value: datetime | None = getattr(task, name)
        if value is not None and value.utcoffset():
            setattr(task, name, value.astimezone(UTC))
    return task


def encode(event_id: int, event_type: str, data: str | bytes) -> Message | None:
    """The message for one outbox row (``data`` is its JSON column); None for a type this version does
    not know (a newer instance may write one)."""
    body: dict[str, Any]
    if event_type in TASK_EVENTS:
        # The row as the trigger saw it, decoded into the Struct GET answers with: the same format.
        body = {"type": event_type, "task": _utc(msgspec.json.decode(data, type=TaskRead))}
    elif event_type == "task.deleted":
        deleted = msgspec.json.decode(data, type=_Deleted)
        body = {"type": event_type, "id": deleted.id, "version": deleted.version}
    elif event_type == "tasks.changed":
        changed = msgspec.json.decode(data, type=_Changed)
        body = {"type": event_type, "action": changed.action, "count": changed.count}
    else:
        return None
    frame = b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, event_type.encode(), msgspec.json.encode(body))
    return Message(event_id, frame)
