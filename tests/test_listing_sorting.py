"""Listing: sort keys, their order and ties across pages."""

from __future__ import annotations

import httpx
import pytest

from tests.listing import create, ids, listed


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
