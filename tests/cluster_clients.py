"""Clients of the fault test: writers that retry every write until they know its outcome, and live-update
followers that reconnect with ``Last-Event-ID``.

A write is retried on any error, timeout or 5xx, and is safe to retry: creates and complete-all carry an
``Idempotency-Key`` (the same key and body on every try); updates, toggles and deletes carry
``If-Match: "<version>"``, so a retry of one that had in fact been applied gets a 412 (or a 404 for a
delete), and a read then tells whether the task holds this very write. Each task has one writer, so the
writer knows the state and version every task must end in.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

# Statuses after which the same request is simply sent again: an instance or the database was away, or
# the first request with this Idempotency-Key is still running (409).
RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
WRITE_DEADLINE_SECONDS = 30.0  # one write given up (unresolved) after retrying this long


@dataclass
class Figures:
    attempted: int = 0  # writes (a create, an update...), however many requests each took
    acknowledged: int = 0  # answered 2xx
    confirmed: int = 0  # not acknowledged, but a retry's 412/404 and a read showed it applied
    retried: int = 0  # writes that needed more than one request
    requests: int = 0
    unresolved: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    five_hundreds: list[str] = field(default_factory=list)


@dataclass
class Task:
    id: str
    title: str
    description: str
    completed: bool
    version: int
    deleted: bool = False


@dataclass(frozen=True)
class Ack:
    """A write the client knows applied: the task's version after it (before it, for a delete)."""

    user: str
    task_id: str  # "" for complete-all
    version: int
    sent: float


class Writer:
    """One writer for one user's tasks (each task has exactly one writer)."""

    def __init__(self, http: httpx.AsyncClient, user: str, name: str, figures: Figures, seed: int) -> None:
        self.http, self.user, self.name, self.figures = http, user, name, figures
        self.tasks: dict[str, Task] = {}
        self.created: dict[str, str] = {}  # title -> Idempotency-Key (each title is sent with one key)
        self.acks: list[Ack] = []
        self.random = random.Random(seed)
        self.count = 0

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        self.figures.requests += 1
        try:
            r = await self.http.request(method, f"/api/{self.user}{path}", **kwargs)
        except httpx.HTTPError as exc:
            self.figures.statuses[type(exc).__name__] += 1
            return None
        self.figures.statuses[str(r.status_code)] += 1
        if r.status_code == 500:
            self.figures.five_hundreds.append(f"{method} {path}: {r.text[:300]}")
        return r

    async def write(
        self, method: str, path: str, ok: int, **kwargs: Any
    ) -> tuple[httpx.Response | None, int]:
        """Send until the answer is ``ok`` or one a retry cannot change; the last answer and how many
        requests it took (None: no answer within the deadline)."""
        self.figures.attempted += 1
        deadline = time.monotonic() + WRITE_DEADLINE_SECONDS
        tries = 0
        while True:
            tries += 1
            r = await self.send(method, path, **kwargs)
            if r is not None and (r.status_code == ok or r.status_code not in RETRY_STATUSES):
                break
            if time.monotonic() > deadline:
                self.figures.unresolved += 1
                return None, tries
            await asyncio.sleep(min(0.05 * tries, 0.5))
        if tries > 1:
            self.figures.retried += 1
        return r, tries

    def ack(self, task: Task, sent: float, *, confirmed: bool = False) -> None:
        if confirmed:
            self.figures.confirmed += 1
        else:
            self.figures.acknowledged += 1
        self.acks.append(Ack(self.user, task.id, task.version, sent))

    def odd(self, what: str, r: httpx.Response | None) -> None:
        answer = "no answer" if r is None else f"{r.status_code} {r.text[:300]}"
        self.figures.unexpected.append(f"{self.name} {what}: {answer}")

    async def create(self) -> None:
        self.count += 1
        title = f"{self.name}-{self.count}"
        key = self.created[title] = uuid.uuid4().hex
        body = {"title": title, "description": "created"}
        sent = time.monotonic()
        r, _ = await self.write("POST", "/tasks", 201, json=body, headers={"Idempotency-Key": key})
        if r is None:
            return None
        if r.status_code != 201:
            return self.odd(f"create {title}", r)
        t = r.json()
        task = self.tasks[t["id"]] = Task(t["id"], title, "created", t["completed"], t["version"])
        self.ack(task, sent)
        return None

    async def read(self, task: Task) -> dict[str, Any] | None:
        """The task as stored now (None: gone), retried like a write."""
        while True:
            r = await self.send("GET", f"/tasks/{task.id}")
            if r is not None and r.status_code in (200, 404):
                return r.json() if r.status_code == 200 else None
            await asyncio.sleep(0.1)

    async def change(self, task: Task, path: str, body: dict[str, Any], field_name: str) -> None:
        """PATCH with If-Match; a 412 after more than one request: applied if the task holds this write."""
        sent = time.monotonic()
        headers = {"If-Match": f'"{task.version}"'}
        r, tries = await self.write("PATCH", f"/tasks/{task.id}{path}", 200, json=body, headers=headers)
        if r is None:
            return None
        if r.status_code == 200:
            t = r.json()
            if t["version"] != task.version + 1:
                self.odd(f"PATCH {task.title} from version {task.version} gave version {t['version']}", r)
            task.version, task.description, task.completed = t["version"], t["description"], t["completed"]
            return self.ack(task, sent)
        if r.status_code == 412 and tries > 1:
            stored = await self.read(task)
            if stored and stored["version"] == task.version + 1 and stored[field_name] == body[field_name]:
                task.version, task.description, task.completed = (
                    stored["version"], stored["description"], stored["completed"],
                )  # fmt: skip
                return self.ack(task, sent, confirmed=True)
        self.odd(f"PATCH {task.title} {body} at version {task.version}", r)
        return None

    async def update(self, task: Task) -> None:
        await self.change(task, "", {"description": f"rewrite-{uuid.uuid4().hex[:8]}"}, "description")

    async def toggle(self, task: Task) -> None:
        await self.change(task, "/complete", {"completed": not task.completed}, "completed")

    async def delete(self, task: Task) -> None:
        sent = time.monotonic()
        headers = {"If-Match": f'"{task.version}"'}
        r, tries = await self.write("DELETE", f"/tasks/{task.id}", 204, headers=headers)
        if r is None:
            return None
        if r.status_code == 204 or (r.status_code == 404 and tries > 1 and await self.read(task) is None):
            task.deleted = True
            return self.ack(task, sent, confirmed=r.status_code != 204)
        self.odd(f"DELETE {task.title} at version {task.version}", r)
        return None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            alive = [t for t in self.tasks.values() if not t.deleted]
            roll = self.random.random()
            if len(alive) < 3 or roll < 0.3:
                await self.create()
            elif roll < 0.6:
                await self.update(self.random.choice(alive))
            elif roll < 0.85:
                await self.toggle(self.random.choice(alive))
            else:
                await self.delete(self.random.choice(alive))
            await asyncio.sleep(0.02)


