"""End to end with a real Better Auth server: the JWTs it mints drive the API, nothing is faked.

Needs Node.js (see ``tests/better_auth.py``); without it these tests fail with a clear message
rather than being skipped. One Better Auth server per configuration, each on a fresh database.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from tests.better_auth import BetterAuthServer
from tests.factories import task_payload
from tests.support import ROOT, ApiServer, api_server, create_database, with_database

PASSWORD = "correct horse battery staple"


def fresh_auth_database(admin_url: str) -> str:
    """A new, empty database for one Better Auth server, as a plain ``postgresql://`` URL."""
    name = f"better_auth_{uuid.uuid4().hex[:10]}"
    asyncio.run(create_database(admin_url, name))
    return with_database(admin_url, name).replace("postgresql+asyncpg://", "postgresql://", 1)


def api_env(database_url: str, auth: BetterAuthServer) -> dict[str, str]:
    """JWKS only: the empty values override whatever ``.env`` (read from the repo root) says."""
    return {
        "DATABASE_URL": database_url,
        "JWT_JWKS_URL": auth.jwks_url,
        "JWT_ISSUER": auth.base_url,
        "JWT_AUDIENCE": auth.base_url,
        "JWT_SECRET": "",
        "JWT_ALGORITHMS": "",
        "JWT_USER_CLAIM": "",
    }


@contextmanager
def run_auth(admin_url: str, **config: Any) -> Iterator[BetterAuthServer]:
    with BetterAuthServer(fresh_auth_database(admin_url), **config) as auth:
        yield auth


