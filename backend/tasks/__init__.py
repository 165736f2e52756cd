"""Tasks: the resource. ``TaskController`` is its HTTP side; ``provide_tasks`` gives it a service."""

from __future__ import annotations

from advanced_alchemy.extensions.litestar.providers import create_service_provider

from backend.tasks.controller import TaskController
from backend.tasks.service import TaskService

# A TaskService per request, on the session AA's plugin opens for it (and closes after the response).
provide_tasks = create_service_provider(TaskService)

__all__ = ["TaskController", "TaskService", "provide_tasks"]
