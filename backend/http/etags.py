"""ETags of versioned resources: the version, quoted (``"3"``), the preconditions on them, and the
response that carries one."""

from __future__ import annotations

import re
from typing import Annotated, Protocol, TypeVar

from litestar import Response
from litestar.datastructures import ResponseHeader
from litestar.exceptions import ValidationException
from litestar.params import HeaderParameter
from litestar.status_codes import HTTP_200_OK, HTTP_304_NOT_MODIFIED

from backend.http.headers import documented_header

MAX_VERSION = 2**31 - 1  # version columns are PostgreSQL integers
# RFC 9110 8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text.
_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*')
# The only opaque tags we hand out: a version in its canonical form ("01" is another tag than "1").
_VERSION = re.compile(r"[1-9][0-9]{0,9}")


def etag(version: int) -> str:
    return f'"{version}"'


ETAG_HEADER: ResponseHeader = documented_header("ETag", "The current version, quoted.", '"3"')
IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description='Apply only if the current ETag is one of these (e.g. `"3"`), else 412.',
    ),
]
IfNoneMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-None-Match",
        description='The ETag you hold (e.g. "3"): while it is current, 304 with no body.',
    ),
]


class Versioned(Protocol):
    @property
    def version(self) -> int: ...


VersionedT = TypeVar("VersionedT", bound=Versioned)


def with_etag(
    item: VersionedT, status_code: int = HTTP_200_OK, location: str | None = None
) -> Response[VersionedT]:
    """``item`` as the response body, its ``ETag`` (and ``Location``, for a create) as headers."""
    headers = {"ETag": etag(item.version)}
    if location:
        headers["Location"] = location
    return Response(item, status_code=status_code, headers=headers)


def unless_not_modified(item: VersionedT, if_none_match: str | None) -> Response[VersionedT]:
    """304 without a body when ``If-None-Match`` names the current version, else the item with its ETag."""
    if if_none_match and matches_current(if_none_match, item.version):
        return Response(None, status_code=HTTP_304_NOT_MODIFIED, headers={"ETag": etag(item.version)})  # type: ignore[arg-type]
    return with_etag(item)


def _tags(header: str, field: str) -> list[tuple[bool, int | None]]:
    """(weak?, version or None for a well-formed tag that names no version of ours)."""
    tags: list[tuple[bool, int | None]] = []
    for part in header.split(","):
        match = _TAG.fullmatch(part)
        if match is None:
            raise ValidationException(
                detail=f'{field} must be "*" or a list of entity tags like "3"',
                extra=[{"field": field, "message": 'expected "*" or entity tags like "3"'}],
            )
        opaque = match.group(2)
        version = int(opaque) if _VERSION.fullmatch(opaque) and int(opaque) <= MAX_VERSION else None
        tags.append((match.group(1) is not None, version))
    return tags


def parse_if_match(header: str | None) -> tuple[int, ...] | None:
    """The versions ``If-Match`` accepts; None when any existing version will do (absent or ``*``)."""
    if header is None or header.strip() == "*":
        return None
    # If-Match compares strongly (RFC 9110 13.1.1): a weak tag never matches; neither does a tag that is
    # not one we hand out. An empty tuple matches nothing: 412.
    return tuple(v for weak, v in _tags(header, "If-Match") if not weak and v is not None)


def matches_current(header: str, version: int) -> bool:
    """``If-None-Match``: weak comparison, ``*`` matches any existing resource."""
    if header.strip() == "*":
        return True
    return any(v == version for _, v in _tags(header, "If-None-Match"))
