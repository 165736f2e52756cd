"""``Idempotency-Key`` on the HTTP side: the header, the request's fingerprint, the replies."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import ValidationException
from litestar.params import HeaderParameter
from litestar.types import ExceptionHandlersMap

from backend.errors import problem
from backend.http.headers import documented_header
from backend.idempotency import KeyInFlight, KeyReused, Once, Replayed

HEADER = "Idempotency-Key"
RETRY_IN_FLIGHT_SECONDS = "1"
_KEY = re.compile(r"[\x20-\x7e]{1,255}")

REPLAYED_HEADER = documented_header(
    "Idempotent-Replayed",
    "`true` when this is the stored answer to an earlier request with the same key.",
    "true",
)
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name=HEADER,
        description="Makes a retry safe: the first request with a key is processed and its answer kept "
        "for 24 hours; the same key with the same body gets that answer again (with "
        "`Idempotent-Replayed: true`) and changes nothing. 1-255 printable ASCII characters; use a new "
        "UUID per user action and reuse it on retry.",
    ),
]


async def request_once(request: Request[Any, Any, Any], key: str | None) -> Once | None:
    """The request's key and fingerprint (method, path and the body's JSON, key order aside); None
    without a key. A malformed key is a 400."""
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise ValidationException(
            detail=f"{HEADER} must be 1-255 printable ASCII characters",
            extra=[{"field": HEADER, "message": "must be 1-255 printable ASCII characters"}],
        )
    # The body was decoded already (the handler has its data), so this cannot fail.
    canonical = msgspec.json.encode(msgspec.json.decode(await request.body()), order="sorted")
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode() + canonical).hexdigest()
    return Once(key, digest)


async def provide_once(
    request: Request[Any, Any, Any], idempotency_key: IdempotencyKey = None
) -> Once | None:
    """The ``once`` dependency of a handler that accepts ``Idempotency-Key`` (documented as its header)."""
    return await request_once(request, idempotency_key)


def _replayed(_: Request[Any, Any, Any], exc: Replayed) -> Response[bytes]:
    stored = exc.response
    headers = {"Idempotent-Replayed": "true"}
    if stored.location:
        headers["Location"] = stored.location
    if stored.etag:
        headers["ETag"] = stored.etag
    return Response(
        stored.body.encode(), status_code=stored.status_code, media_type="application/json", headers=headers
    )


def _in_flight(_: Request[Any, Any, Any], __: KeyInFlight) -> Response[Any]:
    return problem(
        409,
        f"A request with this {HEADER} is still being processed; retry shortly",
        headers={"Retry-After": RETRY_IN_FLIGHT_SECONDS},
    )


def _reused(_: Request[Any, Any, Any], __: KeyReused) -> Response[Any]:
    return problem(422, f"This {HEADER} was used for another request; use a new key for a new action")


exception_handlers: ExceptionHandlersMap = {Replayed: _replayed, KeyInFlight: _in_flight, KeyReused: _reused}
