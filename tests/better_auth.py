"""Run a real Better Auth server (Node.js) so tests verify genuinely minted JWTs.

The npm project lives in ``tests/betterauth``; it is installed into the
git-ignored ``.cache/betterauth`` so ``node_modules`` never lands in the tree.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

SOURCE_DIR = Path(__file__).resolve().with_name("betterauth")
INSTALL_DIR = SOURCE_DIR.parents[1] / ".cache" / "betterauth"
MIN_NODE_MAJOR = 20
START_TIMEOUT = 60.0
# Fixed rather than random: the jwks table stores private keys encrypted with
# it, so a server restarted on the same database must reuse the same secret.
TEST_SECRET = "tasks-api-e2e-better-auth-secret-not-for-production"
_NODE_HINT = (
    f"Node.js >= {MIN_NODE_MAJOR} with npm is required for the Better Auth "
    "end-to-end tests: apt-get install nodejs npm"
)


def _node_tools() -> tuple[str, str]:
    """Return absolute paths of node and npm, or fail loudly (never skip)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError(f"{_NODE_HINT} (node={node}, npm={npm})")
    version = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [node, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    match = re.fullmatch(r"v(\d+)\..*", version)
    if match is None or int(match.group(1)) < MIN_NODE_MAJOR:
        raise RuntimeError(f"{_NODE_HINT} (found node {version})")
    return node, npm


def ensure_installed() -> Path:
    """Install the pinned npm packages once per lock file; return the run dir."""
    _, npm = _node_tools()
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    (INSTALL_DIR / ".gitignore").write_text("*\n")
    manifests = [SOURCE_DIR / "package.json", SOURCE_DIR / "package-lock.json"]
    present = [p for p in manifests if p.exists()]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in present)).hexdigest()
    stamp = INSTALL_DIR / ".installed"
    # pytest-xdist workers may all arrive here at once.
    with (INSTALL_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fresh = (INSTALL_DIR / "node_modules").is_dir() and stamp.exists()
        if not fresh or stamp.read_text() != digest:
            stamp.unlink(missing_ok=True)
            for path in present:
                shutil.copyfile(path, INSTALL_DIR / path.name)
            command = "ci" if len(present) == 2 else "install"
            result = subprocess.run(  # noqa: S603 - fixed argv, no shell
                [npm, command, "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=INSTALL_DIR,
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise RuntimeError(
                    f"npm {command} failed in {INSTALL_DIR}:\n{result.stdout}\n{result.stderr}"
                )
            stamp.write_text(digest)
        # ESM resolves packages next to the script, so it must live here too.
        shutil.copyfile(SOURCE_DIR / "server.mjs", INSTALL_DIR / "server.mjs")
    return INSTALL_DIR


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _json(response: httpx.Response) -> Any:
    if response.is_error:
        request = response.request
        raise RuntimeError(
            f"Better Auth {request.method} {request.url} -> {response.status_code}: {response.text}"
        )
    return response.json()


class BetterAuthServer:
    """A Better Auth server with the jwt() plugin, backed by PostgreSQL."""

    def __init__(
        self,
        database_url: str,
        alg: str = "EdDSA",
        rotation_interval: int | None = None,
        grace_period: int | None = None,
        secret: str = TEST_SECRET,
    ) -> None:
        self.database_url = database_url
        self.alg = alg
        self.rotation_interval = rotation_interval
        self.grace_period = grace_period
        self.secret = secret
        self.port = _free_port()
        self._process: subprocess.Popen[str] | None = None
        self._output: list[str] = []
        self._ready = threading.Event()
        self._listening = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/api/auth/jwks"

    @property
    def output(self) -> str:
        return "".join(self._output)

    def start(self) -> None:
        node, _ = _node_tools()
        workdir = ensure_installed()
        env = {
            **os.environ,
            "BA_PORT": str(self.port),
            "BA_DATABASE_URL": self.database_url,
            "BA_SECRET": self.secret,
            "BA_JWT_ALG": self.alg,
            "BETTER_AUTH_TELEMETRY": "0",
        }
        for name, value in (
            ("BA_ROTATION_INTERVAL", self.rotation_interval),
            ("BA_GRACE_PERIOD", self.grace_period),
        ):
            env.pop(name, None)
            if value is not None:
                env[name] = str(value)
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [node, "server.mjs"],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        exited = self._ready.wait(START_TIMEOUT)  # set without READY means EOF
        if not self._listening:
            self.stop()
            reason = (
                f"exited with code {self._process.returncode}"
                if exited
                else f"was not ready within {START_TIMEOUT:.0f}s"
            )
            raise RuntimeError(f"Better Auth server {reason}; output:\n{self.output}")

    def _pump(self) -> None:
        # Keep draining so a chatty server never blocks on a full pipe.
        assert self._process is not None
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._output.append(line)
            if line.startswith("READY "):
                self._listening = True
                self._ready.set()
        self._ready.set()  # exited: wake start() so it reports the failure

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _client(self) -> httpx.Client:
        # Origin is only checked when cookies are sent, but a browser always
        # sends it, so do the same; baseURL is a trusted origin by default.
        return httpx.Client(base_url=self.base_url, headers={"Origin": self.base_url}, timeout=30)

    def sign_up(self, email: str, password: str, name: str) -> str:
        """Register an email/password user; return its id (the JWT ``sub``)."""
        with self._client() as client:
            body = _json(
                client.post(
                    "/api/auth/sign-up/email",
                    json={"email": email, "password": password, "name": name},
                )
            )
        user_id: str = body["user"]["id"]
        return user_id

    def token_for(self, email: str, password: str) -> str:
        """Sign in and exchange the session cookie for a freshly minted JWT."""
        with self._client() as client:
            _json(
                client.post(
                    "/api/auth/sign-in/email",
                    json={"email": email, "password": password},
                )
            )
            body = _json(client.get("/api/auth/token"))
        token: str = body["token"]
        return token

    def jwks(self) -> dict[str, Any]:
        with self._client() as client:
            keys: dict[str, Any] = _json(client.get(self.jwks_url))
        return keys
