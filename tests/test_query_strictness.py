"""Query strings read exactly: a single-valued parameter given twice, or the literal ``null`` where it
would mean "no filter", is a 400 naming the parameter; ``Link`` carries the parsed values only; an
``Idempotency-Key`` on a route that does not honour one is refused. One rule for every route, read
from the handler's signature (``backend.http.query.strict_query``)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from litestar import get
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter

from backend.http.query import declared_query
from backend.http.routes import post

SINGLE_VALUED = {
    "sort": ("title", "-title"),
    "q": ("milk", "bread"),
    "status": ("active", "completed"),
    "priority": ("low", "high"),
    "tag": ("home", "work"),
    "due_after": ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
    "due_before": ("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"),
    "completed": ("true", "false"),
    "limit": ("10", "20"),
    "offset": ("0", "10"),
}
# Optional parameters of a type for which Litestar reads ``null`` as "not given" (or that must be a
# timestamp): each is a 400. ``q`` and ``tag`` are text: ``null`` is a word to search for.
NULL_REFUSED = ("status", "priority", "completed", "limit", "offset", "due_before", "due_after", "sort")


def _fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [e["field"] for e in response.json()["errors"]]


@pytest.mark.parametrize("name", sorted(SINGLE_VALUED))
def test_a_single_valued_parameter_given_twice_is_a_400_naming_it(client: httpx.Client, name: str) -> None:
    first, second = SINGLE_VALUED[name]
    assert name in _fields(client.get("/tasks", params=[(name, first), (name, second)]))
    # The same value twice is still twice.
    assert name in _fields(client.get("/tasks", params=[(name, first), (name, first)]))
    assert client.get("/tasks", params=[(name, first)]).status_code == 200


@pytest.mark.parametrize("name", NULL_REFUSED)
def test_the_literal_null_is_a_400_not_no_filter(client: httpx.Client, name: str) -> None:
    assert name in _fields(client.get("/tasks", params={name: "null"}))


@pytest.mark.parametrize("name", ["q", "tag"])
def test_null_is_text_for_a_text_parameter(client: httpx.Client, name: str) -> None:
    client.post("/tasks", json={"title": "something else", "tags": ["home"]}).raise_for_status()
    r = client.get("/tasks", params={name: "null"})
    assert r.status_code == 200, r.text
    assert r.json() == []  # a filter for the word, not no filter


def test_numbers_and_booleans_are_written_plainly(client: httpx.Client) -> None:
    for name, value in (("limit", "1e1"), ("limit", "5.0"), ("offset", "0x0"), ("completed", "1")):
        assert _fields(client.get("/tasks", params={name: value})) == [name], (name, value)


def test_link_carries_the_parsed_values_only(client: httpx.Client) -> None:
    for i in range(3):
        client.post("/tasks", json={"title": f"t{i}", "tags": ["home"]}).raise_for_status()
    junk = [(f"junk{i}", "x" * 200) for i in range(40)]
    r = client.get("/tasks", params=[("tag", "home"), ("sort", "title"), ("limit", "1"), *junk])
    assert r.status_code == 200, r.text
    link = r.headers["link"]
    assert len(link) < 1000, link
    for part in link.split(", "):
        url = part[1 : part.index(">")]
        query = parse_qsl(urlsplit(url).query)
        assert [k for k, _ in query] == ["tag", "sort", "limit", "offset"], url
        assert dict(query)["tag"] == "home"
        assert dict(query)["sort"] == "title"


def test_a_repeat_of_a_parameter_of_the_events_route_is_refused(api_url: str, tokens: Any, user: str) -> None:
    token = tokens.jwks(user)
    params = [("access_token", token), ("access_token", token)]
    # A stream: read the answer only once it is known not to be an endless 200.
    with httpx.stream("GET", f"{api_url}/api/{user}/events", params=params, timeout=30) as r:
        assert r.status_code == 400
        r.read()
    assert "access_token" in _fields(r)


def test_an_idempotency_key_on_a_route_that_does_not_honour_one_is_refused(client: httpx.Client) -> None:
    headers = {"Idempotency-Key": "k-123"}
    assert _fields(client.get("/tasks", headers=headers)) == ["Idempotency-Key"]
    assert _fields(client.get("/tasks/stats", headers=headers)) == ["Idempotency-Key"]
    assert client.get("/tasks").json() == []
    # Litestar's OPTIONS answer is the same with or without one (and never a server error).
    assert client.options("/tasks", headers=headers).status_code == 204
    # The routes that honour it still do.
    created = client.post("/tasks", json={"title": "once"}, headers=headers)
    assert created.status_code == 201, created.text
    again = client.post("/tasks", json={"title": "once"}, headers=headers)
    assert again.json()["id"] == created.json()["id"]


def test_a_new_route_gets_the_rules_from_its_signature() -> None:
    @get("/things/{thing_id:str}")
    async def things(
        thing_id: FromPath[str],
        colour: FromQuery[str | None] = None,
        size: FromQuery[int | None] = None,
        flags: FromQuery[list[str] | None] = None,
        shown: Annotated[bool | None, QueryParameter(name="show")] = None,
        etag: Annotated[str | None, HeaderParameter(name="If-None-Match")] = None,
    ) -> None: ...

    @post("/things")
    async def create(
        data: JSONBody[dict[str, Any]],
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
    ) -> None: ...

    assert [
        (p.key, p.repeats, p.null_is_none, p.form is not None) for p in declared_query(things, ["thing_id"])
    ] == [
        ("colour", False, False, False),
        ("size", False, True, True),
        ("flags", True, True, False),
        ("show", False, True, True),
    ]
    assert declared_query(create, []) == ()
