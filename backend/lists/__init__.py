"""Lists: the cold resource, on Advanced Alchemy's own service methods. ``ListController`` is its HTTP
side; ``provide_lists`` gives it a service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from advanced_alchemy.extensions.litestar.providers import create_service_provider

from backend.events.messages import register_event_resource
from backend.lists.controller import ListController
from backend.lists.schemas import ListRead
from backend.lists.service import ListService

# Live updates send list.created/list.updated with the list as GET answers it.
register_event_resource("list", ListRead)


def provide_lists(quota: int) -> Callable[..., Any]:
    """A ListService per request on the request's session, with this app's list quota."""
    return create_service_provider(ListService.with_quota(quota))


__all__ = ["ListController", "ListService", "provide_lists"]
