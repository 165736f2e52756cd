"""Listing: filters, sorting, paging headers, stats and the bulk operations on the task list."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from backend.tasks.filters import TaskFilter
from backend.tasks.models import Priority
from backend.tasks.repository import DELETE_COMPLETED, SET_COMPLETED_ALL, STATS, list_statements
from backend.tasks.schemas import SORTABLE, SortKey
from tests.factories import task_payload
from tests.support import ApiServer, Tokens

PROBLEM_JSON = "application/problem+json"


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    """A task with predictable fields: no description, tags or due date unless given."""
    body = {"description": None, "tags": [], "due_at": None, **fields}
    response = client.post("/tasks", json=task_payload(**body))
    assert response.status_code == 201, response.text
    return dict(response.json())


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()]


def listed(client: httpx.Client, **params: Any) -> list[str]:
    return ids(client.get("/tasks", params=params))


def assert_bad_param(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["status"] == 400
    assert problem["detail"]
    assert field in [e["field"] for e in problem.get("errors", [])], problem


def links(response: httpx.Response) -> dict[str, str]:
    """The RFC 8288 ``Link`` header as {rel: target}."""
    header = response.headers.get("Link", "")
    found = re.findall(r'<([^>]*)>\s*;\s*rel="([^"]+)"', header)
    assert len(found) == header.count("rel="), header
    return {rel: target for target, rel in found}


def query_of(target: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(target).query, keep_blank_values=True)


@pytest.fixture
def other_client(api: ApiServer, tokens: Tokens) -> Iterator[httpx.Client]:
    other = f"user-{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=f"{api.url}/api/{other}", headers=tokens.headers(other), timeout=30) as c:
        yield c


# --- filters ---------------------------------------------------------------------------------------


def test_completed_and_status_filters(client: httpx.Client) -> None:
    active = create(client, title="active")["id"]
    done = create(client, title="done", completed=True)["id"]
    assert listed(client, completed="true") == [done]
    assert listed(client, completed="false") == [active]
    assert set(listed(client, status="all")) == {active, done}
    assert listed(client, status="active") == [active]
    assert listed(client, status="completed") == [done]
    assert listed(client, completed="true", status="completed") == [done]
    assert listed(client, completed="false", status="all") == [active]


def test_completed_contradicting_status_is_400(client: httpx.Client) -> None:
    create(client, completed=True)
    assert_bad_param(client.get("/tasks", params={"completed": "true", "status": "active"}), "status")
    assert_bad_param(client.get("/tasks", params={"completed": "false", "status": "completed"}), "status")


def test_priority_filter(client: httpx.Client) -> None:
    by_priority = {p: create(client, priority=p)["id"] for p in ("low", "medium", "high")}
    create(client, priority="high", title="second high")
    for priority, task_id in by_priority.items():
        found = listed(client, priority=priority)
        assert task_id in found
        assert len(found) == (2 if priority == "high" else 1)
        page = client.get("/tasks", params={"priority": priority}).json()
        assert page, priority
        assert {t["priority"] for t in page} == {priority}


def test_tag_filter_is_exact_and_case_insensitive(client: httpx.Client) -> None:
    home = create(client, tags=["home", "work"])["id"]
    work = create(client, tags=["work"])["id"]
    create(client, tags=[])
    create(client, tags=["homework"])
    assert listed(client, tag="HOME") == [home]
    assert listed(client, tag="home") == [home]
    assert set(listed(client, tag="Work")) == {home, work}
    assert listed(client, tag="hom") == []
    assert listed(client, tag="garden") == []


def test_q_matches_title_or_description_case_insensitively(client: httpx.Client) -> None:
    in_title = create(client, title="Buy MILK today")["id"]
    in_description = create(client, title="Errand", description="Also some milk for the cat")["id"]
    create(client, title="Buy bread", description="no dairy")
    assert set(listed(client, q="milk")) == {in_title, in_description}
    assert set(listed(client, q="MiLk")) == {in_title, in_description}
    assert listed(client, q="for the CAT") == [in_description]
    assert listed(client, q="cheese") == []


def test_q_treats_percent_and_underscore_literally(client: httpx.Client) -> None:
    percent = create(client, title="50% off shoes")["id"]
    create(client, title="500 apples")
    underscore = create(client, title="rename a_b variable")["id"]
    create(client, title="axb", description="abb")
    backslash = create(client, title=r"C:\temp\x")["id"]
    assert listed(client, q="50%") == [percent]
    assert listed(client, q="a_b") == [underscore]
    assert listed(client, q="%") == [percent]
    assert listed(client, q="_") == [underscore]
    assert listed(client, q="\\") == [backslash]


def test_due_before_is_exclusive_and_due_after_inclusive(client: httpx.Client) -> None:
    d1 = create(client, due_at="2026-01-01T00:00:00Z")["id"]
    d2 = create(client, due_at="2026-01-02T00:00:00Z")["id"]
    d3 = create(client, due_at="2026-01-03T00:00:00Z")["id"]
    create(client, due_at=None)
    assert set(listed(client, due_after="2026-01-02T00:00:00Z")) == {d2, d3}
    assert listed(client, due_before="2026-01-02T00:00:00Z") == [d1]
    # The same instants written with an offset: '+' must survive the query string (httpx encodes it).
    assert set(listed(client, due_after="2026-01-02T01:00:00+01:00")) == {d2, d3}
    assert listed(client, due_before="2026-01-02T01:00:00+01:00") == [d1]
    assert listed(client, due_after="2026-01-02T19:00:00-05:00") == [d3]
    assert set(listed(client, due_after="2026-01-01T00:00:00Z", due_before="2026-01-03T00:00:00Z")) == {
        d1,
        d2,
    }
    assert listed(client, due_after="2026-01-02T00:00:00Z", due_before="2026-01-02T00:00:00Z") == []
    assert listed(client, due_after="2027-01-01T00:00:00Z") == []


def test_raw_plus_offset_percent_encoded_by_hand(client: httpx.Client) -> None:
    due = create(client, due_at="2026-05-01T10:00:00Z")["id"]
    response = client.get("/tasks?due_after=2026-05-01T12:00:00%2B02:00")
    assert ids(response) == [due]


def test_filters_combine(client: httpx.Client) -> None:
    wanted = create(
        client, title="Quarterly report", priority="high", tags=["work"], due_at="2026-03-01T00:00:00Z"
    )["id"]
    create(client, title="Quarterly report", priority="high", tags=["work"], completed=True)
    create(client, title="Quarterly report", priority="low", tags=["work"])
    create(client, title="Quarterly report", priority="high", tags=["home"])
    create(client, title="Slides", priority="high", tags=["work"])
    create(client, title="Quarterly report", priority="high", tags=["work"], due_at="2026-06-01T00:00:00Z")
    params = {
        "completed": "false",
        "priority": "high",
        "tag": "WORK",
        "q": "REPORT",
        "due_before": "2026-04-01T00:00:00Z",
    }
    response = client.get("/tasks", params=params)
    assert ids(response) == [wanted]
    assert response.headers["X-Total-Count"] == "1"
    assert listed(client, status="active", priority="high", tag="work", q="quarterly") != []


def test_filters_combine_without_tag(client: httpx.Client) -> None:
    wanted = create(client, title="Call Bob", priority="low", due_at="2026-03-01T00:00:00Z")["id"]
    create(client, title="Call Bob", priority="low", due_at="2026-03-01T00:00:00Z", completed=True)
    create(client, title="Call Bob", priority="medium", due_at="2026-03-01T00:00:00Z")
    create(client, title="Call Bob", priority="low", due_at="2026-09-01T00:00:00Z")
    create(client, title="Call Bob", priority="low", due_at=None)
    create(client, title="Email Bob", priority="low", due_at="2026-03-01T00:00:00Z")
    params = {
        "status": "active",
        "priority": "low",
        "q": "call",
        "due_after": "2026-02-01T00:00:00Z",
        "due_before": "2026-04-01T00:00:00+02:00",
    }
    response = client.get("/tasks", params=params)
    assert ids(response) == [wanted]
    assert response.headers["X-Total-Count"] == "1"


# --- sorting ---------------------------------------------------------------------------------------


def test_default_sort_is_newest_first(client: httpx.Client) -> None:
    created = [create(client, title=f"t{i}")["id"] for i in range(4)]
    assert listed(client) == created[::-1]
    assert listed(client, sort="-created_at") == created[::-1]
    assert listed(client, sort="created_at") == created


def test_sort_by_updated_at(client: httpx.Client) -> None:
    a, b, c = (create(client, title=t)["id"] for t in ("a", "b", "c"))
    assert client.patch(f"/tasks/{a}", json={"title": "a2"}).status_code == 200
    assert client.patch(f"/tasks/{b}/complete").status_code == 200
    assert listed(client, sort="updated_at") == [c, a, b]
    assert listed(client, sort="-updated_at") == [b, a, c]


def test_sort_by_due_at_puts_tasks_without_due_date_last_both_ways(client: httpx.Client) -> None:
    none1 = create(client, due_at=None)["id"]
    late = create(client, due_at="2026-03-01T00:00:00Z")["id"]
    early = create(client, due_at="2026-01-01T00:00:00Z")["id"]
    none2 = create(client, due_at=None)["id"]
    middle = create(client, due_at="2026-02-01T00:00:00+05:00")["id"]
    ascending = listed(client, sort="due_at")
    assert ascending[:3] == [early, middle, late]
    assert set(ascending[3:]) == {none1, none2}
    descending = listed(client, sort="-due_at")
    assert descending[:3] == [late, middle, early]
    assert set(descending[3:]) == {none1, none2}


def test_sort_by_priority_is_semantic_not_alphabetical(client: httpx.Client) -> None:
    medium = create(client, priority="medium")["id"]
    high = create(client, priority="high")["id"]
    low = create(client, priority="low")["id"]
    assert listed(client, sort="priority") == [low, medium, high]
    assert listed(client, sort="-priority") == [high, medium, low]


def test_sort_by_title(client: httpx.Client) -> None:
    by_title = {t: create(client, title=t)["id"] for t in ("delta", "alpha", "charlie", "bravo")}
    ordered = [by_title[t] for t in sorted(by_title)]
    assert listed(client, sort="title") == ordered
    assert listed(client, sort="-title") == ordered[::-1]


@pytest.mark.parametrize("sort", ["priority", "-priority", "title", "-title", "due_at", "-due_at"])
def test_paging_through_ties_never_repeats_or_skips(client: httpx.Client, sort: str) -> None:
    created = {create(client, title="same", priority="medium")["id"] for _ in range(25)}
    seen: list[str] = []
    for offset in range(0, 28, 7):
        response = client.get("/tasks", params={"sort": sort, "limit": 7, "offset": offset})
        page = ids(response)
        assert len(page) == min(7, 25 - offset)
        assert response.headers["X-Total-Count"] == "25"
        seen.extend(page)
    assert len(seen) == len(set(seen)) == 25
    assert set(seen) == created
    # The same query asked twice gives the same order.
    assert listed(client, sort=sort, limit=200) == listed(client, sort=sort, limit=200)


# --- paging parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("limit", "0"),
        ("limit", "201"),
        ("limit", "-1"),
        ("limit", "abc"),
        ("limit", "1.5"),
        ("offset", "-1"),
        ("offset", "abc"),
    ],
)
def test_out_of_range_paging_is_400(client: httpx.Client, param: str, value: str) -> None:
    assert_bad_param(client.get("/tasks", params={param: value}), param)


def test_limit_200_and_offset_past_the_end(client: httpx.Client) -> None:
    created = [create(client)["id"] for _ in range(3)]
    response = client.get("/tasks", params={"limit": 200})
    assert ids(response) == created[::-1]
    assert response.headers["X-Total-Count"] == "3"
    response = client.get("/tasks", params={"offset": 10})
    assert ids(response) == []
    assert response.headers["X-Total-Count"] == "3"
    assert "next" not in links(response)
    response = client.get("/tasks", params={"offset": 3, "limit": 1})
    assert ids(response) == []
    assert response.headers["X-Total-Count"] == "3"
    assert "next" not in links(response)


def test_empty_list(client: httpx.Client) -> None:
    response = client.get("/tasks")
    assert ids(response) == []
    assert response.headers["X-Total-Count"] == "0"
    rels = links(response)
    assert "next" not in rels
    assert "prev" not in rels


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("sort", "bogus"),
        ("sort", "-id"),
        ("sort", "id"),
        ("sort", "--title"),
        ("sort", "user_id"),
        ("priority", "urgent"),
        ("priority", "HIGH "),
        ("completed", "maybe"),
        ("status", "done"),
        ("due_before", "not-a-date"),
        ("due_before", "2026-01-01T00:00:00"),
        ("due_after", "2026-01-01T00:00:00"),
        ("due_after", "tomorrow"),
        ("due_after", "0"),
        ("due_before", "1700000000"),
        ("offset", "41540367298844983296"),
        ("q", "a\x00b"),
        ("tag", "\x00"),
        ("tag", "x" * 31),
        ("tag", "   "),
        ("tag", "\u0130" * 30),  # "İ" lower-cases to two characters: 60 > 30
        ("q", ""),
        ("completed", "null"),
        ("completed", "1"),
        ("completed", "True"),
        ("limit", "1e2"),
        ("limit", "5.0"),
        ("limit", "+5"),
        ("offset", "0x10"),
        ("offset", " 1"),
    ],
)
def test_invalid_values_are_400_naming_the_parameter(client: httpx.Client, param: str, value: str) -> None:
    create(client)
    assert_bad_param(client.get("/tasks", params={param: value}), param)


# --- X-Total-Count and Link -------------------------------------------------------------------------


def test_total_count_covers_the_whole_filter(client: httpx.Client, other_client: httpx.Client) -> None:
    for i in range(7):
        create(client, priority="high", title=f"h{i}")
    for _ in range(3):
        create(client, priority="low")
    create(other_client, priority="high")
    response = client.get("/tasks", params={"priority": "high", "limit": 2})
    assert len(ids(response)) == 2
    assert response.headers["X-Total-Count"] == "7"
    response = client.get("/tasks", params={"priority": "high", "limit": 5, "offset": 5})
    assert len(ids(response)) == 2
    assert response.headers["X-Total-Count"] == "7"
    response = client.get("/tasks", params={"limit": 3})
    assert response.headers["X-Total-Count"] == "10"


def test_link_header_on_first_middle_and_last_page(client: httpx.Client, user: str) -> None:
    for i in range(5):
        create(client, priority="high", title=f"title {i}")
    create(client, priority="low", title="title x")
    base = {"priority": "high", "sort": "title", "limit": "2"}

    def check(offset: int, expected: dict[str, int]) -> None:
        response = client.get("/tasks", params={**base, "offset": offset})
        assert response.status_code == 200
        assert response.headers["X-Total-Count"] == "5"
        rels = links(response)
        assert set(rels) == set(expected), rels
        for rel, at in expected.items():
            target = rels[rel]
            assert urlsplit(target).path == f"/api/{user}/tasks", target
            query = query_of(target)
            assert query["priority"] == ["high"], target
            assert query["sort"] == ["title"], target
            assert query["limit"] == ["2"], target
            assert query["offset"] == [str(at)], (rel, target)

    check(0, {"first": 0, "next": 2, "last": 4})
    check(2, {"first": 0, "prev": 0, "next": 4, "last": 4})
    check(4, {"first": 0, "prev": 2, "last": 4})


def test_a_query_parameter_given_twice_is_400(client: httpx.Client) -> None:
    for name, values in (("limit", ["5", "6"]), ("offset", ["0", "0"]), ("completed", ["true", "false"])):
        response = client.get("/tasks", params=[(name, v) for v in values])
        assert_bad_param(response, name)


def test_link_header_keeps_only_the_filters_and_sort(client: httpx.Client) -> None:
    # Unknown parameters (a cache-buster, junk) are ignored, and not copied into every link: a long query
    # string must not make a response header several times its size.
    create(client, priority="high", tags=["home"])
    junk = "j" * 20_000
    response = client.get(
        "/tasks", params={"priority": "high", "tag": "home", "sort": "title", "_": "123", "junk": junk}
    )
    assert response.status_code == 200
    assert len(response.headers["Link"]) < 1_000
    for target in links(response).values():
        query = query_of(target)
        assert set(query) == {"priority", "tag", "sort", "limit", "offset"}, target


def test_link_header_on_a_single_page(client: httpx.Client) -> None:
    create(client)
    rels = links(client.get("/tasks"))
    assert set(rels) == {"first", "last"}
    assert query_of(rels["first"])["offset"] == ["0"]
    assert query_of(rels["last"])["offset"] == ["0"]


def test_following_next_links_visits_every_match_once(client: httpx.Client, api: ApiServer) -> None:
    wanted = set()
    for i in range(11):
        wanted.add(create(client, priority="high", title=f"n{i:02d}", due_at="2026-02-01T00:00:00Z")["id"])
    create(client, priority="high", title="too early", due_at="2025-01-01T00:00:00Z")
    create(client, priority="medium", title="other priority", due_at="2026-02-01T00:00:00Z")
    response = client.get(
        "/tasks",
        params={"priority": "high", "due_after": "2026-01-01T00:00:00+01:00", "sort": "-title", "limit": 3},
    )
    seen: list[str] = []
    titles: list[str] = []
    pages = 0
    while True:
        assert response.status_code == 200, response.text
        assert response.headers["X-Total-Count"] == "11"
        seen.extend(t["id"] for t in response.json())
        titles.extend(t["title"] for t in response.json())
        pages += 1
        target = links(response).get("next")
        if target is None:
            break
        assert pages < 10, "next links never end"
        response = client.get(f"{api.url}{target}")
    assert pages == 4
    assert len(seen) == len(set(seen)) == 11
    assert set(seen) == wanted
    assert titles == sorted(titles, reverse=True)


def test_prev_links_walk_back_to_the_start(client: httpx.Client, api: ApiServer) -> None:
    created = [create(client, title=f"p{i}")["id"] for i in range(7)]
    response = client.get("/tasks", params={"sort": "created_at", "limit": 3, "offset": 6})
    collected = ids(response)
    while (target := links(response).get("prev")) is not None:
        response = client.get(f"{api.url}{target}")
        collected = ids(response) + collected
    assert collected == created


# --- stats -----------------------------------------------------------------------------------------


def test_stats_counts_only_the_callers_tasks(client: httpx.Client, other_client: httpx.Client) -> None:
    assert client.get("/tasks/stats").json() == {"total": 0, "completed": 0, "active": 0, "overdue": 0}
    past = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    create(client, title="active, no due date")
    create(client, title="active, overdue", due_at=past)
    create(client, title="active, due later", due_at=future)
    create(client, title="completed, past due", due_at=past, completed=True)
    create(client, title="completed, no due date", completed=True)
    create(other_client, title="someone else's overdue", due_at=past)
    create(other_client, title="someone else's done", completed=True)
    response = client.get("/tasks/stats")
    assert response.status_code == 200
    assert response.json() == {"total": 5, "completed": 2, "active": 3, "overdue": 1}


def test_stats_follow_changes(client: httpx.Client) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    task = create(client, due_at=past)
    assert client.get("/tasks/stats").json() == {"total": 1, "completed": 0, "active": 1, "overdue": 1}
    assert client.patch(f"/tasks/{task['id']}/complete").status_code == 200
    assert client.get("/tasks/stats").json() == {"total": 1, "completed": 1, "active": 0, "overdue": 0}


# --- complete-all ----------------------------------------------------------------------------------


def test_complete_all_counts_only_changed_tasks(client: httpx.Client, other_client: httpx.Client) -> None:
    a = create(client, title="a")
    b = create(client, title="b")
    c = create(client, title="c", completed=True)
    theirs = create(other_client, title="theirs")

    response = client.post("/tasks/complete-all", json={"completed": True})
    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 2}
    after = {t["id"]: t for t in client.get("/tasks").json()}
    for task in (a, b):
        now = after[task["id"]]
        assert now["completed"] is True
        assert now["completed_at"] is not None
        assert now["version"] == 2
        assert datetime.fromisoformat(now["updated_at"]) > datetime.fromisoformat(task["updated_at"])
    assert after[c["id"]] == c  # already completed: untouched, version and completed_at kept
    assert other_client.get(f"/tasks/{theirs['id']}").json() == theirs

    again = client.post("/tasks/complete-all", json={"completed": True})
    assert again.json() == {"updated": 0}
    assert {t["id"]: t["version"] for t in client.get("/tasks").json()} == {
        a["id"]: 2,
        b["id"]: 2,
        c["id"]: 1,
    }

    undone = client.post("/tasks/complete-all", json={"completed": False})
    assert undone.status_code == 200
    assert undone.json() == {"updated": 3}
    for task in client.get("/tasks").json():
        assert task["completed"] is False
        assert task["completed_at"] is None
    assert {t["id"]: t["version"] for t in client.get("/tasks").json()} == {
        a["id"]: 3,
        b["id"]: 3,
        c["id"]: 2,
    }
    assert other_client.get(f"/tasks/{theirs['id']}").json() == theirs


def test_complete_all_with_no_tasks(client: httpx.Client) -> None:
    response = client.post("/tasks/complete-all", json={"completed": True})
    assert response.status_code == 200
    assert response.json() == {"updated": 0}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "completed"),
        ({"completed": "yes"}, "completed"),
        ({"completed": 1}, "completed"),
        ({"completed": None}, "completed"),
        ({"completed": True, "priority": "high"}, "priority"),
    ],
)
def test_complete_all_rejects_bad_bodies(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    task = create(client)
    assert_bad_param(client.post("/tasks/complete-all", json=body), field)
    assert client.get(f"/tasks/{task['id']}").json() == task


@pytest.mark.parametrize("content", [b"", b"[]", b"true", b"{"])
def test_complete_all_rejects_non_object_bodies(client: httpx.Client, content: bytes) -> None:
    task = create(client)
    response = client.post(
        "/tasks/complete-all", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert client.get(f"/tasks/{task['id']}").json() == task


# --- clear completed -------------------------------------------------------------------------------


def test_clear_completed_deletes_only_the_callers_completed_tasks(
    client: httpx.Client, other_client: httpx.Client
) -> None:
    keep = create(client, title="keep")
    for i in range(3):
        create(client, title=f"done {i}", completed=True)
    theirs = create(other_client, completed=True)
    response = client.delete("/tasks", params={"completed": "true"})
    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 3}
    assert listed(client) == [keep["id"]]
    assert other_client.get(f"/tasks/{theirs['id']}").status_code == 200
    again = client.delete("/tasks", params={"completed": "true"})
    assert again.json() == {"deleted": 0}
    assert listed(client) == [keep["id"]]


@pytest.mark.parametrize("params", [{}, {"completed": "false"}, {"completed": "maybe"}, {"status": "all"}])
def test_clear_without_completed_true_is_400_and_deletes_nothing(
    client: httpx.Client, params: dict[str, str]
) -> None:
    created = {create(client)["id"], create(client, completed=True)["id"]}
    response = client.delete("/tasks", params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["detail"]
    assert set(listed(client)) == created


# --- indexes: no sequential scan of every user's tasks ---------------------------------------------

BIG_USER_TASKS = 10_000
OTHER_USERS = 1_000
TASKS_PER_OTHER_USER = 50

_SEED = """
INSERT INTO tasks (id, user_id, title, description, completed, completed_at, priority, tags, due_at,
                   created_at, updated_at, version)
