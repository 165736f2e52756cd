"""Live updates: ``GET /api/{user_id}/events``, a Server-Sent Events stream of the caller's task changes.

The database announces every committed change (triggers of migration 0005 write ``task_events`` and
``NOTIFY``); one ``LISTEN`` connection per worker (:mod:`.listener`) fans the events out by user
(:mod:`.hub`) to the open streams (:mod:`.stream`, :mod:`.controller`). :class:`LiveUpdates` wires them.
"""

from backend.events.controller import EventController
from backend.events.live import LiveUpdates

__all__ = ["EventController", "LiveUpdates"]
