"""ETags are the task's version, quoted: ``"3"``."""

from __future__ import annotations

import re

from litestar.exceptions import ValidationException

MAX_VERSION = 2**31 - 1  # the version column is a PostgreSQL integer
_TAG = re.compile(r'\s*(W/)?"(\d{1,18})"\s*')


def etag(version: int) -> str:
    return f'"{version}"'


def _tags(header: str, field: str) -> list[tuple[bool, int]]:
    tags = []
    for part in header.split(","):
        match = _TAG.fullmatch(part)
        if match is None:
            raise ValidationException(
                detail=f'{field} must be "*" or a list of entity tags like "3"',
                extra=[{"field": field, "message": 'expected "*" or entity tags like "3"'}],
            )
        tags.append((match.group(1) is not None, int(match.group(2))))
    return tags


def parse_if_match(header: str | None) -> tuple[int, ...] | None:
    """The versions ``If-Match`` accepts; None when any existing version will do (absent or ``*``)."""
    if header is None or header.strip() == "*":
        return None
    # If-Match compares strongly (RFC 9110 13.1.1): a weak tag never matches; nor can a version past
    # the column's range, so it is dropped here (an empty tuple matches nothing: 412).
    return tuple(v for weak, v in _tags(header, "If-Match") if not weak and v <= MAX_VERSION)


def matches_current(header: str, version: int) -> bool:
    """``If-None-Match``: weak comparison, ``*`` matches any existing task."""
    if header.strip() == "*":
        return True
    return any(v == version for _, v in _tags(header, "If-None-Match"))