SELECT gen_random_uuid(),
       {user},
       'task ' || g || CASE WHEN g % 50 = 0 THEN ' report' ELSE '' END,
       CASE WHEN g % 3 = 0 THEN 'some details ' || g END,
       g % 4 = 0,
       CASE WHEN g % 4 = 0 THEN now() - (g || ' minutes')::interval END,
       (ARRAY['low', 'medium', 'high'])[1 + g % 3]::task_priority,
       CASE WHEN g % 10 = 0 THEN ARRAY['home']::varchar[]
            WHEN g % 10 = 1 THEN ARRAY['work', 'urgent']::varchar[]
            ELSE ARRAY[]::varchar[] END,
       CASE WHEN g % 2 = 0 THEN now() + ((g % 200 - 100) || ' days')::interval END,
       now() - (g || ' seconds')::interval,
       now() - (g || ' seconds')::interval,
       1
FROM generate_series(1, {count}) AS g
"""


def _queries(user: str) -> dict[str, tuple[str, list[Any]]]:
    """The very statements the service issues for a page, its count, the stats and the bulk actions."""
    now = datetime.now(UTC)
    filters = {
        "none": TaskFilter(),
        "completed": TaskFilter(completed=True),
        "active": TaskFilter(completed=False),
        "priority": TaskFilter(priority=Priority.HIGH),
        "tag": TaskFilter(tag="home"),
        "q": TaskFilter(q="report"),
        "due_after": TaskFilter(due_after=now),
        "due_before": TaskFilter(due_before=now),
        "due_range": TaskFilter(due_after=now - timedelta(days=10), due_before=now),
        "combined": TaskFilter(completed=False, priority=Priority.MEDIUM, tag="work"),
    }
    sorts = [f"{d}{s}" for s in SORTABLE for d in ("", "-")]
    queries: dict[str, tuple[str, list[Any]]] = {}
    for name, base in filters.items():
        for sort in sorts if name == "none" else ["-created_at", "priority"]:
            f = replace(base, sort=cast("SortKey", sort))
            page, count = list_statements(f)
            queries[f"page {name} sort={sort}"] = (page.text, page.args(f.params(user)))
        last = replace(base, offset=9900)
        page, count = list_statements(last)
        queries[f"last page {name}"] = (page.text, page.args(last.params(user)))
        queries[f"count {name}"] = (count.text, count.args(last.params(user)))
    for name, sql in (
        ("stats", STATS),
        ("complete all", SET_COMPLETED_ALL),
        ("clear completed", DELETE_COMPLETED),
    ):
        queries[name] = (sql.text, sql.args({"owner": user, "now": now, "completed": True}))
    return queries


def _scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _scans(child)


async def _seed_and_explain(url: str, prefix: str) -> tuple[dict[str, list[str]], int]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(_SEED.format(user="$1::varchar", count=BIG_USER_TASKS), f"{prefix}big")
        await conn.execute(
            _SEED.format(user=f"'{prefix}other-' || (g % {OTHER_USERS})", count="$1::int"),
            OTHER_USERS * TASKS_PER_OTHER_USER,
        )
        await conn.execute("ANALYZE tasks")
        seq_scans: dict[str, list[str]] = {}
        for name, (sql, args) in _queries(f"{prefix}big").items():
            raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
            plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
            bad = [
                n["Node Type"]
                for n in _scans(plan)
                if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "tasks"
            ]
            if bad:
                seq_scans[name] = bad
        high = await conn.fetchval(
            "SELECT count(*) FROM tasks WHERE user_id = $1 AND priority = 'high'", f"{prefix}big"
        )
        return seq_scans, int(high)
    except BaseException:
        await conn.execute("DELETE FROM tasks WHERE user_id LIKE $1", f"{prefix}%")
        raise
    finally:
        await conn.close()


async def _cleanup(url: str, prefix: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DELETE FROM tasks WHERE user_id LIKE $1", f"{prefix}%")
    finally:
        await conn.close()


def test_listing_queries_use_indexes_at_scale(database_url: str, api: ApiServer, tokens: Tokens) -> None:
    url = database_url.replace("postgresql+asyncpg://", "postgresql://")
    prefix = f"explain-{uuid.uuid4().hex[:8]}-"
    seq_scans, high = asyncio.run(_seed_and_explain(url, prefix))
    try:
        assert seq_scans == {}, f"sequential scans of tasks: {seq_scans}"

        big = f"{prefix}big"
        with httpx.Client(base_url=f"{api.url}/api/{big}", headers=tokens.headers(big), timeout=60) as c:
            params: dict[str, str | int] = {"priority": "high", "sort": "-due_at", "limit": 200}
            first = c.get("/tasks", params=params)
            assert first.status_code == 200, first.text
            assert first.headers["X-Total-Count"] == str(high)
            page = first.json()
            assert len(page) == 200
            assert {t["priority"] for t in page} == {"high"}
            due = [datetime.fromisoformat(t["due_at"]) for t in page]  # half have none: those come last
            assert due == sorted(due, reverse=True)
            last_target = links(first)["last"]
            last_offset = int(query_of(last_target)["offset"][0])
            assert last_offset == (high - 1) // 200 * 200
            last = c.get(f"{api.url}{last_target}")
            assert last.status_code == 200, last.text
            assert len(last.json()) == high - last_offset
            assert "next" not in links(last)
            assert last.json(), last_target
            assert {(t["priority"], t["due_at"]) for t in last.json()} == {("high", None)}
            assert not {t["id"] for t in last.json()} & {t["id"] for t in page}

            stats = c.get("/tasks/stats")
            assert stats.status_code == 200
            assert stats.json()["total"] == BIG_USER_TASKS
            everything = c.get("/tasks", params={"limit": 1, "offset": BIG_USER_TASKS - 1})
            assert everything.headers["X-Total-Count"] == str(BIG_USER_TASKS)
            assert len(everything.json()) == 1
    finally:
        asyncio.run(_cleanup(url, prefix))
