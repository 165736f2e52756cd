"""``GET /api/{user_id}/events``: the caller's task changes as Server-Sent Events."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter, QueryParameter

from backend.errors import PROBLEM_JSON, Problem, problem_responses
from backend.events.live import LiveUpdates
from backend.events.stream import EventStream, messages, parse_last_event_id
from backend.http.admission import LONG_LIVED
from backend.http.routes import get

_DESCRIPTION = """\
Keeps the connection open and sends one event per change of the caller's tasks, made through any
instance of the API (or by SQL): only changes that committed, and every one of them.

```
id: 42
event: task.updated
data: {"type":"task.updated","task":{...the whole task, as GET returns it...}}
```

- `task.created`: a task was created. `data`: `{"type", "task"}`.
- `task.updated`: any change of one task. `data`: `{"type", "task"}`.
- `task.deleted`: one task deleted. `data`: `{"type", "id", "version"}` (the version it had).
- `tasks.changed`: complete-all or clear-completed changed two or more tasks at once. `data`:
  `{"type", "action": "complete-all" | "clear-completed", "count"}`: refetch.
- `resync`: events may have been missed (`Last-Event-ID` too old, the server's database listener
  reconnected, the client read too slowly). `data`: `{"type": "resync"}`: refetch the list.
- `token-expired`: the token's `exp` (plus the leeway) has passed; the stream then closes.
  `data`: `{"type": "token-expired"}`: reconnect with a fresh token.

`id` counts the caller's own events, one by one (other users' changes never move it), so it
increases within a stream; `resync` and `token-expired` carry none. Events of one task arrive in
version order. A `: ping` comment comes at least every 15 seconds. On reconnect, `Last-Event-ID` (sent
by `EventSource` by itself) gives the events missed since, or `resync` when they are no longer kept
(15 minutes). At most 5 open streams per user; a client that does not read is cut off after a
`resync`. Browsers' `EventSource` cannot send headers: this route alone also takes the token
as `?access_token=`.
"""


def _responses() -> dict[int, ResponseSpec]:
    responses = problem_responses()
    responses[429] = ResponseSpec(
        data_container=Problem,
        description="Rate limited (see `Retry-After`), or the user already has 5 open event streams",
        media_type=PROBLEM_JSON,
    )
    return responses


def token_expires_at(request: Request[Any, Any, Any]) -> float | None:
    """When the stream's token stops being valid (epoch seconds, leeway included), as the guard found."""
    expires_at = request.scope.get("state", {}).get("token_expires_at")
    return float(expires_at) if isinstance(expires_at, (int, float)) else None


class EventController(Controller):
    path = "/api/{user_id:str}/events"
    tags = ["live updates"]
    security = [{"BearerAuth": []}]

    @get(
        "/",
        summary="Stream the caller's task changes (Server-Sent Events)",
        description=_DESCRIPTION,
        media_type="text/event-stream",
        response_description="`text/event-stream`: `task.created`, `task.updated`, `task.deleted`, "
        "`tasks.changed`, `resync`, `token-expired` events and `: ping` comments.",
        responses=_responses(),
        # Read by the owner guard: EventSource cannot send an Authorization header.
        # A stream waits for events, not for a pool connection: it is never refused at the door (a 503
        # would make EventSource give up for good), and it gives its place back once it has started.
        opt={"token_in_query": True, LONG_LIVED: True},
        cache=False,
    )
    async def stream_task_events(
        self,
        request: Request[Any, Any, Any],
        live: NamedDependency[LiveUpdates],
        user_id: FromPath[str],
        last_event_id: Annotated[
            str | None,
            HeaderParameter(
                name="Last-Event-ID",
                description="The last `id` received: the events after it are sent first, or `resync`.",
            ),
        ] = None,
        access_token: Annotated[
            str | None,
            QueryParameter(
                name="access_token",
                description="The bearer token, for clients that cannot send headers (`EventSource`). "
                "Never logged.",
            ),
        ] = None,
    ) -> EventStream:
        after = parse_last_event_id(last_event_id)
        subscriber = await live.subscribe(user_id, token_expires_at(request), after)
        if after is not None:
            subscriber.hold(max(after, 0))
        try:
            await live.admit(subscriber, after)
            # Before the first byte: from then on a change that commits must reach this stream.
            await live.listener.listen()
            content = messages(subscriber, live.listener, after)
            return EventStream(live.hub, subscriber, content)
        except BaseException:
            live.hub.unsubscribe(subscriber)
            raise
