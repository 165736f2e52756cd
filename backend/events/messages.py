"""What goes on the wire: each ``task_events`` row as one Server-Sent Events message.

Generic over the resources: each resource registers its kind and the Struct its GET answers with
(``register_event_resource("task", TaskRead)``, from its package), and then ``<kind>.created`` and
``<kind>.updated`` carry the row decoded into that Struct, ``<kind>.deleted`` its id and version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

# kind -> the Struct its rows decode into (the row has every column; fields the Struct lacks are ignored).
_READ_TYPES: dict[str, type[msgspec.Struct]] = {}


def register_event_resource(kind: str, read_type: type[msgspec.Struct]) -> None:
    """Send ``<kind>.created/updated`` with the row as ``read_type``, and ``<kind>.deleted``."""
    _READ_TYPES[kind] = read_type


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


def _utc(row: msgspec.Struct) -> msgspec.Struct:
    # row_to_json writes timestamps in the writing session's TimeZone (SQL run by hand may use any):
    # the API always answers in UTC.
    for name in row.__struct_fields__:
        value = getattr(row, name)
        if isinstance(value, datetime) and value.utcoffset():
            setattr(row, name, value.astimezone(UTC))
    return row


def encode(event_id: int, event_type: str, data: str | bytes) -> Message | None:
    """The message for one outbox row (``data`` is its JSON column); None for a type this version does
    not know (a newer instance may write one)."""
    body: dict[str, Any]
    kind, _, change = event_type.partition(".")
    read_type = _READ_TYPES.get(kind)
    if read_type is not None and change in ("created", "updated"):
        # The row as the trigger saw it, decoded into the Struct GET answers with: the same format.
        body = {"type": event_type, kind: _utc(msgspec.json.decode(data, type=read_type))}
    elif read_type is not None and change == "deleted":
        deleted = msgspec.json.decode(data, type=_Deleted)
        body = {"type": event_type, "id": deleted.id, "version": deleted.version}
    elif event_type == "tasks.changed":
        changed = msgspec.json.decode(data, type=_Changed)
        body = {"type": event_type, "action": changed.action, "count": changed.count}
    else:
        return None
    frame = b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, event_type.encode(), msgspec.json.encode(body))
    return Message(event_id, frame)
