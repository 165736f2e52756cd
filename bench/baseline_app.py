"""The raw baseline the benchmark compares the API with: plain ASGI + asyncpg + PyJWT + msgspec.

No framework, no ORM, no validation beyond what the two routes need. It answers

    GET  /api/{user_id}/tasks      -> 200, the newest 50 tasks of the user (same columns and order as the API)
    POST /api/{user_id}/tasks      -> 201, INSERT ... RETURNING the new task
    GET  /health                   -> 200

with the same authentication work as the API (HS256 signature, ``exp`` required, subject == path user)
and the same connection pool bound as the API (``DATABASE_POOL_SIZE`` connections, a bounded wait of
``DATABASE_POOL_TIMEOUT`` seconds, then 503).

Serve it with ``uvicorn --factory bench.baseline_app:create_app`` from the repository root, with
``DATABASE_URL`` and ``JWT_SECRET`` set.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import jwt
import msgspec

COLUMNS = (
    "id, user_id, title, description, completed, completed_at, priority, tags, due_at, "
    "created_at, updated_at, version"
)
LIST_SQL = f"SELECT {COLUMNS} FROM tasks WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 50"
INSERT_SQL = (
    "INSERT INTO tasks (id, user_id, title, description, completed, completed_at, priority, tags, due_at, "
    "version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10) "
    f"RETURNING {COLUMNS}"
)


class Task(msgspec.Struct):
    id: uuid.UUID
    user_id: str
    title: str
    description: str | None
    completed: bool
    completed_at: datetime | None
    priority: str
    tags: list[str]
    due_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class TaskCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    title: str
    description: str | None = None
    completed: bool = False
    priority: str = "medium"
    tags: list[str] = msgspec.field(default_factory=list)
    due_at: datetime | None = None


_encode = msgspec.json.Encoder().encode
_decode_create = msgspec.json.Decoder(TaskCreate).decode
_JSON = [(b"content-type", b"application/json")]


def uuid7() -> uuid.UUID:
    value = bytearray(int(time.time() * 1000).to_bytes(6, "big") + secrets.token_bytes(10))
    value[6] = 0x70 | (value[6] & 0x0F)
    value[8] = 0x80 | (value[8] & 0x3F)
    return uuid.UUID(bytes=bytes(value))


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def send_json(
    send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON + (extra or [])})
    await send({"type": "http.response.body", "body": body})


def user_of(scope: dict[str, Any], secret: str) -> str | None:
    """The subject of a valid HS256 bearer token with ``exp``; None for anything else."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            try:
                claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp"]})
            except jwt.PyJWTError:
                return None
            sub = claims.get("sub")
            return sub if isinstance(sub, str) else None
    return None


async def read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class BaselineApp:
    """The ASGI app: the pool opens and closes with the lifespan; two routes and /health."""

    def __init__(self) -> None:
        self.secret = os.environ["JWT_SECRET"]
        self.pool_size = int(os.environ.get("DATABASE_POOL_SIZE", "64"))
        self.pool_timeout = float(os.environ.get("DATABASE_POOL_TIMEOUT", "5"))
        self.pool: asyncpg.Pool | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == "/health":
            await send_json(send, 200, b'{"status":"ok"}')
            return
        parts = path.split("/")  # ['', 'api', user, 'tasks']
        if len(parts) != 4 or parts[1] != "api" or parts[3] != "tasks":
            await send_json(send, 404, b'{"detail":"Not Found"}')
            return
        user = user_of(scope, self.secret)
        if user is None:
            await send_json(send, 401, b'{"detail":"invalid token"}')
            return
        if user != parts[2]:
            await send_json(send, 403, b'{"detail":"forbidden"}')
            return
        try:
            if scope["method"] == "GET":
                await self.list_tasks(user, send)
            elif scope["method"] == "POST":
                await self.create_task(user, receive, send)
            else:
                await send_json(send, 405, b'{"detail":"Method Not Allowed"}')
        except TimeoutError:
            await send_json(send, 503, b'{"detail":"database busy"}', [(b"retry-after", b"1")])

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.pool = await asyncpg.create_pool(
                    _dsn(os.environ["DATABASE_URL"]), min_size=self.pool_size, max_size=self.pool_size
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def list_tasks(self, user: str, send: Any) -> None:
        assert self.pool is not None
        async with self.pool.acquire(timeout=self.pool_timeout) as conn:
            rows = await conn.fetch(LIST_SQL, user)
        await send_json(send, 200, _encode([Task(*r) for r in rows]))

    async def create_task(self, user: str, receive: Any, send: Any) -> None:
        assert self.pool is not None
        try:
            data = _decode_create(await read_body(receive))
        except msgspec.ValidationError as exc:
            await send_json(send, 400, _encode({"detail": str(exc)}))
            return
        now = datetime.now(UTC)
        async with self.pool.acquire(timeout=self.pool_timeout) as conn:
            row = await conn.fetchrow(
                INSERT_SQL,
                uuid7(),
                user,
                data.title.strip(),
                data.description,
                data.completed,
                now if data.completed else None,
                data.priority,
                [t.strip().lower() for t in data.tags],
                data.due_at,
                now,
            )
        task = Task(*row)
        location = f"/api/{user}/tasks/{task.id}".encode()
        await send_json(send, 201, _encode(task), [(b"location", location), (b"etag", b'"1"')])


def create_app() -> BaselineApp:
    return BaselineApp()
