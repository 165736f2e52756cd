"""Live-updates benchmark: 1,000 open event streams on one API worker under a write load.

    .venv/bin/python bench/events.py [--streams 1000] [--duration 10] [--conns 64]

Starts a throwaway PostgreSQL (migrated with the real CLI) and the API in one process
(one uvicorn worker on uvloop + httptools, so the worker is the measured process). 1,000 users with 5 tasks each.

1. writes without streams: ``wrk`` toggles the users' tasks (``PATCH /tasks/{id}/complete``) for
   ``--duration`` seconds;
2. opens one stream per user (``--streams``), every one read by this process, and runs the same wrk
   load again, while a probe commits a change of one streamed user's task every 50 ms straight in
   PostgreSQL and times until its event arrives on that stream (commit-to-event latency);
3. the writes without streams once more (the reported "without" is the mean of 1 and 3, as the box
   is shared and drifts).

The worker's RSS is sampled throughout. Results go to ``bench/results/<date>_<time>_events.md``.
Needs ``wrk`` (``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT))

from backend.devdb import asyncpg_url, start_cluster  # noqa: E402

VENV_BIN = Path(sys.executable).parent
SECRET = "bench-secret-that-is-at-least-32-bytes-long-0123456789"
LUA = BENCH_DIR / "wrk" / "requests.lua"
TASKS_PER_USER = 5
PROBE_EVERY = 0.05


def log(message: str) -> None:
    print(f"[events-bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run_wrk(url: str, requests_file: Path, conns: int, duration: float, out: Path) -> dict[str, Any]:
    out.unlink(missing_ok=True)
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{round(duration)}s", "--timeout", "10s", "-s", str(LUA), url]
    env = {**os.environ, "BENCH_REQUESTS": str(requests_file), "BENCH_OUT": str(out)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60, check=False)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed: {done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


class Streams:
    """``count`` open streams, each read to the end of every event; the probe's events are timed."""

    def __init__(self, port: int, tokens: dict[str, str]) -> None:
        self.port = port
        self.tokens = tokens
        self.events = 0
        self.resyncs = 0
        self.waiting: dict[str, float] = {}  # probe title -> commit time
        self.latencies: list[float] = []
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
                        committed = self.waiting.pop(title, None)
                        if committed is not None:
                            self.latencies.append(time.perf_counter() - committed)
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


async def probe(dsn: str, streams: Streams, task_id: uuid.UUID, stop: asyncio.Event) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        n = 0
        while not stop.is_set():
            n += 1
            title = f"probe-{n}"
            await conn.execute(
                "UPDATE tasks SET title = $2, version = version + 1 WHERE id = $1", task_id, title
            )
            streams.waiting[title] = time.perf_counter()  # execute() returns once the commit is done
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


def start_api(work: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    api = subprocess.Popen(
        [str(VENV_BIN / "uvicorn"), "--factory", "backend.app:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--loop", "uvloop",
         "--http", "httptools", "--no-access-log", "--log-level", "warning", "--backlog", "4096"],
        cwd=ROOT, env=env, stdout=(work / "api.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return api, port
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the API did not start")


async def with_streams(
    args: argparse.Namespace, dsn: str, port: int, pid: int, tokens: dict[str, str], probe_task: uuid.UUID,
    write: Any,
) -> dict[str, Any]:  # fmt: skip
    result: dict[str, Any] = {}
    log(f"opening {args.streams} streams ...")
    streams = Streams(port, tokens)
    await streams.start()
    await asyncio.sleep(2)
    result["rss_streams_kib"] = rss_kib(pid)
    stop = asyncio.Event()
    prober = asyncio.create_task(probe(dsn, streams, probe_task, stop))
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_kib(pid))
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    log("writes with streams ...")
    result["with"] = await asyncio.to_thread(write, "w2.json")
    stop.set()
    await prober
    await sampler
    await asyncio.sleep(1)
    result.update(
        rss_peak_kib=peak,
        events=streams.events,
        resyncs=streams.resyncs,
        streams_open=streams.open,
        latencies=streams.latencies,
        lost_probes=len(streams.waiting),
    )
    await streams.stop()
    return result


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
        api, port = start_api(work, env)

        def write(name: str) -> dict[str, Any]:
            return run_wrk(f"http://127.0.0.1:{port}", requests_file, args.conns, args.duration, work / name)

        rss_idle = rss_kib(api.pid)
        log("writes without streams ...")
        before = write("w1.json")
        result = asyncio.run(with_streams(args, dsn, port, api.pid, tokens, probe_task, write))
        time.sleep(1)
        log("writes without streams, again ...")
        result["without"] = [before, write("w3.json")]
        result["rss_idle_kib"] = rss_idle
        return result
    finally:
        if api is not None:
            os.killpg(api.pid, signal.SIGTERM)
            api.wait(timeout=15)
        pg.cleanup()


def rps(run: dict[str, Any]) -> float:
    return (
        float(run["requests"]) / float(run["duration_us"]) * 1e6
        if "duration_us" in run
        else float(run["rps"])
    )


def report(args: argparse.Namespace, r: dict[str, Any]) -> str:
    without = statistics.mean(rps(w) for w in r["without"])
    with_streams = rps(r["with"])
    lat = r["latencies"]
    cost = (without - with_streams) / without * 100
    lines = [
        f"# Live updates: {r['streams_open']} open streams on 1 worker ({datetime.now():%Y-%m-%d %H:%M})",
        "",
        f"wrk `PATCH /tasks/{{id}}/complete` over {args.streams} users' tasks, -c{args.conns}, "
        f"{args.duration:g} s per run; probe every {PROBE_EVERY * 1000:g} ms. Machine: {os.cpu_count()} cores, "
        f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())} (shared with other work).",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| writes/s without streams (mean of before and after) | {without:,.0f} "
        f"({', '.join(f'{rps(w):,.0f}' for w in r['without'])}) | |",
        f"| writes/s with {r['streams_open']} streams | {with_streams:,.0f} | |",
        f"| cost of the streams to the write path | {cost:.1f} % | <= 10 % |",
        f"| commit-to-event latency p50 / p99 ({len(lat)} probes, {r['lost_probes']} not seen) | "
        f"{percentile(lat, 0.5) * 1000:.1f} ms / {percentile(lat, 0.99) * 1000:.1f} ms | |",
        f"| worker RSS idle / {r['streams_open']} streams open / peak under load | "
        f"{r['rss_idle_kib'] / 1024:.0f} / {r['rss_streams_kib'] / 1024:.0f} / {r['rss_peak_kib'] / 1024:.0f} MB"
        " | <= 200 MB |",
        f"| events received by the streams / resyncs | {r['events']:,} / {r['resyncs']} | |",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--conns", type=int, default=64)
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
