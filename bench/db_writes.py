"""What a write costs PostgreSQL, and what change tracking adds to it, without HTTP or the app.

    .venv/bin/python bench/db_writes.py [--rounds 4] [--writes 2000]

Starts a throwaway PostgreSQL migrated with the real CLI and loads the benchmark's dataset (1,000 users
x 50 tasks). Then one client sends the API's own prebuilt write statements (create, title update,
toggle) one at a time, ``--writes`` of each per turn, and times each round trip: with change tracking
on and off (its triggers, as ``bench/run --server litestar-untracked`` switches them), alternating which goes first in each of ``--rounds`` rounds.
``synchronous_commit`` is off for the client, so the disk's flush does not drown what the statements
cost. One client on an otherwise idle database moves far less between runs than ``wrk`` against the
whole stack on a shared box: this is where a few percent of database time can be seen.

A last turn with ``track_functions = all`` breaks each write down by trigger function (each function's
own time per write). Results go to ``bench/results/<date>_<time>_db_writes.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

# The harness's helpers, next to this file (``common`` first: it puts the API's modules on the path).
from common import BENCH_DIR, log
from dataset import load_dataset, set_change_tracking, user_ids

from backend.devdb import asyncpg_url, start_cluster
from backend.sql import Sql
from backend.tasks.repository import _TOGGLE, TASKS  # the API's own statements
from bench import migrate, server_env

Params = Callable[[int], dict[str, Any]]


def write_kinds(task_ids: list[tuple[str, str]]) -> dict[str, tuple[Sql, Params]]:
    """Each write: its statement and the parameters of its i-th run (rotating over users' tasks)."""

    def target(i: int) -> dict[str, Any]:
        user, task = task_ids[i % len(task_ids)]
        return {"owner": user, "task_id": uuid.UUID(task), "now": datetime.now(UTC)}

    def create(i: int) -> dict[str, Any]:
        user, now = task_ids[i % len(task_ids)][0], datetime.now(UTC)
        row = {"id": uuid.uuid4(), "user_id": user, "title": f"new {i}", "description": None}
        row |= {"completed": False, "completed_at": None, "priority": "medium", "tags": [], "due_at": None}
        row |= {"created_at": now, "updated_at": now, "version": 1, "list_id": None, "parent_id": None}
        return row | {"position": None, "owner": user, "quota": 100_000}

    return {
        "create": (TASKS.insert, create),
        "update": (TASKS.update_fields(("title",), False), lambda i: {**target(i), "v_title": f"t{i}"}),
        "toggle": (_TOGGLE[False], target),
    }


_WAL = "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"


async def timed_turn(
    conn: asyncpg.Connection, sql: Sql, params: Params, writes: int, start: int
) -> tuple[float, float]:
    """Mean round trip of ``writes`` runs of ``sql`` in microseconds, and the WAL bytes each wrote."""
    spent = 0.0
    wal = await conn.fetchval(_WAL)
    for i in range(start, start + writes):
        args = sql.args(params(i))
        began = time.perf_counter()
        await conn.execute(sql.text, *args)
        spent += time.perf_counter() - began
    return spent / writes * 1e6, float(await conn.fetchval(_WAL) - wal) / writes


async def own_times(conn: asyncpg.Connection, sql: Sql, params: Params, writes: int) -> dict[str, float]:
    """Each function's own time per write (µs), from PostgreSQL's function statistics."""
    await conn.execute("SELECT pg_stat_reset()")
    await conn.execute("SET track_functions = 'all'")
    await timed_turn(conn, sql, params, writes, 10**6)
    await conn.execute("SET track_functions = 'none'")
    await conn.execute("SELECT pg_stat_force_next_flush()")
    query = "SELECT funcname, self_time FROM pg_stat_user_functions ORDER BY self_time DESC"
    seen: dict[str, float] = {}
    for _ in range(50):  # the statistics reach shared memory at this backend's next report
        rows = {r["funcname"]: float(r["self_time"]) for r in await conn.fetch(query)}
        if rows and rows == seen:
            break
        seen = rows
        await asyncio.sleep(0.2)
    return {name: ms * 1000 / writes for name, ms in seen.items()}


CONFIGS = ("tracked", "untracked")


async def measure(dsn: str, task_ids: list[tuple[str, str]], rounds: int, writes: int) -> dict[str, Any]:
    kinds = write_kinds(task_ids)
    times: dict[tuple[str, str], list[float]] = {(k, c): [] for k in kinds for c in CONFIGS}
    wal: dict[tuple[str, str], list[float]] = {(k, c): [] for k in kinds for c in CONFIGS}
    conn = await asyncpg.connect(dsn, server_settings={"synchronous_commit": "off"})
    current, done = "tracked", 0
    try:
        for r in range(rounds):
            for config in CONFIGS if r % 2 == 0 else reversed(CONFIGS):
                if config != current:
                    await set_change_tracking(dsn, on=config == "tracked")
                    current = config
                for kind, (sql, params) in kinds.items():
                    took, wrote = await timed_turn(conn, sql, params, writes, done)
                    times[kind, config].append(took)
                    wal[kind, config].append(wrote)
                    done += writes
                log(f"round {r + 1}, {config}: done")
        if current != "tracked":
            await set_change_tracking(dsn, on=True)
        own = {kind: await own_times(conn, sql, params, writes) for kind, (sql, params) in kinds.items()}
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {"times": times, "wal": wal, "own": own, "version": version, "kinds": list(kinds)}


def report(result: dict[str, Any], rounds: int, writes: int, load: str) -> str:
    times, own = result["times"], result["own"]
    lines = [
        "# Database time per write, with and without change tracking (`bench/db_writes.py`)",
        "",
        f"PostgreSQL {result['version']}; {rounds} rounds × {writes} writes of each kind per turn, one "
        f"client, `synchronous_commit = off`; load average at start: {load}.",
        "",
        "| write | tracked µs (median, min–max) | untracked µs | tracked ÷ untracked | WAL bytes tracked "
        "/ untracked |",
        "|---|---|---|---|---|",
    ]
    for kind in result["kinds"]:
        on, off = times[kind, "tracked"], times[kind, "untracked"]
        spread = f"{statistics.median(on):,.0f} ({min(on):,.0f}–{max(on):,.0f})"
        off_spread = f"{statistics.median(off):,.0f} ({min(off):,.0f}–{max(off):,.0f})"
        ratio = statistics.median(a / b for a, b in zip(on, off, strict=True))
        wal = f"{statistics.median(result['wal'][kind, 'tracked']):,.0f} / "
        wal += f"{statistics.median(result['wal'][kind, 'untracked']):,.0f}"
        lines.append(f"| {kind} | {spread} | {off_spread} | {ratio:.3f} | {wal} |")
    lines += [
        "",
        "Own time per write of each function, tracked (µs; `track_functions` adds its own timing):",
        "",
    ]
    names = sorted(
        {n for per in own.values() for n in per}, key=lambda n: -sum(p.get(n, 0) for p in own.values())
    )
    lines += ["| function | " + " | ".join(result["kinds"]) + " |", "|---|" + "---|" * len(result["kinds"])]
    for name in names:
        lines.append(
            f"| `{name}` | " + " | ".join(f"{own[k].get(name, 0):.1f}" for k in result["kinds"]) + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--writes", type=int, default=2000)
    args = parser.parse_args()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    with tempfile.TemporaryDirectory(prefix="tasks-db-writes-") as work:
        Path(work).chmod(0o755)  # PostgreSQL runs as another user and must reach its data directory
        pg = start_cluster(Path(work) / "pg", keep=False)
        try:
            url = asyncpg_url(pg)
            if not migrate(server_env(url, 5)):
                raise SystemExit(1)
            dsn = pg.get_uri("postgres")  # asyncpg's own form of the same server
            users, big = user_ids(random.Random(1))
            log("loading the dataset ...")
            data = asyncio.run(load_dataset(dsn, users, big))
            result = asyncio.run(measure(dsn, data["task_ids"], args.rounds, args.writes))
        finally:
            pg.cleanup()
    out = BENCH_DIR / "results" / f"{time.strftime('%Y-%m-%d_%H%M%S')}_db_writes.md"
    out.write_text(report(result, args.rounds, args.writes, load))
    log(f"written to {out}")


if __name__ == "__main__":
    main()
