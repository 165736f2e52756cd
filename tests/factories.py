"""Valid task payloads from polyfactory, kept inside the contract's bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from polyfactory import Use
from polyfactory.factories.msgspec_factory import MsgspecFactory

from backend.tasks.schemas import TaskWrite


class TaskWriteFactory(MsgspecFactory[TaskWrite]):
    title = Use(lambda: MsgspecFactory.__faker__.sentence(nb_words=4).rstrip("."))
    description = Use(lambda: MsgspecFactory.__random__.choice([None, MsgspecFactory.__faker__.text(200)]))
    completed = False
    # In the inbox, top level: a list or a parent must be one of the caller's (tests make their own).
    list_id = None
    parent_id = None
    tags = Use(
        lambda: sorted(
            {MsgspecFactory.__faker__.word().lower() for _ in range(MsgspecFactory.__random__.randint(0, 3))}
        )
    )
    due_at = Use(
        lambda: MsgspecFactory.__random__.choice(
            [
                None,
                datetime.now(UTC).replace(microsecond=0)
                + timedelta(days=MsgspecFactory.__random__.randint(-5, 30)),
            ]
        )
    )


def task_payload(**overrides: Any) -> dict[str, Any]:
    """A JSON-ready body for POST /tasks."""
    body: dict[str, Any] = msgspec.to_builtins(TaskWriteFactory.build())
    body.update(overrides)
    return body
