"""ETags of versioned resources: the version, quoted (``"3"``), and the preconditions on them."""

from __future__ import annotations

import re

from litestar.datastructures import ResponseHeader
from litestar.exceptions import ValidationException

from backend.http.headers import documented_header

MAX_VERSION = 2**31 - 1  # version columns are PostgreSQL integers
# RFC 9110 8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text.
_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*')
# The only opaque tags we hand out: a version in its canonical form ("01" is another tag than "1").
_VERSION = re.compile(r"[1-9][0-9]{0,9}")


def etag(version: int) -> str:
    return f'"{version}"'


ETAG_HEADER: ResponseHeader = documented_header("ETag", "The current version, quoted.", '"3"')


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
