"""``scripts/serve``: the production command, ``litestar run`` on Granian (litestar-granian).

Why Granian and these flags: bench/results/ (the measured comparison) and docs/deploying.md. The
limits come from the settings (``litestar.toml`` < ``.env`` < environment), HOST/PORT/WORKERS from the
environment; extra arguments go to ``litestar run`` last, so they override any flag here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from backend.settings import PROJECT_ROOT, ConfigError, Settings, load_settings

APP = "backend.app:create_app"


def serve_command(
    settings: Settings, host: str, port: int, workers: int, extra: Sequence[str] = ()
) -> list[str]:
    """The ``litestar run`` command line that serves the API in production."""
    litestar = str(Path(sys.executable).with_name("litestar"))
    return [
        litestar, "run", "--host", host, "--port", str(port), "--wc", str(workers),
        # HTTP/1.1 behind the platform's proxy; no websockets in this API.
        "--http", "1", "--no-ws",
        # Pinned: `auto` picks rloop when it is installed, and rloop cannot open unix-socket or TLS
        # connections (the local PostgreSQL, Neon's sslmode=require).
        "--loop", "uvloop",
        "--backlog", "4096",
        # Request line + headers: bounded by the read buffer (431 past it) and given this long to arrive.
        "--http1-buffer-size", str(settings.server_header_buffer_bytes),
        "--http1-header-read-timeout", str(round(settings.server_header_read_timeout * 1000)),
        # Granian's default lets one crashed worker take the whole server down.
        "--respawn-failed-workers",
        # SIGTERM: in-flight requests get this long before their worker is killed.
        "--workers-kill-timeout", str(settings.server_shutdown_timeout),
        # The API writes its own JSON access log; Granian's stays off, its start-up chatter too.
        "--granian-log-level", "warning",
        *extra,
    ]  # fmt: skip


def check_limits(settings: Settings) -> None:
    """Granian's own ranges, as one-line configuration errors instead of a usage dump."""
    if settings.server_header_buffer_bytes < 8192:
        raise ConfigError("SERVER_HEADER_BUFFER_BYTES must be at least 8192")
    if not 0.001 <= settings.server_header_read_timeout <= 60:
        raise ConfigError("SERVER_HEADER_READ_TIMEOUT must be between 0.001 and 60 seconds")
    if not 1 <= settings.server_shutdown_timeout <= 1800:
        raise ConfigError("SERVER_SHUTDOWN_TIMEOUT must be between 1 and 1800 seconds")


def main(argv: Sequence[str] = ()) -> None:
    try:
        settings = load_settings()
        check_limits(settings)
    except ConfigError as exc:
        raise SystemExit(f"Tasks API configuration error: {exc}") from None
    host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104 - a server in a container listens on all interfaces
    port = int(os.environ.get("PORT", "8000"))
    workers = int(os.environ.get("WORKERS") or os.cpu_count() or 1)
    os.environ.setdefault("LITESTAR_APP", APP)  # the CLI finds the app only there
    os.chdir(PROJECT_ROOT)
    command = serve_command(settings, host, port, workers, argv)
    os.execv(command[0], command)  # noqa: S606 - our own venv's CLI, no shell


if __name__ == "__main__":
    main(sys.argv[1:])
