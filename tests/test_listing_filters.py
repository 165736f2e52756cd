"""Listing: each filter of ``GET /tasks`` and how they combine."""

from __future__ import annotations

import httpx

from tests.listing import assert_bad_param, create, ids, listed


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
