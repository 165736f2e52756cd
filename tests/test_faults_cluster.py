"""A standing fault test across instances: what production's failures do to acknowledged writes, to the
connections every worker holds, and to live updates.

Two API instances (``scripts/serve``, 2 workers each) behind HAProxy (health checks on ``/health/ready``),
PgBouncer in transaction mode in front of a PostgreSQL of the test's own (``DATABASE_LISTEN_URL`` straight
to it for LISTEN). Writers create, update, toggle and delete tasks (and one runs ``complete-all``), retrying
every write until they know its outcome (tests/cluster_clients.py); a live-update stream per user
reconnects with ``Last-Event-ID`` whenever it ends and after every fault. Meanwhile the test locks some
users' rows past ``DATABASE_STATEMENT_TIMEOUT`` (their statements time out in the driver) while other
users' writes wait for less and commit, kills backends with ``pg_terminate_backend``, SIGKILLs one instance
and starts it again, restarts PostgreSQL, and runs a spell under a short server-side
``statement_timeout``. Afterwards:

* every write a client saw acknowledged (or confirmed by a read after a retry) is there exactly once, and
  every task is exactly in the state of its last acknowledged write (same version);
* no task appears twice (one Idempotency-Key, one title: one row), and a key sent again replays its task;
* no API worker ever held more database connections than its pool allows (pool size + overflow, plus
  the listener) — counted from the kernel's socket table per worker process, matched against
  pg_stat_activity by client port — and each holds at most that once the traffic stops;
* no 500, in any answer or in any server log;
* HAProxy took the killed instance out and back in;
* each stream reconnected after the faults and told of every acknowledged write: an event of the task at
  that version or later, or a ``resync`` received after the write was sent (refetch: acceptable after a
  gap); and each carried live events again (not only ``resync``) once the last fault was over, while the
  writers went on for QUIET_SECONDS.

The figures are printed (shown with ``-s`` or on failure), attached to the test report as the
``fault_figures`` property (``--junitxml``), and written to ``.cache/faults/last-run.json`` (with each
instance's log beside it). Bounded: the traffic and faults are cut off after SCENARIO_BOUND_SECONDS; the
whole test takes 1-1.5 minutes on two shared cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import jwt

from tests.cluster import ConnectionSampler, HAProxy, Postgres, kill_instance, tcp_postgres
from tests.cluster_clients import Ack, BulkWriter, Figures, Follower, Writer
from tests.pgbouncer import PgBouncer
from tests.support import AUDIENCE, ISSUER, ROOT, SECRET, UNHANDLED, ApiServer, create_database, run_cli

POOL_SIZE = 4
MAX_OVERFLOW = 2
# What one worker may hold: its pool (to PgBouncer) and the live-updates listener (to PostgreSQL).
MOST_PER_WORKER = POOL_SIZE + MAX_OVERFLOW + 1
STATEMENT_TIMEOUT = 1.0
USERS = 3
WRITERS_PER_USER = 3
BULK_TASKS = 40
# Some users' writes wait past the statement timeout (the driver gives up on them) while other users'
# writes wait for less and then succeed: timeouts among requests in flight that go on to commit.
LONG_LOCK_SECONDS = 1.4 * STATEMENT_TIMEOUT
SHORT_LOCK_AFTER_SECONDS = 0.5 * STATEMENT_TIMEOUT
SHORT_LOCK_SECONDS = 0.7 * STATEMENT_TIMEOUT
QUIET_SECONDS = 6.0
SCENARIO_BOUND_SECONDS = 90
TEST_APP = "faults-test"  # our own connections (API_BACKENDS leaves them out): never terminated
API_BACKENDS = (
    "SELECT pid, application_name, client_port FROM pg_stat_activity WHERE datname = 'tasks'"
    " AND backend_type = 'client backend' AND application_name <> 'faults-test'"
)
TERMINATE = f"SELECT count(pg_terminate_backend(pid)) FROM ({API_BACKENDS}) api"  # noqa: S608 - constants
REPORT = ROOT / ".cache" / "faults" / "last-run.json"


@dataclass
class Cluster:
    postgres: Postgres
    bouncer: PgBouncer
    instances: dict[str, ApiServer]
    balancer: HAProxy
    logs: dict[str, str] = field(default_factory=dict)

    async def admin(self) -> asyncpg.Connection:
        # Our own settings win over a database-wide statement_timeout.
        return await asyncpg.connect(
            self.postgres.url("tasks"),
            timeout=3,
            server_settings={"application_name": TEST_APP, "statement_timeout": "0"},
        )


class QuickRetryBouncer(PgBouncer):
    """After a failed server login PgBouncer refuses every client for ``server_login_retry`` (15 s by
    default): 1 s here, so a database restart costs the test seconds, not most of its time."""

    def _config(self) -> str:
        return super()._config() + "server_login_retry = 1\n"


def api_env(bouncer_url: str, direct_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": bouncer_url,
        "DATABASE_POOL_MODE": "transaction",
        "DATABASE_LISTEN_URL": direct_url,
        "DATABASE_POOL_SIZE": str(POOL_SIZE),
        "DATABASE_MAX_OVERFLOW": str(MAX_OVERFLOW),
        "DATABASE_POOL_TIMEOUT": "2",
        "DATABASE_STATEMENT_TIMEOUT": str(STATEMENT_TIMEOUT),
        "RATE_LIMIT": "0",
        "JWT_SECRET": SECRET,
        "JWT_ALGORITHMS": "HS256",
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "SERVER_SHUTDOWN_TIMEOUT": "5",
    }


@contextmanager
def cluster() -> Iterator[Cluster]:
    with tcp_postgres() as postgres:
        asyncio.run(create_database(postgres.url(), "tasks"))
        direct = postgres.url("tasks")
        run_cli("database", "upgrade", "--no-prompt", env={"DATABASE_URL": direct, "JWT_SECRET": SECRET})
        with QuickRetryBouncer(direct, pool_size=40) as bouncer:
            env = api_env(bouncer.url(), direct)
            instances = {"a": ApiServer(env, workers=2), "b": ApiServer(env, workers=2)}
            c: Cluster | None = None
            try:
                with ThreadPoolExecutor(2) as pool:
                    list(pool.map(ApiServer.start, instances.values()))
                with HAProxy({name: s.port for name, s in instances.items()}) as balancer:
                    c = Cluster(postgres, bouncer, instances, balancer)
                    yield c
            finally:
                logs = {name: s.stop() for name, s in instances.items()}
                if c is not None:
                    c.logs = logs


def token(user: str) -> str:
    now = int(time.time())
    claims = {"sub": user, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 900}
    return jwt.encode(claims, SECRET, algorithm="HS256")


# -- faults --------------------------------------------------------------------------------------------


async def terminate_api_backends(c: Cluster) -> int:
    """pg_terminate_backend on every connection of the API: PgBouncer's server connections, the listeners."""
    admin = await c.admin()
    try:
        return int(await admin.fetchval(TERMINATE))
    finally:
        await admin.close()


