"""Live-updates benchmark: 1,000 open event streams on one API worker under a write load.

    .venv/bin/python bench/events.py [--streams 1000] [--rounds 3] [--duration 10] [--conns 64]
                                     [--server litestar|uvicorn]

Starts a throwaway PostgreSQL (migrated with the real CLI) and the API with one worker: by default
through the production command (``python -m backend.serve``: ``litestar run`` on Granian), or
``--server uvicorn``. 1,000 users with 5 tasks each.

Runs, each ``--duration`` seconds of ``wrk`` toggling the users' tasks (``PATCH /tasks/{id}/complete``):
without streams, then ``--rounds`` times (with streams, without streams). For a "with" run one stream
per user (``--streams``) is opened and read by a second process at a lower priority (clients are not
on the server's machine in production), while a probe commits a change of one streamed user's task
every 50 ms straight in PostgreSQL and times until its event arrives on that stream (commit-to-event
latency); the streams are closed again before the next "without" run.

Each "with" run is compared with the mean of the "without" runs either side of it, so a box that
drifts during the benchmark does not pass for a cost; the reported cost is the median over the
rounds. The worker's CPU time per write (from /proc) is reported the same way: it is what the server
itself pays, whatever else shares the box. The worker's RSS is sampled throughout. Results go to
``bench/results/<date>_<time>_events.md``.
Needs ``wrk`` (``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import psutil

# The harness's helpers and constants, next to this file.
from common import BENCH_DIR, ROOT, SECRET, VENV_BIN, free_port
from measure import cpu_seconds, run_wrk

from backend.devdb import asyncpg_url, start_cluster

TASKS_PER_USER = 5
PROBE_EVERY = 0.05


def log(message: str) -> None:
    print(f"[events-bench] {message}", file=sys.stderr, flush=True)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Streams:
    """One stream per user, each read to the end of every event; when each probe's event arrived."""

    def __init__(self, port: int, tokens: dict[str, str]) -> None:
        self.port = port
        self.tokens = tokens
        self.events = 0
        self.resyncs = 0
        self.arrived: dict[str, float] = {}  # probe title -> time.perf_counter() at its event
        self.tasks: list[asyncio.Task[None]] = []
        self.open = 0

    async def read(self, user: str, ready: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(
            f"GET /api/{user}/events HTTP/1.1\r\nHost: bench\r\n"
            f"Authorization: Bearer {self.tokens[user]}\r\n\r\n".encode()
        )
        status = await reader.readline()
        assert b" 200 " in status, status
        self.open += 1
        if self.open == len(self.tokens):
            ready.set()
        try:
            while line := await reader.readline():
                if line.startswith(b"data: "):
                    self.events += 1
                    if b'"resync"' in line:
                        self.resyncs += 1
                    elif b"probe-" in line:
                        title = line.split(b'"title":"', 1)[1].split(b'"', 1)[0].decode()
                        self.arrived.setdefault(title, time.perf_counter())
        finally:
            writer.close()

    async def start(self) -> None:
        ready = asyncio.Event()
        for user in self.tokens:
            self.tasks.append(asyncio.create_task(self.read(user, ready)))
            await asyncio.sleep(0.002)  # a steady ramp, not one burst of 1,000 connects
        async with asyncio.timeout(60):
            await ready.wait()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def read_streams(port: int, tokens: dict[str, str], pipe: Connection) -> None:
    """The readers' process: sends the number of open streams, then, once told to stop, what they read.

    Clients are not on the server's machine in production: at a lower priority (nice 10) the readers
    get a smaller share of the cores than the server, PostgreSQL and wrk (a share, not only idle
    time). Their own scheduling delay is part of the commit-to-event latency, which errs high.
    """
    os.nice(10)

    async def run() -> None:
        streams = Streams(port, tokens)
        await streams.start()
        pipe.send(streams.open)
        await asyncio.to_thread(pipe.recv)
        await asyncio.sleep(1)  # the last probes' events
        pipe.send({"events": streams.events, "resyncs": streams.resyncs, "arrived": streams.arrived})
        await streams.stop()

    asyncio.run(run())


async def probe(dsn: str, committed: dict[str, float], task_id: uuid.UUID, stop: asyncio.Event) -> None:
    """Changes a streamed user's task every PROBE_EVERY seconds; records when each commit was
    acknowledged (an event can be read before that: its latency then counts as 0)."""
    conn = await asyncpg.connect(dsn)
    try:
        n = 0
        while not stop.is_set():
            n += 1
            title = f"probe-{n}"
            await conn.execute(
                "UPDATE tasks SET title = $2, version = version + 1 WHERE id = $1", task_id, title
            )
            committed[title] = time.perf_counter()  # execute() returns once the commit is done
            await asyncio.sleep(PROBE_EVERY)
    finally:
        await conn.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def seed(dsn: str, users: list[str]) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            rows: list[asyncpg.Record] = await conn.fetch(
                "INSERT INTO tasks (id, user_id, title, created_at, updated_at) "
                "SELECT gen_random_uuid(), u, 'task ' || i, now(), now() "
                "FROM unnest($1::text[]) u, generate_series(1, $2) i RETURNING user_id, id",
                users,
                TASKS_PER_USER,
            )
            await conn.execute("VACUUM ANALYZE tasks")
            return rows
        finally:
            await conn.close()

    return asyncio.run(run())


def start_api(
    work: Path, env: dict[str, str], server: str, extra: Sequence[str] = ()
) -> tuple[subprocess.Popen[bytes], int, int]:
    """The API with one worker; returns the server process, its port and the worker's pid."""
    port = free_port()
    if server == "litestar":  # exactly what scripts/serve runs (``extra`` goes to `litestar run`)
        cmd = [str(VENV_BIN / "python"), "-m", "backend.serve", *extra]
        env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": "1"}
    else:
        cmd = [
            str(VENV_BIN / "uvicorn"), "--factory", "backend.app:create_app", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning", "--backlog", "4096", *extra,
        ]  # fmt: skip
    api = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=(work / "api.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    for _ in range(600):
        if api.poll() is not None:
            raise RuntimeError(f"the API exited: {(work / 'api.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                # The worker serves in the leaf of the process tree (Granian forks it; uvicorn with one
                # worker serves in its own process).
                root = psutil.Process(api.pid)
                leaves = [
                    p
                    for p in [root, *root.children(recursive=True)]
                    if not p.children() and "resource_tracker" not in " ".join(p.cmdline())
                ]
                if len(leaves) == 1:  # else a worker is still starting: wait for the one worker
                    return api, port, leaves[0].pid
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the API did not start")


class Writes:
    """One wrk run of the toggle load; records req/s and the worker's CPU time per request."""

    def __init__(
        self, port: int, pid: int, requests_file: Path, args: argparse.Namespace, work: Path
    ) -> None:
        self.port, self.pid, self.requests_file, self.args, self.work = port, pid, requests_file, args, work
        self.runs = 0

    def __call__(self) -> dict[str, float]:
        self.runs += 1
        cpu = cpu_seconds([self.pid])
        result = run_wrk(
            f"http://127.0.0.1:{self.port}", self.requests_file, self.args.conns, self.args.duration,
            self.work / f"w{self.runs}.json",
        )  # fmt: skip
        cpu = cpu_seconds([self.pid]) - cpu
        return {
            "rps": rps(result),
            "cpu_us": cpu / max(1, int(result["requests"])) * 1e6,
            # wrk's "status" counts non-2xx/3xx answers; the others are socket errors.
            "failed": float(sum(result[k] for k in ("status", "connect", "read", "write", "timeout"))),
        }


async def with_streams(
    args: argparse.Namespace, dsn: str, port: int, pid: int, tokens: dict[str, str], probe_task: uuid.UUID,
    writes: Writes,
) -> dict[str, Any]:  # fmt: skip
    """One "with" run: open the streams (in their own process), write under them while probing, close."""
    pipe, child_pipe = multiprocessing.Pipe()
    readers = multiprocessing.get_context("spawn").Process(
        target=read_streams, args=(port, tokens, child_pipe), daemon=True
    )
    readers.start()
    child_pipe.close()  # so that a readers process that dies ends recv() with EOFError
    opened = await asyncio.to_thread(pipe.recv)
    await asyncio.sleep(2)
    rss_open = rss_kib(pid)
    stop = asyncio.Event()
    committed: dict[str, float] = {}
    prober = asyncio.create_task(probe(dsn, committed, probe_task, stop))
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_kib(pid))
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    run = await asyncio.to_thread(writes)
    stop.set()
    await prober
    await sampler
    pipe.send("stop")
    read = await asyncio.to_thread(pipe.recv)
    await asyncio.to_thread(readers.join, 30)
    arrived: dict[str, float] = read["arrived"]
    return {
        "run": run,
        "rss_open_kib": rss_open,
        "rss_peak_kib": peak,
        "events": read["events"],
        "resyncs": read["resyncs"],
        "streams_open": opened,
        "latencies": [max(0.0, arrived[t] - c) for t, c in committed.items() if t in arrived],
        "lost_probes": len(committed.keys() - arrived.keys()),
    }


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    pg = start_cluster(work / "pg", keep=False)
    api: subprocess.Popen[bytes] | None = None
    try:
        admin = asyncpg_url(pg)
        pg.psql("CREATE DATABASE tasks_bench;")
        base, sep, query = admin.partition("?")
        db_url = f"{base.rpartition('/')[0]}/tasks_bench{sep}{query}"
        dsn = db_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "JWT_SECRET": SECRET,
            "DATABASE_POOL_SIZE": "32",
            "RATE_LIMIT": "0",
            "LITESTAR_APP": "backend.app:create_app",
        }
        subprocess.run(
            [str(VENV_BIN / "litestar"), "database", "upgrade", "--no-prompt"],
            cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip
        users = [f"bench-{uuid.uuid4().hex[:24]}" for _ in range(args.streams)]
        rows = seed(dsn, users)
        exp = int(time.time()) + 6 * 3600
        tokens = {u: jwt.encode({"sub": u, "exp": exp}, SECRET, algorithm="HS256") for u in users}
        probe_user = users[0]
        probe_task = next(r["id"] for r in rows if r["user_id"] == probe_user)
        requests_file = work / "toggle.txt"
        requests_file.write_text(
            "".join(
                f"PATCH\t/api/{r['user_id']}/tasks/{r['id']}/complete\t{tokens[r['user_id']]}\n"
                for r in rows
                if r["user_id"] != probe_user
            )
        )
        api, port, pid = start_api(work, env, args.server, shlex.split(args.server_args))
        writes = Writes(port, pid, requests_file, args, work)
        rss_idle = rss_kib(pid)
        log("writes without streams ...")
        without = [writes()]
        with_runs = []
        for n in range(1, args.rounds + 1):
            log(f"round {n}/{args.rounds}: {args.streams} streams open, writes with streams ...")
            with_runs.append(asyncio.run(with_streams(args, dsn, port, pid, tokens, probe_task, writes)))
            time.sleep(1)
            log(f"round {n}/{args.rounds}: writes without streams ...")
            without.append(writes())
        return {"without": without, "with": with_runs, "rss_idle_kib": rss_idle}
    finally:
        if api is not None:
            os.killpg(api.pid, signal.SIGTERM)
            api.wait(timeout=15)
        pg.cleanup()


def rps(run: dict[str, Any]) -> float:
    return float(run["requests"]) / float(run["duration_us"]) * 1e6


def report(args: argparse.Namespace, r: dict[str, Any]) -> str:
    without: list[dict[str, float]] = r["without"]
    rounds: list[dict[str, Any]] = r["with"]
    # Round n's "with" run sits between "without" runs n-1 and n: it is compared with their mean.
    rps_cost, cpu_cost, rows = [], [], []
    for n, w in enumerate(rounds):
        before, after = without[n], without[n + 1]
        base_rps = (before["rps"] + after["rps"]) / 2
        base_cpu = (before["cpu_us"] + after["cpu_us"]) / 2
        rps_cost.append((base_rps - w["run"]["rps"]) / base_rps * 100)
        cpu_cost.append((w["run"]["cpu_us"] - base_cpu) / base_cpu * 100)
        rows.append(
            f"| {n + 1} | {before['rps']:,.0f} / {after['rps']:,.0f} | {w['run']['rps']:,.0f} | {rps_cost[-1]:+.1f} % "
            f"| {base_cpu:,.0f} | {w['run']['cpu_us']:,.0f} | {cpu_cost[-1]:+.1f} % |"
        )
    lat = [x for w in rounds for x in w["latencies"]]
    lost = sum(w["lost_probes"] for w in rounds)
    opened = min(w["streams_open"] for w in rounds)
    failed = sum(run["failed"] for run in [*without, *(w["run"] for w in rounds)])
    lines = [
        f"# Live updates: {opened} open streams on 1 worker ({datetime.now():%Y-%m-%d %H:%M})",
        "",
        f"Server: {'the production command (`litestar run` on Granian)' if args.server == 'litestar' else 'uvicorn'}"
        f"{f' with `{args.server_args}`' if args.server_args else ''}, "
        f"1 worker. wrk `PATCH /tasks/{{id}}/complete` over {args.streams} users' tasks, -c{args.conns}, "
        f"{args.duration:g} s per run; {args.rounds} rounds of (with streams, without streams) after a first "
        f"run without; probe every {PROBE_EVERY * 1000:g} ms during the runs with streams. Machine: "
        f"{os.cpu_count()} cores, load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| cost of the streams to the writes' req/s (median of the rounds) | {statistics.median(rps_cost):+.1f} % "
        "| <= 10 % |",
        f"| cost of the streams to the worker's CPU time per write (median) | {statistics.median(cpu_cost):+.1f} % | |",
        f"| commit-to-event latency p50 / p99 ({len(lat)} probes, {lost} not seen) | "
        f"{percentile(lat, 0.5) * 1000:.1f} ms / {percentile(lat, 0.99) * 1000:.1f} ms | |",
        f"| worker RSS idle / {opened} streams open / peak under load | {r['rss_idle_kib'] / 1024:.0f} / "
        f"{max(w['rss_open_kib'] for w in rounds) / 1024:.0f} / {max(w['rss_peak_kib'] for w in rounds) / 1024:.0f} MB"
        " | <= 200 MB |",
        f"| events received by the streams / resyncs | {sum(w['events'] for w in rounds):,} / "
        f"{sum(w['resyncs'] for w in rounds)} | |",
        f"| writes that failed (non-2xx or socket errors), all runs | {failed:,.0f} | 0 |",
        "",
        'Per round (req/s of the writes; the worker\'s CPU µs per write; "without" is the runs either side):',
        "",
        "| round | without, before / after | with | req/s cost | CPU/write without | CPU/write with | CPU cost |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--conns", type=int, default=64)
    parser.add_argument("--server", choices=("litestar", "uvicorn"), default="litestar")
    parser.add_argument("--server-args", default="", help="more arguments for the server command")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        log("wrk is missing: apt-get install -y wrk")
        return 2
    work = Path(tempfile.mkdtemp(prefix="tasks-events-bench-"))
    work.chmod(0o755)
    try:
        result = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = report(args, result)
    out = args.out or BENCH_DIR / "results" / f"{datetime.now():%Y-%m-%d_%H%M%S}_events.md"
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
