"""RATE_LIMIT: per user once authenticated, per client IP before; in memory or shared through Redis."""

from __future__ import annotations

import httpx

from tests.support import ApiServer, Tokens, api_server, redis_server


def limited_env(api_env: dict[str, str], **extra: str) -> dict[str, str]:
    # Windows are fixed: a day-long one keeps a test from straddling a window boundary.
    return {**api_env, "RATE_LIMIT": "5/day", **extra}


def test_user_limit_429_with_headers(api_env: dict[str, str], tokens: Tokens) -> None:
    with api_server(limited_env(api_env)) as server:
        url = f"{server.url}/api/rl-alice/tasks"
        remaining = []
        for _ in range(5):
            response = httpx.get(url, headers=tokens.headers("rl-alice"))
            assert response.status_code == 200
            assert response.headers["RateLimit-Limit"] == "5"
            remaining.append(int(response.headers["RateLimit-Remaining"]))
        assert remaining == [4, 3, 2, 1, 0]
        blocked = httpx.post(url, json={"title": "one too many"}, headers=tokens.headers("rl-alice"))
        assert blocked.status_code == 429
        assert blocked.headers["content-type"] == "application/problem+json"
        assert 0 < int(blocked.headers["Retry-After"]) <= 86_400
        assert blocked.headers["RateLimit-Remaining"] == "0"
        assert blocked.json()["status"] == 429
        # Nothing was created by the refused request, and another user is not affected.
        other = httpx.get(f"{server.url}/api/rl-bob/tasks", headers=tokens.headers("rl-bob"))
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