async def lock_rows(c: Cluster, users: list[str], seconds: float) -> None:
    """Hold these users' rows FOR UPDATE: their writes wait (past DATABASE_STATEMENT_TIMEOUT, or until a
    server-side statement_timeout cancels them)."""
    admin = await c.admin()
    try:
        async with admin.transaction():
            await admin.execute(
                "SELECT count(*) FROM (SELECT 1 FROM tasks WHERE user_id = ANY($1) FOR UPDATE) t", users
            )
            await asyncio.sleep(seconds)  # the length of the fault, not a wait for a signal
    finally:
        await admin.close()


async def timeouts_among_waiting_writes(c: Cluster, timing_out: list[str], waiting: list[str]) -> None:
    """``timing_out``'s writes wait past DATABASE_STATEMENT_TIMEOUT; ``waiting``'s writes, begun while
    those are still waiting, wait for less and commit."""
    long = asyncio.create_task(lock_rows(c, timing_out, LONG_LOCK_SECONDS))
    await asyncio.sleep(SHORT_LOCK_AFTER_SECONDS)
    await lock_rows(c, waiting, SHORT_LOCK_SECONDS)
    await long


async def server_statement_timeout(c: Cluster, users: list[str]) -> None:
    """A short database-wide statement_timeout (new sessions take it: the API's are terminated first)
    while these users' rows are locked: their statements are cancelled by the server."""
    admin = await c.admin()
    try:
        await admin.execute("ALTER DATABASE tasks SET statement_timeout = '300ms'")
        await terminate_api_backends(c)
        await lock_rows(c, users, 1.5)
    finally:
        await admin.execute("ALTER DATABASE tasks RESET statement_timeout")
        await admin.close()
        await terminate_api_backends(c)


