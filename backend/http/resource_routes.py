"""The routes every owned, versioned resource has, as its OpenAPI documents them: create (Location, ETag,
Idempotency-Key), get one (ETag, 304), update (PATCH and PUT alike), delete, and writes answering the
item with its ETag. A resource's controller names its summary and DTO; the rest is the same for all."""

from __future__ import annotations

from typing import Any

from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT
from litestar.types import Method

from backend.errors import problem_responses
from backend.http.etags import ETAG_HEADER
from backend.http.headers import documented_header
from backend.http.idempotency import REPLAYED_HEADER
from backend.http.routes import SharedHandlerRoute, delete, get, post, route

_BODY_PROBLEMS = (413, 415)


def create_route(noun: str, example_url: str, **options: Any) -> SharedHandlerRoute:
    """``POST /``: 201 with the new item, its ``Location`` and ``ETag``; ``Idempotency-Key`` accepted."""
    location = documented_header("Location", f"The new {noun}'s URL.", example_url)
    return post(
        "/",
        return_dto=None,
        status_code=HTTP_201_CREATED,
        responses=problem_responses(409, 422, *_BODY_PROBLEMS),
        response_description=f"The new {noun} (or, for a repeated Idempotency-Key, the first answer again).",
        response_headers=[location, ETAG_HEADER, REPLAYED_HEADER],
        **options,
    )


def read_route(path: str, **options: Any) -> SharedHandlerRoute:
    """``GET`` one item: its ``ETag``; 304 without a body for a matching ``If-None-Match``."""
    return get(
        path,
        responses={**problem_responses(404), 304: ResponseSpec(None, description="Not modified")},
        response_headers=[ETAG_HEADER],
        **options,
    )


def write_route(path: str, *, methods: tuple[Method, ...] = ("POST",), **options: Any) -> SharedHandlerRoute:
    """A write answering the item and its ``ETag``: 404, 412 (``If-Match``), and the body's problems."""
    return route(
        path,
        http_method=list(methods),
        return_dto=None,
        status_code=HTTP_200_OK,
        responses=problem_responses(404, 412, *_BODY_PROBLEMS),
        response_headers=[ETAG_HEADER],
        **options,
    )


def delete_route(path: str, **options: Any) -> SharedHandlerRoute:
    """``DELETE`` one item: 204; 404, 412 (``If-Match``)."""
    return delete(path, status_code=HTTP_204_NO_CONTENT, responses=problem_responses(404, 412), **options)
