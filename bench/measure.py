"""Measuring a run: wrk, the workers' memory and CPU, PostgreSQL's backends, a py-spy profile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from cases import Case
from common import BENCH_DIR, LUA, log
from servers import Server


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
