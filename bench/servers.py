"""The servers under test: the production command, the alternatives it was measured against, the baseline."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from common import ROOT, VENV_BIN, free_port

_GRANIAN = ["--http", "1", "--no-ws", "--backlog", "4096"]
# --server choices: how the API is started (HOST and PORT appended by Server.command).
# "litestar" is the production command (scripts/serve); the others are alternatives it was measured
# against (bench/results/; "uvicorn-loop" there is uvicorn on the event loop the API had before, removed
# with backend/eventloop.py); "raw" is the baseline, not an API server.
SERVERS: dict[str, list[str]] = {
    # Exactly what scripts/serve runs (backend/serve.py builds the `litestar run` line; HOST/PORT/WORKERS).
    "litestar": ["python", "-m", "backend.serve"],
    # The same server on a database without change tracking (no sync triggers, stamp default or index;
    # bench/dataset.py switches them off and back): what tracking costs the writes, same window.
    "litestar-untracked": ["python", "-m", "backend.serve"],
    "granian": ["granian", "--interface", "asgi", "--factory", "--loop", "uvloop", *_GRANIAN, "--log-level", "warning"],
    "granian-asyncio": ["granian", "--interface", "asgi", "--factory", "--loop", "asyncio", *_GRANIAN, "--log-level", "warning"],
    "uvicorn-uvloop": ["uvicorn", "--factory", "--loop", "uvloop", "--http", "httptools",
                       "--no-access-log", "--log-level", "warning", "--backlog", "4096"],
    "raw": ["uvicorn", "--factory", "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning", "--backlog", "4096"],
}  # fmt: skip


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
        if self.kind.startswith("litestar"):
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
