"""``create_app()``: wiring only."""

from __future__ import annotations

import gc

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar, Router
from litestar.di import Provide
from litestar.types import ASGIApp

from backend.auth import TokenVerifier, owner_guard
from backend.cli import TasksCLIPlugin
from backend.db import database_config
from backend.errors import exception_handlers
from backend.events import EventController, LiveUpdates
from backend.health import health, ready
from backend.http.admission import Admission
from backend.http.cors import cors_config, problem_preflights
from backend.http.head import head_as_get
from backend.http.idempotency import exception_handlers as idempotency_handlers
from backend.http.openapi import openapi_config
from backend.http.query import strict_query
from backend.http.wrapping import WrappedLitestar
from backend.lists import ListController, provide_lists
from backend.observability import configure_logging, request_context
from backend.ratelimit import MemoryCounter, RateLimiter, RedisCounter, add_rate_limit_headers, parse_rate
from backend.settings import ConfigError, Settings, load_settings
from backend.sync import SyncController, provide_sync
from backend.tasks import TaskController, provide_tasks

MAX_BODY_BYTES = 64 * 1024


def rate_limiter(settings: Settings) -> RateLimiter | None:
    rate = parse_rate(settings.rate_limit)
    if rate is None:
        return None
    counter = RedisCounter(settings.redis_url) if settings.redis_url else MemoryCounter()
    return RateLimiter(*rate, counter=counter)


# Collect the youngest generation after this many net new container objects, not CPython's 700: a
# request's objects are nearly all freed by reference counting, so at 700 the collector ran ~60 times
# a second under load, promoting the objects of requests in flight to older generations, and the full
# passes then walked every open event stream's objects too (1,000 streams: ~145,000 objects, a
# 110-130 ms stall twice every 5 s). At 10,000 it runs a few times a minute, and cyclic garbage waits
# for at most 10,000 objects. Measured on CPython 3.11 (bench/results/2026-12-03_gc_threshold.md); 3.14's
# incremental collector reads the threshold differently: measure again before relying on it there.
GC_YOUNG_THRESHOLD = 10_000


def _tune_garbage_collector() -> None:
    # Routes, schemas and modules live as long as the process: keep them out of every later
    # garbage-collection pass (a full pass over them stalls all requests in flight).
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the application; without ``settings`` they are loaded from the environment."""
    configure_logging()
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError as exc:
            raise SystemExit(f"Tasks API configuration error: {exc}") from None
    verifier = TokenVerifier(settings)
    limiter = rate_limiter(settings)
    db = database_config(settings)
    live = LiveUpdates(settings)
    door = Admission.from_settings(settings)
    api = Router(
        path="/",
        guards=[owner_guard(verifier, limiter), strict_query],
        middleware=[door.refusal] if door else [],
        dependencies={
            "tasks": Provide(provide_tasks(settings.tasks_max_per_user)),
            "lists": Provide(provide_lists(settings.lists_max_per_user)),
            "sync": Provide(provide_sync),
            # One live-updates hub per worker, like the engine.
            "live": Provide(lambda: live, use_cache=True, sync_to_thread=False),
        },
        route_handlers=[TaskController, ListController, SyncController, EventController],
    )
    return WrappedLitestar(
        # Around everything Litestar does (routing 404s, CORS, exception handling included), so every
        # response gets a request id, the security headers and an access-log line.
        around=lambda app: _outer_layers(app, door),
        route_handlers=[api, health, ready],
        plugins=[SQLAlchemyPlugin(config=db), TasksCLIPlugin(settings)],
        exception_handlers={**exception_handlers, **idempotency_handlers},
        openapi_config=openapi_config(),
        cors_config=cors_config(settings),
        request_max_body_size=MAX_BODY_BYTES,
        before_send=[add_rate_limit_headers] if limiter else [],
        on_startup=[live.start, _tune_garbage_collector],
        on_shutdown=[live.stop, verifier.aclose, *([limiter.aclose] if limiter else [])],
        debug=False,
    )


def _outer_layers(app: ASGIApp, door: Admission | None) -> ASGIApp:
    inner = problem_preflights(head_as_get(app))
    return request_context(door.door(inner) if door else inner)