@dataclass
class Run:
    figures: Figures
    writers: list[Writer]
    followers: list[Follower]
    sampler: ConnectionSampler
    faults: Counter[str] = field(default_factory=Counter)
    states: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    killed_at: float = 0.0
    last_fault_at: float = 0.0
    uncovered: list[Ack] = field(default_factory=list)
    left_over: dict[int, int] = field(default_factory=dict)
    backends_after: int = 0


async def inject(c: Cluster, run: Run, timing_out: list[str], waiting: list[str]) -> None:
    async def fault(kind: str, action: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        await action()
        run.faults[kind] += 1
        run.last_fault_at = time.monotonic()
        for f in run.followers:
            f.kick()  # reconnect with Last-Event-ID
        await asyncio.sleep(1.5)  # traffic between faults

    async def restart_postgres() -> None:
        await asyncio.to_thread(c.postgres.restart, "fast")

    a = c.instances["a"]
    timeout = "statement timeouts (rows locked past DATABASE_STATEMENT_TIMEOUT) among waiting writes"
    await asyncio.sleep(2)
    await fault(timeout, lambda: timeouts_among_waiting_writes(c, timing_out, waiting))
    await fault("pg_terminate_backend", lambda: terminate_api_backends(c))
    await fault(timeout, lambda: timeouts_among_waiting_writes(c, timing_out, waiting))
    run.killed_at = time.monotonic()
    await asyncio.to_thread(kill_instance, a)
    run.faults["SIGKILL of an instance (restarted)"] += 1
    restarted = asyncio.create_task(asyncio.to_thread(a.start))  # the same port, the same log
    await fault("server-side statement_timeout", lambda: server_statement_timeout(c, timing_out + waiting))
    await fault("PostgreSQL restart", restart_postgres)
    await fault(timeout, lambda: timeouts_among_waiting_writes(c, timing_out, waiting))
    await restarted
    await wait_for(lambda: both_up(c.balancer), 10)
    await fault(timeout, lambda: timeouts_among_waiting_writes(c, timing_out, waiting))
    await fault("pg_terminate_backend", lambda: terminate_api_backends(c))
    # Writes go on: the streams must carry live events again (the listener notices a lost connection
    # within its probe interval, PROBE_EVERY_SECONDS = 5).
    await asyncio.sleep(QUIET_SECONDS)


def both_up(balancer: HAProxy) -> bool:
    try:
        return set(balancer.states().values()) == {"UP"}
    except OSError:
        return False


async def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    """Whether ``condition`` came true within ``seconds`` (checked ten times a second)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def watch(c: Cluster, run: Run, stop: asyncio.Event) -> None:
    """Samples, four times a second, every worker's connections, pg_stat_activity and HAProxy's view."""
    admin: asyncpg.Connection | None = None
    while not stop.is_set():
        run.sampler.sample()
        with contextlib.suppress(OSError):
            run.states.append((time.monotonic(), c.balancer.states()))
        try:
            admin = admin if admin is not None and not admin.is_closed() else await c.admin()
            rows = await admin.fetch(API_BACKENDS)
            run.sampler.record_activity([(r["application_name"], r["client_port"]) for r in rows])
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            admin = None
        await asyncio.sleep(0.25)
    if admin is not None:
        await admin.close()


# -- the scenario --------------------------------------------------------------------------------------


async def start_clients(
    c: Cluster, figures: Figures
) -> tuple[list[httpx.AsyncClient], list[Writer], list[Follower]]:
    users = [f"faults-{uuid.uuid4().hex[:8]}" for _ in range(USERS + 1)]
    clients = [
        httpx.AsyncClient(
            base_url=c.balancer.url,
            headers={"Authorization": f"Bearer {token(u)}"},
            timeout=httpx.Timeout(10, connect=3),
        )
        for u in users
    ]
    writers: list[Writer] = [
        Writer(clients[i], users[i], f"{users[i]}-w{j}", figures, seed=i * 10 + j)
        for i in range(USERS)
        for j in range(WRITERS_PER_USER)
    ]
    writers.append(BulkWriter(clients[USERS], users[USERS], f"{users[USERS]}-bulk", figures, seed=99))
    followers = [Follower(clients[i], users[i]) for i in range(USERS + 1)]
    return clients, writers, followers


async def scenario(c: Cluster) -> Run:
    figures = Figures()
    clients, writers, followers = await start_clients(c, figures)
    sampler = ConnectionSampler(c.instances, c.bouncer.port, c.postgres.port)
    run = Run(figures, writers, followers, sampler)
    stop_writes, stop_streams, stop_watch = asyncio.Event(), asyncio.Event(), asyncio.Event()
    streams = [asyncio.create_task(f.run(stop_streams)) for f in followers]
    watcher = asyncio.create_task(watch(c, run, stop_watch))
    try:
        assert await wait_for(lambda: all(f.connects for f in followers), 15), "a stream never opened"
        # A first event per stream, so every reconnect has a Last-Event-ID to give.
        bulk = writers[-1]
        await asyncio.gather(*(w.create() for w in writers[:-1]), *(bulk.create() for _ in range(BULK_TASKS)))
        assert await wait_for(lambda: all(f.last_id for f in followers), 15), "no event on a stream"
        loops = [asyncio.create_task(w.run(stop_writes)) for w in writers]
        users = [w.user for w in writers[::WRITERS_PER_USER]]  # each user once, the bulk one last
        try:
            await inject(c, run, [users[0], users[-1]], users[1:-1])
        finally:
            stop_writes.set()
            await asyncio.gather(*loops)
        acks = [a for w in writers for a in w.acks]
        by_user = {f.user: f for f in followers}
        await wait_for(lambda: all(by_user[a.user].covers(a) for a in acks), 10)
        run.uncovered = [a for a in acks if not by_user[a.user].covers(a)]
        stop_streams.set()
        for f in followers:
            f.kick()
        await asyncio.gather(*streams)
        await wait_for(lambda: all(n <= MOST_PER_WORKER for n in current(sampler).values()), 10)
        run.left_over = current(sampler)
        admin = await c.admin()
        try:
            run.backends_after = len(await admin.fetch(API_BACKENDS))
        finally:
            await admin.close()
        await replay_some_creates(writers[:-1], figures)
    finally:
        stop_writes.set()
        stop_streams.set()
        stop_watch.set()
        for f in followers:
            f.kick()
        await asyncio.gather(*streams, return_exceptions=True)
        # A watch that died early would leave HAProxy's view and the connection figures stale: say so.
        await watcher
        for client in clients:
            await client.aclose()
    return run


def current(sampler: ConnectionSampler) -> dict[int, int]:
    return {pid: pool + direct for pid, (_, pool, direct) in sampler.held().items()}


async def replay_some_creates(writers: list[Writer], figures: Figures) -> None:
    """The same Idempotency-Key and body again: the first answer (same task), marked as a replay."""
    for w in writers:
        for task in list(w.tasks.values())[:3]:
            key = w.created[task.title]
            r = await w.send(
                "POST",
                "/tasks",
                json={"title": task.title, "description": "created"},
                headers={"Idempotency-Key": key},
            )
            if (
                r is None
                or r.status_code != 201
                or r.json()["id"] != task.id
                or r.headers.get("Idempotent-Replayed") != "true"
            ):
                figures.unexpected.append(
                    f"replay of {task.title}: {None if r is None else (r.status_code, r.text[:200])}"
                )


# -- the checks ----------------------------------------------------------------------------------------


async def stored_tasks(c: Cluster, users: list[str]) -> list[asyncpg.Record]:
    admin = await c.admin()
    try:
        return list(
            await admin.fetch(
                "SELECT id::text, user_id, title, description, completed, version FROM tasks"
                " WHERE user_id = ANY($1)",
                users,
            )
        )
    finally:
        await admin.close()


def check_writes(run: Run, rows: list[asyncpg.Record]) -> tuple[list[str], int, int]:
    """Problems, lost writes, duplicated tasks."""
    problems: list[str] = []
    titles = Counter(r["title"] for r in rows)
    duplicated = sum(n - 1 for n in titles.values())
    problems += [f"{n} tasks titled {t!r} (one Idempotency-Key)" for t, n in titles.items() if n > 1]
    by_id = {r["id"]: r for r in rows}
    lost = 0
    sent = {title for w in run.writers for title in w.created}
    for w in run.writers[:-1]:
        for task in w.tasks.values():
            row = by_id.get(task.id)
            if task.deleted and row is None:
                continue
            want = None if task.deleted else (task.title, task.description, task.completed, task.version)
            got = (
                None if row is None else (row["title"], row["description"], row["completed"], row["version"])
            )
            if want != got:
                lost += 1
                problems.append(f"task {task.id}: last acknowledged state {want}, stored {got}")
    problems += [f"a task nobody created: {dict(r)}" for r in rows if r["title"] not in sent]
    bulk = run.writers[-1]
    if isinstance(bulk, BulkWriter) and bulk.completed is not None:
        wrong = [r["title"] for r in rows if r["user_id"] == bulk.user and r["completed"] != bulk.completed]
        if wrong:
            lost += 1
            problems.append(
                f"last acknowledged complete-all set completed={bulk.completed}; not on {wrong[:5]}"
            )
    return problems, lost, duplicated


def check_connections(run: Run) -> list[str]:
    problems = [
        f"worker {pid} (instance {w.instance}) held {w.total} database connections ({w.pool} pooled + "
        f"{w.direct} direct); at most {MOST_PER_WORKER}: pool {POOL_SIZE} + overflow {MAX_OVERFLOW} + 1"
        for pid, w in run.sampler.workers.items()
        if w.total > MOST_PER_WORKER or w.direct > 1
    ]
    problems += [
        f"worker {pid} still holds {n} connections after the traffic stopped (at most {MOST_PER_WORKER})"
        for pid, n in run.left_over.items()
        if n > MOST_PER_WORKER
    ]
    problems += [
        f"pg_stat_activity showed {w.listeners_in_pg} listener connections of worker {pid}"
        for pid, w in run.sampler.workers.items()
        if w.listeners_in_pg > 1
    ]
    return problems


def check_balancer(run: Run) -> list[str]:
    after = [s.get("a", "") for t, s in run.states if t > run.killed_at]
    problems = []
    if not any(s.startswith("DOWN") for s in after):
        problems.append(f"HAProxy never took the killed instance out: {sorted(set(after))}")
    if not run.states or set(run.states[-1][1].values()) != {"UP"}:
        problems.append(f"HAProxy's last view: {run.states[-1:]} (both instances should be UP)")
    return problems


def check_streams(run: Run) -> list[str]:
    problems = (
        [f"{len(run.uncovered)} acknowledged writes never told on their user's stream: {run.uncovered[:5]}"]
        if run.uncovered
        else []
    )
    for f in run.followers:
        if f.connects < 2:
            problems.append(f"stream of {f.user} never reconnected ({f.connects} connects)")
        if not any(r.event != "resync" and r.at > run.last_fault_at for r in f.received):
            seen = [(round(r.at - run.last_fault_at, 2), r.event, r.id) for r in f.received[-5:]]
            history = [(round(t - run.last_fault_at, 2), what) for t, what in f.history[-6:]]
            problems.append(
                f"stream of {f.user} received no event after the last fault; last events {seen}; {history}"
            )
    return problems


def first_live_event(stream: Follower, since: float) -> float | None:
    after = [r.at - since for r in stream.received if r.event != "resync" and r.at > since]
    return round(min(after), 1) if after else None


def figures_of(run: Run, lost: int, duplicated: int) -> dict[str, Any]:
    f = run.figures
    return {
        "writes_attempted": f.attempted,
        "acknowledged": f.acknowledged,
        "confirmed_by_read_after_retry": f.confirmed,
        "retried": f.retried,
        "requests": f.requests,
        "unresolved": f.unresolved,
        "lost": lost,
        "duplicated": duplicated,
        "http_500": len(f.five_hundreds),
        "faults_injected": dict(run.faults),
        "answers": dict(f.statuses),
        "connection_limit_per_worker": MOST_PER_WORKER,
        "max_connections_per_worker": {
            f"{w.instance}:{pid}": {"pooled": w.pool, "direct": w.direct, "total": w.total}
            for pid, w in run.sampler.workers.items()
        },
        "connections_after": run.left_over,
        "max_api_backends_in_pg_stat_activity": run.sampler.max_backends,
        "api_backends_in_pg_stat_activity_after": run.backends_after,
        "connection_samples": run.sampler.samples,
        "stream_connects": {s.user: s.connects for s in run.followers},
        "stream_events": sum(len(s.received) for s in run.followers),
        "stream_resyncs": sum(r.event == "resync" for s in run.followers for r in s.received),
        "stream_refusals": dict(sum((s.refused for s in run.followers), Counter())),
        "writes_not_told_on_stream": len(run.uncovered),
        "seconds_from_last_fault_to_live_event": {
            s.user: first_live_event(s, run.last_fault_at) for s in run.followers
        },
    }


def test_acknowledged_writes_connections_and_streams_survive_faults_across_instances(
    record_property: Callable[[str, object], None],
) -> None:
    started = time.monotonic()
    with cluster() as c:
        setup = time.monotonic() - started
        run = asyncio.run(asyncio.wait_for(scenario(c), SCENARIO_BOUND_SECONDS))
        rows = asyncio.run(stored_tasks(c, sorted({w.user for w in run.writers})))
    problems, lost, duplicated = check_writes(run, rows)
    problems += check_connections(run) + check_balancer(run) + check_streams(run)
    problems += run.figures.unexpected
    problems += [f"500: {line}" for line in run.figures.five_hundreds]
    problems += [
        f"{name} log: {line[:600]}"
        for name, log in c.logs.items()
        for line in log.splitlines()
        if UNHANDLED in line
    ]
    figures = figures_of(run, lost, duplicated) | {
        "setup_seconds": round(setup, 1),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    for name, log in c.logs.items():
        (REPORT.parent / f"instance-{name}.log").write_text(log)
    REPORT.write_text(json.dumps({"figures": figures, "problems": problems}, indent=2) + "\n")
    record_property("fault_figures", json.dumps(figures))
    print("fault figures:", json.dumps(figures, indent=2))
    assert figures["acknowledged"] > 100, "too little traffic got through to say anything"
    assert not problems, f"{len(problems)} problems (figures in {REPORT}):\n" + "\n".join(problems[:40])
