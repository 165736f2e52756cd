"""Fixed-window rate limits: per user once authenticated, per client IP before.

Counters live in memory (one process) or in Redis (``REDIS_URL``), so several instances share them.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.types import Message, Scope

logger = logging.getLogger(__name__)

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
_WINDOWS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_STATE_KEY = "rate_limit_headers"


def parse_rate(value: str) -> tuple[int, int] | None:
    """``"600/minute"`` -> (600, 60); ``"0"`` -> None (off). Raises ValueError on anything else."""
    if value.strip() == "0":
        return None
    match = _RATE.match(value)
    if not match or int(match.group(1)) < 1:
        raise ValueError("RATE_LIMIT must look like 600/minute (second, minute, hour, day) or be 0")
    return int(match.group(1)), _WINDOWS[match.group(2)]


class Counter(Protocol):
    async def hit(self, key: str, window: int) -> int:
        """Count one hit of ``key`` in the current ``window``-second window; return the count so far."""
        ...

    async def aclose(self) -> None: ...


class MemoryCounter:
    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, int]] = {}  # key -> (window number, count)

    async def hit(self, key: str, window: int) -> int:
        current = int(time.time()) // window
        number, count = self._counts.get(key, (current, 0))
        count = count + 1 if number == current else 1
        self._counts[key] = (current, count)
        if len(self._counts) > 100_000:  # forget finished windows now and then
            self._counts = {k: v for k, v in self._counts.items() if v[0] == current}
        return count

    async def aclose(self) -> None:
        pass


class RedisCounter:
    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)

    async def hit(self, key: str, window: int) -> int:
        bucket = f"tasks:rl:{key}:{int(time.time()) // window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(bucket)
            pipe.expire(bucket, window + 1)
            count, _ = await pipe.execute()
        return int(count)

    async def aclose(self) -> None:
        await self._redis.aclose()


@dataclass
class RateLimiter:
    limit: int
    window: int
    counter: Counter

    async def check(self, connection: ASGIConnection[Any, Any, Any, Any], identity: str) -> None:
        """Count a request for ``identity``; 429 past the limit. The headers go on the response too."""
        try:
            count = await self.counter.hit(identity, self.window)
        except Exception as exc:  # a limiter outage must not take the API down with it
            logger.warning("rate limiter unavailable, letting the request through: %s", exc)
            return
        reset = self.window - int(time.time()) % self.window
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(self.limit - count, 0)),
            "RateLimit-Reset": str(reset),
            "RateLimit-Policy": f"{self.limit};w={self.window}",
        }
        connection.scope.setdefault("state", {})[_STATE_KEY] = headers
        if count > self.limit:
            raise HTTPException(
                status_code=429,
                detail=f"Too many requests: at most {self.limit} per {self.window} s",
                headers={**headers, "Retry-After": str(reset)},
            )

    @staticmethod
    def client_ip(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        """The client address as the ASGI server reports it.

        uvicorn takes it from ``X-Forwarded-For`` only when the peer is one of ``FORWARDED_ALLOW_IPS``
        (default: this host), so a client cannot pick its own rate-limit bucket.
        """
        return connection.client.host if connection.client else "unknown"

    async def aclose(self) -> None:
        await self.counter.aclose()


async def add_rate_limit_headers(message: Message, scope: Scope) -> None:
    """``before_send`` hook: the counters' state on every limited response."""
    if message["type"] == "http.response.start":
        headers = scope.get("state", {}).get(_STATE_KEY)
        if headers:
            existing = {k.lower() for k, _ in message.get("headers", [])}
            extra = [
                (k.lower().encode(), v.encode())
                for k, v in headers.items()
                if k.lower().encode() not in existing
            ]
            message["headers"] = [*message.get("headers", []), *extra]