class BulkWriter(Writer):
    """``complete-all`` back and forth on a user of its own, each with its own Idempotency-Key."""

    completed: bool | None = None  # the last acknowledged value

    async def run(self, stop: asyncio.Event) -> None:
        value = True
        while not stop.is_set():
            sent = time.monotonic()
            key = {"Idempotency-Key": uuid.uuid4().hex}
            r, _ = await self.write(
                "POST", "/tasks/complete-all", 200, json={"completed": value}, headers=key
            )
            if r is not None and r.status_code == 200:
                self.figures.acknowledged += 1
                self.acks.append(Ack(self.user, "", 0, sent))
                self.completed, value = value, not value
            elif r is not None:
                self.odd(f"complete-all {value}", r)
            await asyncio.sleep(0.05)


@dataclass
class Received:
    at: float
    event: str
    id: int | None
    data: Any


class Follower:
    """One user's live-update stream through the load balancer, reconnecting with Last-Event-ID whenever
    it ends and whenever ``kick()`` asks (after each fault)."""

    def __init__(self, http: httpx.AsyncClient, user: str) -> None:
        self.http, self.user = http, user
        self.last_id: int | None = None
        self.received: list[Received] = []
        self.connects = 0
        self.history: list[tuple[float, str]] = []  # (when, what): each connect, refusal and end
        self.refused: Counter[str] = Counter()
        self._current: asyncio.Task[None] | None = None

    def kick(self) -> None:
        if self._current is not None:
            self._current.cancel()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._current = asyncio.create_task(self._once())
            await asyncio.wait([self._current])
            if not stop.is_set():
                await asyncio.sleep(0.1)

    async def _once(self) -> None:
        headers = {} if self.last_id is None else {"Last-Event-ID": str(self.last_id)}
        timeout = httpx.Timeout(5, read=30)
        try:
            async with self.http.stream(
                "GET", f"/api/{self.user}/events", headers=headers, timeout=timeout
            ) as r:
                if r.status_code != 200:
                    self.refused[str(r.status_code)] += 1
                    self.history.append((time.monotonic(), f"refused {r.status_code}"))
                    return
                self.connects += 1
                self.history.append((time.monotonic(), f"connected after {self.last_id}"))
                await self._read(r)
                self.history.append((time.monotonic(), "ended"))
        except httpx.HTTPError as exc:
            self.refused[type(exc).__name__] += 1
            self.history.append((time.monotonic(), type(exc).__name__))

    async def _read(self, response: httpx.Response) -> None:
        fields: dict[str, str] = {}
        data: list[str] = []
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                else:
                    fields[name] = value
                continue
            if data:
                event_id = int(fields["id"]) if fields.get("id") else None
                if event_id is not None:
                    self.last_id = event_id
                payload = json.loads("\n".join(data))
                self.received.append(
                    Received(time.monotonic(), fields.get("event", "message"), event_id, payload)
                )
            fields, data = {}, []

    def covers(self, ack: Ack) -> bool:
        """Whether the stream told of this write: an event of the task at its version or later, a bulk
        change after it was sent, or a ``resync`` (refetch) after it was sent."""
        for r in self.received:
            if r.event == "resync" and r.at >= ack.sent:
                return True
            if not ack.task_id:
                if r.event == "tasks.changed" and r.at >= ack.sent:
                    return True
                continue
            if r.event == "task.deleted" and r.data.get("id") == ack.task_id:
                return True
            task = r.data.get("task") if isinstance(r.data, dict) else None
            if task and task.get("id") == ack.task_id and task.get("version", 0) >= ack.version:
                return True
        return False
