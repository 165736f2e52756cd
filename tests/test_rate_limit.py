"""RATE_LIMIT: per user once authenticated, per client IP before; in memory or shared through Redis."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from backend.ratelimit import MemoryCounter, client_bucket
from tests.support import ApiServer, Tokens, api_server, redis_server


def limited_env(api_env: dict[str, str], **extra: str) -> dict[str, str]:
    # Windows are fixed: a day-long one keeps a test from straddling a window boundary.
    return {**api_env, "RATE_LIMIT": "5/day", **extra}


async def stored_titles(database_url: str, user: str) -> list[str]:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        return [r["title"] for r in await conn.fetch("SELECT title FROM tasks WHERE user_id = $1", user)]
    finally:
        await conn.close()


def test_user_limit_429_with_headers(api_env: dict[str, str], database_url: str, tokens: Tokens) -> None:
    alice, bob = f"rl-alice-{uuid.uuid4().hex[:8]}", f"rl-bob-{uuid.uuid4().hex[:8]}"
    with api_server(limited_env(api_env)) as server:
        url = f"{server.url}/api/{alice}/tasks"
        created = httpx.post(url, json={"title": "within the limit"}, headers=tokens.headers(alice))
        assert created.status_code == 201
        remaining = [int(created.headers["RateLimit-Remaining"])]
        for _ in range(4):
            response = httpx.get(url, headers=tokens.headers(alice))
            assert response.status_code == 200
            assert response.headers["RateLimit-Limit"] == "5"
            remaining.append(int(response.headers["RateLimit-Remaining"]))
        assert remaining == [4, 3, 2, 1, 0]
        blocked = httpx.post(url, json={"title": "one too many"}, headers=tokens.headers(alice))
        assert blocked.status_code == 429
        assert blocked.headers["content-type"] == "application/problem+json"
        assert 0 < int(blocked.headers["Retry-After"]) <= 86_400
        assert blocked.headers["RateLimit-Remaining"] == "0"
        assert blocked.json()["status"] == 429
        # Nothing was created by the refused request (the user cannot look: ask the database)...
        assert asyncio.run(stored_titles(database_url, alice)) == ["within the limit"]
        # ...and another user is not affected.
        other = httpx.get(f"{server.url}/api/{bob}/tasks", headers=tokens.headers(bob))
        assert other.status_code == 200


def test_unauthenticated_requests_count_per_ip(api_env: dict[str, str], tokens: Tokens) -> None:
    with api_server(limited_env(api_env)) as server:
        url = f"{server.url}/api/rl-carol/tasks"
        statuses = [httpx.get(url, headers={"Authorization": "Bearer junk"}).status_code for _ in range(7)]
        assert statuses == [401] * 5 + [429] * 2
        # A caller with a valid token is counted as a user, not as the busy IP.
        assert httpx.get(url, headers=tokens.headers("rl-carol")).status_code == 200


def test_forwarded_for_is_believed_only_from_trusted_proxies(api_env: dict[str, str]) -> None:
    def failures(server: ApiServer, client: str) -> list[int]:
        headers = {"Authorization": "Bearer junk", "X-Forwarded-For": client}
        return [httpx.get(f"{server.url}/api/x/tasks", headers=headers).status_code for _ in range(3)]

    # No trusted proxy: the header is the client's own claim and is ignored.
    with api_server(limited_env(api_env, RATE_LIMIT="3/day", FORWARDED_ALLOW_IPS="")) as server:
        assert failures(server, "198.51.100.1") == [401, 401, 401]
        assert failures(server, "198.51.100.2") == [429, 429, 429]
    # Behind a trusted proxy (here: loopback), each forwarded client has its own bucket.
    with api_server(limited_env(api_env, RATE_LIMIT="3/day", FORWARDED_ALLOW_IPS="127.0.0.1")) as server:
        assert failures(server, "198.51.100.1") == [401, 401, 401]
        assert failures(server, "198.51.100.2") == [401, 401, 401]
        assert failures(server, "198.51.100.1") == [429, 429, 429]


def test_ipv6_clients_share_a_bucket_per_64(api_env: dict[str, str]) -> None:
    def failures(server: ApiServer, client: str, n: int) -> list[int]:
        headers = {"Authorization": "Bearer junk", "X-Forwarded-For": client}
        return [httpx.get(f"{server.url}/api/x/tasks", headers=headers).status_code for _ in range(n)]

    env = limited_env(api_env, RATE_LIMIT="3/day", FORWARDED_ALLOW_IPS="127.0.0.1")
    with api_server(env) as server:
        assert failures(server, "2001:db8:1:2::1", 2) == [401, 401]
        # Another address of the same /64: the same client, the same bucket.
        assert failures(server, "2001:db8:1:2:ffff:ffff:ffff:fffe", 2) == [401, 429]
        # The next /64 is someone else; IPv4 clients count per address.
        assert failures(server, "2001:db8:1:3::1", 1) == [401]
        assert failures(server, "198.51.100.7", 1) == [401]


@pytest.mark.parametrize(
    ("host", "bucket"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:ffff::9", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("", "unknown"),
    ],
)
def test_client_buckets(host: str, bucket: str) -> None:
    assert client_bucket(host) == bucket


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def hit(counter: MemoryCounter, key: str, window: int = 60) -> int:
    return asyncio.run(counter.hit(key, window))


def test_memory_counter_counts_per_fixed_window() -> None:
    clock = Clock(1_000_040.0)  # 20 s into a minute window (they start at multiples of 60 s)
    counter = MemoryCounter(clock=clock)
    assert [hit(counter, "a") for _ in range(3)] == [1, 2, 3]
    assert hit(counter, "b") == 1
    clock.now += 40  # the next window
    assert hit(counter, "a") == 1


async def _fill(counter: MemoryCounter, n: int, prefix: str = "k") -> None:
    for i in range(n):
        await counter.hit(f"{prefix}{i}", 60)


def test_memory_counter_with_many_keys_never_rebuilds_or_scans() -> None:
    """Past 100,000 live keys each hit still adds one entry and drops at most ``DRAIN_PER_HIT``
    finished ones: no pass over the whole map (the old counter rebuilt it on every call there)."""
    clock = Clock()
    counter = MemoryCounter(max_keys=300_000, clock=clock)
    asyncio.run(_fill(counter, 120_000))
    entries = counter._entries
    assert len(counter) == 120_000
    asyncio.run(_fill(counter, 10, prefix="more"))
    assert len(counter) == 120_010  # every window still running: nothing dropped
    assert counter._entries is entries  # the same map, not a rebuilt copy
    clock.now += 60  # every window has ended
    hit(counter, "new")
    assert len(counter) == 120_011 - MemoryCounter.DRAIN_PER_HIT  # dropped a few, not all
    assert counter._entries is entries
    # The finished windows go a few per hit, oldest first, while the new ones stay.
    asyncio.run(_fill(counter, 20_000, prefix="next"))
    assert len(counter) == 120_011 + 20_000 - MemoryCounter.DRAIN_PER_HIT * 20_001
    assert "k0" not in counter._entries
    assert "k119999" in counter._entries
    asyncio.run(_fill(counter, 20_000, prefix="last"))
    assert len(counter) == 1 + 40_000  # every finished window gone; every running one kept
    assert "new" in counter._entries


def test_memory_counter_memory_is_capped() -> None:
    clock = Clock()
    counter = MemoryCounter(max_keys=1_000, clock=clock)
    asyncio.run(_fill(counter, 5_000))  # a flood of clients all in one window
    assert len(counter) == 1_000
    assert counter.evicted == 4_000
    # The most recent clients are still counted; the oldest were forgotten (they start again).
    assert hit(counter, "k4999") == 2
    assert hit(counter, "k0") == 1


def test_instances_share_counters_through_redis(api_env: dict[str, str], tokens: Tokens) -> None:
    with redis_server() as redis_url:
        env = limited_env(api_env, REDIS_URL=redis_url)
        with api_server(env) as first, api_server(env) as second:
            headers = tokens.headers("rl-dave")
            statuses = [
                httpx.get(f"{server.url}/api/rl-dave/tasks", headers=headers).status_code
                for server in (first, second, first, second, first, second)
            ]
            assert statuses == [200] * 5 + [429]


def test_rate_limit_zero_turns_it_off(api_env: dict[str, str], tokens: Tokens) -> None:
    with api_server(limited_env(api_env, RATE_LIMIT="0")) as server:
        for _ in range(8):
            response = httpx.get(f"{server.url}/api/rl-erin/tasks", headers=tokens.headers("rl-erin"))
            assert response.status_code == 200
            assert "RateLimit-Limit" not in response.headers
