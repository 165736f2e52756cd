"""Lists end to end on a real server: create, read, rename, delete, move, 404/412/409, Idempotency-Key."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.support import Tokens, api_server


def make(client: httpx.Client, name: str = "Groceries", **headers: str) -> dict[str, Any]:
    response = client.post("/lists", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def names(client: httpx.Client) -> list[str]:
    response = client.get("/lists")
    assert response.status_code == 200
    return [item["name"] for item in response.json()]


def test_create_returns_201_location_etag_and_the_list(client: httpx.Client, user: str) -> None:
    response = client.post("/lists", json={"name": "  Groceries  "})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "user_id", "name", "position", "created_at", "updated_at", "version"}
    assert (body["name"], body["user_id"], body["version"]) == ("Groceries", user, 1)
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/api/{user}/lists/{body['id']}"
    assert body["created_at"].endswith(("Z", "+00:00"))
    assert client.get(f"/lists/{body['id']}").json() == body


def test_lists_come_in_their_order_new_ones_last(client: httpx.Client) -> None:
    for name in ("one", "two", "three"):
        make(client, name)
    listed = client.get("/lists").json()
    assert [item["name"] for item in listed] == ["one", "two", "three"]
    positions = [item["position"].encode() for item in listed]
    assert positions == sorted(positions)
    assert len(set(positions)) == 3


def test_get_answers_304_for_the_current_etag(client: httpx.Client) -> None:
    created = make(client)
    response = client.get(f"/lists/{created['id']}", headers={"If-None-Match": '"1"'})
    assert response.status_code == 304
    assert response.headers["ETag"] == '"1"'
    assert response.content == b""


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_rename_bumps_the_version(client: httpx.Client, method: str) -> None:
    created = make(client)
    response = client.request(method, f"/lists/{created['id']}", json={"name": " Shopping "})
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["version"]) == ("Shopping", 2)
    assert response.headers["ETag"] == '"2"'
    assert _instant(response.json()["updated_at"]) > _instant(created["updated_at"])
    assert client.get(f"/lists/{created['id']}").json()["name"] == "Shopping"


def test_an_empty_rename_changes_nothing(client: httpx.Client) -> None:
    created = make(client)
    response = client.patch(f"/lists/{created['id']}", json={})
    assert response.status_code == 200
    assert response.json() == created


def test_if_match_guards_rename_delete_and_move(client: httpx.Client) -> None:
    created = make(client)
    url = f"/lists/{created['id']}"
    stale = {"If-Match": '"7"'}
    assert client.patch(url, json={"name": "x"}, headers=stale).status_code == 412
    assert client.post(f"{url}/move", json={"after": None}, headers=stale).status_code == 412
    refused = client.delete(url, headers=stale)
    assert refused.status_code == 412
    assert refused.json()["detail"] == "If-Match does not match the list's current version"
    assert client.get(url).json() == created
    assert client.patch(url, json={"name": "x"}, headers={"If-Match": '"1"'}).status_code == 200
    assert client.delete(url, headers={"If-Match": '"2"'}).status_code == 204
    assert client.get(url).status_code == 404


def test_missing_foreign_and_malformed_ids_are_the_same_404(
    client: httpx.Client, api_url: str, tokens: Tokens
) -> None:
    other = f"other-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=f"{api_url}/api/{other}", headers=tokens.headers(other)) as theirs:
        foreign = make(theirs, "theirs")
    for list_id in (str(uuid.uuid4()), foreign["id"], "not-a-uuid"):
        for method, path, body in (
            ("GET", "", None),
            ("PATCH", "", {"name": "mine now"}),
            ("PUT", "", {"name": "mine now"}),
            ("DELETE", "", None),
            ("POST", "/move", {"after": None}),
        ):
            response = client.request(method, f"/lists/{list_id}{path}", json=body)
            assert response.status_code == 404, (method, list_id, response.text)
            assert response.json()["detail"] == "List not found"
    with httpx.Client(base_url=f"{api_url}/api/{other}", headers=tokens.headers(other)) as theirs:
        assert theirs.get(f"/lists/{foreign['id']}").json() == foreign


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": 3}, "name"),
        ({}, "name"),
        ({"name": "ok", "position": "a0"}, "position"),
        ({"name": "ok", "version": 4}, "version"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    response = client.post("/lists", json=body)
    assert response.status_code == 400, response.text
    assert field in [e["field"] for e in response.json()["errors"]]
    assert client.get("/lists").json() == []


def test_a_bad_rename_changes_nothing(client: httpx.Client) -> None:
    created = make(client)
    for body in ({"name": ""}, {"name": None}, {"user_id": "someone"}):
        assert client.patch(f"/lists/{created['id']}", json=body).status_code == 400
    assert client.get(f"/lists/{created['id']}").json() == created


def test_move_places_a_list_right_after_another(client: httpx.Client) -> None:
    a, b, c = (make(client, n) for n in "abc")
    moved = client.post(f"/lists/{c['id']}/move", json={"after": None})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["version"], moved.headers["ETag"]) == (2, '"2"')
    assert names(client) == ["c", "a", "b"]
    assert client.post(f"/lists/{a['id']}/move", json={"after": b["id"]}).status_code == 200
    assert names(client) == ["c", "b", "a"]
    assert client.get(f"/lists/{b['id']}").json()["version"] == 1  # nobody else renumbered


def test_move_after_no_list_of_the_callers_is_a_400_naming_after(
    client: httpx.Client, api_url: str, tokens: Tokens
) -> None:
    mine = make(client)
    other = f"other-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=f"{api_url}/api/{other}", headers=tokens.headers(other)) as theirs:
        foreign = make(theirs)
    for after in (foreign["id"], str(uuid.uuid4()), mine["id"]):
        response = client.post(f"/lists/{mine['id']}/move", json={"after": after})
        assert response.status_code == 400, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["after"]
    for body in ({}, {"after": "nope"}, {"after": None, "extra": 1}):
        assert client.post(f"/lists/{mine['id']}/move", json=body).status_code == 400
    assert client.get(f"/lists/{mine['id']}").json() == mine


def test_idempotency_key_on_create(client: httpx.Client) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = client.post("/lists", json={"name": "once"}, headers=key)
    again = client.post("/lists", json={"name": "once"}, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (again.headers["Location"], again.headers["ETag"]) == (first.headers["Location"], '"1"')
    assert client.post("/lists", json={"name": "another"}, headers=key).status_code == 422
    assert names(client) == ["once"]


def test_the_list_quota_is_exact_and_per_user(api_env: dict[str, str], tokens: Tokens, user: str) -> None:
    async def run(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url, headers=tokens.headers(user), timeout=60) as c:
            assert (await c.post("/lists", json={"name": "first"})).status_code == 201
            responses = await asyncio.gather(*(c.post("/lists", json={"name": f"n{i}"}) for i in range(12)))
            refused = next(r for r in responses if r.status_code == 409)
            assert "at most 5 lists" in refused.json()["detail"]
            assert len((await c.get("/lists")).json()) == 5
        return sorted(r.status_code for r in responses)

    with api_server({**api_env, "LISTS_MAX_PER_USER": "5"}) as server:
        assert asyncio.run(run(f"{server.url}/api/{user}")) == [201] * 4 + [409] * 8
        other = f"{user}-other"
        with httpx.Client(base_url=f"{server.url}/api/{other}", headers=tokens.headers(other)) as c:
            assert c.post("/lists", json={"name": "a quota is per user"}).status_code == 201


def test_concurrent_reads_and_writes_of_lists_all_succeed(api_url: str, tokens: Tokens, user: str) -> None:
    # Through a transaction-mode pooler a read outside a transaction may see its statement prepared
    # on one server connection and run on another: every read and write here must still be answered.
    async def scenario() -> list[int]:
        limits = httpx.Limits(max_connections=24)
        async with httpx.AsyncClient(
            base_url=f"{api_url}/api/{user}", headers=tokens.headers(user), timeout=60, limits=limits
        ) as c:
            ids = [(await c.post("/lists", json={"name": f"l{i}"})).json()["id"] for i in range(4)]
            calls = []
            for i in range(60):
                calls += [c.get("/lists"), c.get(f"/lists/{ids[i % 4]}")]
                calls.append(c.patch(f"/lists/{ids[i % 4]}", json={"name": f"n{i}"}))
            return [r.status_code for r in await asyncio.gather(*calls)]

    assert asyncio.run(scenario()) == [200] * 180
