"""What every part of the benchmark shares: its paths, the token secret, logging, a free port."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT))  # the API's own modules (backend.devdb) for the harness

VENV_BIN = Path(sys.executable).parent
SECRET = "bench-secret-that-is-at-least-32-bytes-long-0123456789"
LUA = BENCH_DIR / "wrk" / "requests.lua"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
