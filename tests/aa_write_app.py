"""The API plus one route that writes through Advanced Alchemy's own service ``create`` (the ORM path),
for tests/test_session_commit.py: it answers 201 only if the request's session is committed."""

from __future__ import annotations

from datetime import UTC, datetime

from advanced_alchemy.extensions.litestar.providers import create_service_provider
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from litestar import Litestar, post
from litestar.di import Provide

from backend.app import create_app as create_api
from backend.idempotency import TTL, IdempotencyKey

ROUTE = "/test/aa-create/{user:str}/{key:str}"


class KeyRepository(SQLAlchemyAsyncRepository[IdempotencyKey]):
    model_type = IdempotencyKey


class KeyService(SQLAlchemyAsyncRepositoryService[IdempotencyKey, KeyRepository]):
    repository_type = KeyRepository


@post(ROUTE, dependencies={"keys": Provide(create_service_provider(KeyService))})
async def aa_create(keys: KeyService, user: str, key: str) -> dict[str, str]:
    row = IdempotencyKey(
        user_id=user,
        key=key,
        fingerprint="0" * 64,
        status_code=201,
        body="{}",
        expires_at=datetime.now(UTC) + TTL,
    )
    created = await keys.create(row)
    return {"key": created.key}


def create_app() -> Litestar:
    app = create_api()
    app.register(aa_create)
    return app
