"""Sync: every change of the caller's lists and tasks since a cursor."""

from __future__ import annotations

from backend.sync.controller import SyncController
from backend.sync.service import provide_sync

__all__ = ["SyncController", "provide_sync"]
