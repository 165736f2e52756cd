"""Query parameters exactly as written: Litestar's parsing is lenient where the contract is not."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from litestar import Request
from litestar.exceptions import ValidationException

_DIGITS = re.compile(r"[0-9]{1,18}")


def require_canonical(
    request: Request[Any, Any, Any], *, integers: Iterable[str] = (), booleans: Iterable[str] = ()
) -> None:
    """400 unless each named parameter is given at most once, in plain form.

    Litestar converts query strings leniently (``limit=1e2`` and ``limit=5.0`` become integers,
    ``completed=1`` becomes true and ``completed=null`` none): the contract says a bad value is a 400.
    """
    query = request.query_params
    errors = []
    for names, check, message in (
        (integers, _DIGITS.fullmatch, "must be a whole number written in digits"),
        (booleans, {"true", "false"}.__contains__, "must be true or false"),
    ):
        for name in names:
            values = query.getall(name, [])
            if len(values) > 1:
                errors.append({"field": name, "message": "must be given at most once"})
            elif values and not check(values[0]):
                errors.append({"field": name, "message": message})
    if errors:
        raise ValidationException(detail="Invalid query parameters", extra=errors)
