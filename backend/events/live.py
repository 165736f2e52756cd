"""``LiveUpdates``: the hub, the listener and the exit hook of one worker, with its start and stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from backend.events.hub import Hub, Subscriber
from backend.events.listener import Listener, listen_connect_args
from backend.events.signals import on_exit_signal
from backend.settings import Settings

START_WAIT_SECONDS = 2.0


class LiveUpdates:
    """Create one per app; ``start`` goes in ``on_startup``, ``stop`` in ``on_shutdown``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hub = Hub()
        self.listener = Listener(listen_connect_args(settings), self.hub)
        self.hub.on_release = self.listener.release
        self._restore_signals: Callable[[], None] | None = None

    async def start(self) -> None:
        self.listener.start()
        # Normally the first LISTEN is up before the first request; a database that is down does not
        # hold the start-up (streams opened meanwhile get a resync once it is up).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(START_WAIT_SECONDS):
                await self.listener.connected.wait()
        self._restore_signals = on_exit_signal(self.hub.close_all)

    async def admit(self, subscriber: Subscriber, last_event_id: int | None = None) -> None:
        """Count the new stream against its user's limit on every worker and instance (429 past it; a
        reconnect with the Last-Event-ID of a stream of this worker takes its place). Without a database
        connection only this worker's count applies."""
        most = self.hub.streams_per_user
        admitted = await self.listener.admit(subscriber.id, subscriber.user_id, most)
        if admitted is False and self.hub.take_place_of_dead(subscriber, last_event_id):
            admitted = await self.listener.admit(subscriber.id, subscriber.user_id, most)
        if admitted is False:
            raise self.hub.too_many()
        subscriber.counted = admitted is True

    async def stop(self) -> None:
        self.hub.close_all()
        if self._restore_signals is not None:
            self._restore_signals()
            self._restore_signals = None
        await self.listener.stop()