@dataclass
class User:
    id: str
    email: str
    token: str

    def client(self, api: ApiServer, path_user: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=f"{api.url}/api/{path_user or self.id}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )


def new_user(auth: BetterAuthServer, name: str) -> User:
    email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    user_id = auth.sign_up(email, PASSWORD, name)
    return User(user_id, email, auth.token_for(email, PASSWORD))


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/tasks", json=task_payload(completed=False, **fields))
    assert response.status_code == 201, response.text
    return dict(response.json())


def wait_accepted(api: ApiServer, user: User, within: float) -> float:
    """Retry until the API accepts ``user.token``; return how long that took."""
    start = time.monotonic()
    with user.client(api) as client:
        while True:
            response = client.get("/tasks")
            if response.status_code == 200:
                return time.monotonic() - start
            assert response.status_code == 401, response.text
            assert time.monotonic() - start < within, (
                f"token still refused after {within}s: {response.headers.get('WWW-Authenticate')}"
            )
            time.sleep(0.25)


# --- EdDSA, Better Auth's default ----------------------------------------------------------------


@pytest.fixture(scope="module")
def eddsa_auth(admin_url: str) -> Iterator[BetterAuthServer]:
    with run_auth(admin_url) as auth:
        yield auth


@pytest.fixture(scope="module")
def eddsa_api(database_url: str, eddsa_auth: BetterAuthServer) -> Iterator[ApiServer]:
    with api_server(api_env(database_url, eddsa_auth)) as api:
        yield api


def test_better_auth_tokens_are_eddsa_with_the_user_as_subject(eddsa_auth: BetterAuthServer) -> None:
    user = new_user(eddsa_auth, "Ada")
    header = jwt.get_unverified_header(user.token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] in {k["kid"] for k in eddsa_auth.jwks()["keys"]}
    claims = jwt.decode(user.token, options={"verify_signature": False})
    assert claims["sub"] == user.id
    assert claims["iss"] == claims["aud"] == eddsa_auth.base_url
    assert "exp" in claims


def test_two_better_auth_users_each_manage_only_their_own_tasks(
    eddsa_auth: BetterAuthServer, eddsa_api: ApiServer
) -> None:
    a, b = new_user(eddsa_auth, "Alice"), new_user(eddsa_auth, "Bob")
    assert a.id != b.id
    with a.client(eddsa_api) as as_a, b.client(eddsa_api) as as_b:
        a1, a2 = create(as_a, title="A one"), create(as_a, title="A two")
        b1 = create(as_b, title="B one")
        assert (a1["user_id"], a2["user_id"], b1["user_id"]) == (a.id, a.id, b.id)

        assert [t["id"] for t in as_a.get("/tasks").json()] == [a2["id"], a1["id"]]
        assert [t["id"] for t in as_b.get("/tasks").json()] == [b1["id"]]

        toggled = as_a.patch(f"/tasks/{a1['id']}/complete")
        assert toggled.status_code == 200, toggled.text
        assert toggled.json()["completed"] is True
        toggled = as_b.patch(f"/tasks/{b1['id']}/complete")
        assert toggled.status_code == 200, toggled.text
        b_before = toggled.json()
        assert b_before["completed"] is True
        assert as_a.get(f"/tasks/{a1['id']}").json()["completed"] is True
        assert as_a.get(f"/tasks/{a2['id']}").json()["completed"] is False


def test_a_better_auth_token_on_another_users_path_is_403(
    eddsa_auth: BetterAuthServer, eddsa_api: ApiServer
) -> None:
    a, b = new_user(eddsa_auth, "Alice"), new_user(eddsa_auth, "Bob")
    with b.client(eddsa_api) as as_b:
        b1 = create(as_b)
    with a.client(eddsa_api, path_user=b.id) as a_on_b:
        for method, path in (
            ("GET", "/tasks"),
            ("POST", "/tasks"),
            ("GET", f"/tasks/{b1['id']}"),
            ("PATCH", f"/tasks/{b1['id']}"),
            ("PATCH", f"/tasks/{b1['id']}/complete"),
            ("DELETE", f"/tasks/{b1['id']}"),
        ):
            body = {"title": "hijack"} if method in {"POST", "PATCH"} and "complete" not in path else None
            response = a_on_b.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
    with b.client(eddsa_api) as as_b:
        assert as_b.get(f"/tasks/{b1['id']}").json() == b1
        assert [t["id"] for t in as_b.get("/tasks").json()] == [b1["id"]]


def test_another_users_task_id_is_404_exactly_like_a_missing_one(
    eddsa_auth: BetterAuthServer, eddsa_api: ApiServer
) -> None:
    a, b = new_user(eddsa_auth, "Alice"), new_user(eddsa_auth, "Bob")
    with b.client(eddsa_api) as as_b:
        b1 = create(as_b, title="Bob's secret")
    missing = str(uuid.uuid4())
    with a.client(eddsa_api) as as_a:
        for method, suffix, body in (
            ("GET", "", None),
            ("PATCH", "", {"title": "mine now", "completed": True}),
            ("PUT", "", {"title": "mine now"}),
            ("PATCH", "/complete", None),
            ("DELETE", "", None),
        ):
            theirs = as_a.request(method, f"/tasks/{b1['id']}{suffix}", json=body)
            nobodys = as_a.request(method, f"/tasks/{missing}{suffix}", json=body)
            assert theirs.status_code == nobodys.status_code == 404, (method, suffix, theirs.text)
            assert theirs.content == nobodys.content, (method, suffix)
            assert theirs.headers["content-type"] == nobodys.headers["content-type"]
        assert b1["id"] not in {t["id"] for t in as_a.get("/tasks").json()}
    with b.client(eddsa_api) as as_b:
        after = as_b.get(f"/tasks/{b1['id']}")
        assert after.status_code == 200
        assert after.json() == b1


def test_no_shared_secret_is_active_when_only_jwks_is_configured(
    eddsa_auth: BetterAuthServer, eddsa_api: ApiServer
) -> None:
    """``JWT_SECRET=""`` overrides a ``.env`` secret: HS256 tokens are refused outright."""
    user = new_user(eddsa_auth, "Hal")
    claims = jwt.decode(user.token, options={"verify_signature": False})
    secrets = ["x" * 32]
    dotenv = ROOT / ".env"
    if dotenv.is_file():
        for line in dotenv.read_text().splitlines():
            key, sep, value = line.strip().removeprefix("export ").partition("=")
            if sep and key.strip() == "JWT_SECRET":
                secrets.append(value.strip().strip("'\""))
    for secret in secrets:
        forged = jwt.encode(claims, secret, algorithm="HS256")
        response = httpx.get(
            f"{eddsa_api.url}/api/{user.id}/tasks", headers={"Authorization": f"Bearer {forged}"}
        )
        assert response.status_code == 401
        assert "algorithm not allowed" in response.headers["WWW-Authenticate"]


# --- ES256 ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def es256_auth(admin_url: str) -> Iterator[BetterAuthServer]:
    with run_auth(admin_url, alg="ES256") as auth:
        yield auth


def test_es256_better_auth_tokens_are_accepted(database_url: str, es256_auth: BetterAuthServer) -> None:
    user = new_user(es256_auth, "Eve")
    assert jwt.get_unverified_header(user.token)["alg"] == "ES256"
    with api_server(api_env(database_url, es256_auth)) as api, user.client(api) as client:
        task = create(client, title="Signed with P-256")
        assert client.get("/tasks").json() == [task]


# --- key rotation ---------------------------------------------------------------------------------

ROTATION_INTERVAL = 3


@pytest.fixture(scope="module")
def rotating_auth(admin_url: str) -> Iterator[BetterAuthServer]:
    with run_auth(admin_url, rotation_interval=ROTATION_INTERVAL, grace_period=60) as auth:
        yield auth


def test_a_rotated_better_auth_key_is_picked_up_without_a_restart(
    database_url: str, rotating_auth: BetterAuthServer
) -> None:
    with api_server(api_env(database_url, rotating_auth)) as api:
        email = f"rot-{uuid.uuid4().hex[:8]}@example.com"
        user_id = rotating_auth.sign_up(email, PASSWORD, "Rot")
        first = User(user_id, email, rotating_auth.token_for(email, PASSWORD))
        minted_first = time.monotonic()
        # The API caches the first key now.
        assert wait_accepted(api, first, within=1) < 1

        time.sleep(max(0.0, minted_first + ROTATION_INTERVAL + 1 - time.monotonic()))
        second = User(user_id, email, rotating_auth.token_for(email, PASSWORD))
        old_kid = jwt.get_unverified_header(first.token)["kid"]
        new_kid = jwt.get_unverified_header(second.token)["kid"]
        assert new_kid != old_kid, "Better Auth did not rotate its key"
        assert {old_kid, new_kid} <= {k["kid"] for k in rotating_auth.jwks()["keys"]}

        # The unknown kid makes the API re-fetch the JWKS (at most once per 5 s by default).
        assert wait_accepted(api, second, within=10) < 10
        assert wait_accepted(api, first, within=1) < 1  # still in Better Auth's grace period
        with second.client(api) as client:
            task = create(client, title="after rotation")
        with first.client(api) as client:
            assert [t["id"] for t in client.get("/tasks").json()] == [task["id"]]
