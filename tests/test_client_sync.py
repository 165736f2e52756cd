"""The TypeScript client's sync helper (``createSync``) against a live API, through ``example/sync.ts``: a
device that was offline while another one changed things catches up to exactly the server's lists and
tasks (ids and versions), a device following the live updates stays equal to them, and a cursor the
server no longer accepts (410) starts the device again from a full sync."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.node_project import QUIET_NODE_ENV
from tests.support import ApiServer, Tokens
from tests.test_client_events import WAIT, Follower, built_client

Ids = dict[str, dict[str, int]]


@pytest.fixture(scope="module")
def project() -> Path:
    return built_client()


def device_env(api: ApiServer, tokens: Tokens, user: str, state: Path, follow: bool) -> dict[str, str]:
    return {
        **os.environ,
        **QUIET_NODE_ENV,
        "TASKS_API_URL": api.url,
        "TASKS_USER": user,
        "TASKS_TOKEN": tokens.jwks(user),
        "TASKS_SYNC_FILE": str(state),
        **({"TASKS_SYNC_FOLLOW": "1"} if follow else {}),
    }


def node() -> str:
    found = shutil.which("node")
    assert found, "node is needed (apt-get install nodejs)"
    return found


def pull(project: Path, api: ApiServer, tokens: Tokens, user: str, state: Path) -> dict[str, Any]:
    """The device comes online: loads its saved state, catches up, saves; its last line."""
    done = subprocess.run(  # noqa: S603 - our own example
        [node(), str(project / "dist" / "example" / "sync.js")],
        cwd=project,
        env=device_env(api, tokens, user, state, follow=False),
        capture_output=True,
        text=True,
        check=False,
        timeout=WAIT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    line: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return line


@contextmanager
def following(project: Path, api: ApiServer, tokens: Tokens, user: str, state: Path) -> Iterator[Follower]:
    process = subprocess.Popen(  # noqa: S603 - our own example
        [node(), str(project / "dist" / "example" / "sync.js")],
        cwd=project,
        env=device_env(api, tokens, user, state, follow=True),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield Follower(process)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def server_ids(client: httpx.Client) -> Ids:
    tasks = client.get("/tasks", params={"limit": 200})
    lists = client.get("/lists")
    assert tasks.status_code == lists.status_code == 200
    return {
        "tasks": {t["id"]: t["version"] for t in tasks.json()},
        "lists": {item["id"]: item["version"] for item in lists.json()},
    }


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    created: dict[str, Any] = response.json()
    return created


def test_an_offline_device_catches_up_exactly_and_a_live_one_stays_equal(
    project: Path, api: ApiServer, tokens: Tokens, user: str, client: httpx.Client, tmp_path: Path
) -> None:
    home, work = post(client, "/lists", {"name": "Home"}), post(client, "/lists", {"name": "Work"})
    inbox = post(client, "/tasks", {"title": "Inbox task"})
    milk = post(client, "/tasks", {"title": "Buy milk", "list_id": home["id"]})
    step = post(client, "/tasks", {"title": "Oat milk", "parent_id": milk["id"]})
    report = post(client, "/tasks", {"title": "Report", "list_id": work["id"]})
    post(client, "/tasks", {"title": "Slides", "list_id": work["id"]})
    phone, laptop = tmp_path / "phone.json", tmp_path / "laptop.json"
    first = pull(project, api, tokens, user, phone)
    assert first["ids"] == server_ids(client)
    assert len(first["ids"]["tasks"]) == 5

    with following(project, api, tokens, user, laptop) as live:
        live.until("the laptop's first sync", lambda line: line.get("ids") == server_ids(client))
        # The phone is offline now; the other device writes.
        post(client, "/tasks", {"title": "New while away", "list_id": home["id"]})
        assert client.patch(f"/tasks/{inbox['id']}", json={"title": "Renamed"}).status_code == 200
        assert client.patch(f"/tasks/{step['id']}/complete").status_code == 200
        post(client, f"/tasks/{report['id']}/move", {"after": milk["id"], "list_id": home["id"]})
        post(client, f"/lists/{home['id']}/move", {"after": work["id"]})
        assert client.delete(f"/tasks/{inbox['id']}").status_code == 204
        assert client.delete(f"/lists/{work['id']}").status_code == 204  # and "Slides" with it
        expected = server_ids(client)
        assert report["id"] in expected["tasks"]
        assert work["id"] not in expected["lists"]
        live.until("the laptop equal to the server", lambda line: line.get("ids") == expected)

    back = pull(project, api, tokens, user, phone)
    assert back["ids"] == expected
    assert back["restarts"] == 0  # caught up from its cursor, not from nothing
    again = pull(project, api, tokens, user, phone)
    assert again["ids"] == expected


def test_a_cursor_the_server_refuses_starts_the_device_again_from_nothing(
    project: Path, api: ApiServer, tokens: Tokens, user: str, client: httpx.Client, tmp_path: Path
) -> None:
    post(client, "/lists", {"name": "Home"})
    kept = post(client, "/tasks", {"title": "Kept"})
    bogus = "bm90LWEtY3Vyc29y"
    assert client.get("/sync", params={"cursor": bogus}).status_code == 410
    state = tmp_path / "device.json"
    ghost = {**kept, "id": "00000000-0000-7000-8000-000000000001", "title": "Deleted long ago"}
    state.write_text(json.dumps({"cursor": bogus, "tasks": [ghost, kept], "lists": []}))

    line = pull(project, api, tokens, user, state)
    assert line["restarts"] == 1
    assert line["ids"] == server_ids(client)  # the ghost is gone, the list is there
    saved = json.loads(state.read_text())
    assert saved["cursor"] != bogus
    assert client.get("/sync", params={"cursor": saved["cursor"]}).status_code == 200
