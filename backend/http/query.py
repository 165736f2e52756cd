"""Query parameters exactly as written: Litestar's parsing is lenient where the contract is not."""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import NoneType
from typing import Any, get_args

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.constants import RESERVED_KWARGS
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.params import BodyKwarg, DependencyKwarg, ParameterKwarg

_DIGITS = re.compile(r"[0-9]{1,18}")
_INTEGER = (re.compile(r"-?[0-9]{1,18}").fullmatch, "must be a whole number written in digits")
_BOOLEAN = ({"true", "false"}.__contains__, "must be true or false")
# Handlers that take this parameter honour an Idempotency-Key (backend.http.idempotency).
IDEMPOTENCY_PARAMETER = "idempotency_key"
IDEMPOTENCY_HEADER = "idempotency-key"


@dataclass(frozen=True, slots=True)
class QueryParameter:
    """One query parameter a handler declares: its key in the query string, whether it may repeat, and
    whether Litestar would read the literal ``null`` as "not given" (an optional non-string type)."""

    key: str
    repeats: bool
    null_is_none: bool
    # A value's required spelling (Litestar also reads ``limit=1e2`` and ``completed=1``), and the message.
    form: tuple[Callable[[str], object], str] | None = None


def _null_is_none(annotation: Any) -> bool:
    # Exactly the conversion Litestar applies (msgspec, not strict): ``null`` becomes None for an
    # optional enum, boolean, number or timestamp, and stays the text "null" for a string.
    try:
        return msgspec.convert("null", annotation, strict=False) is None
    except (msgspec.ValidationError, TypeError):
        return False


def _form(annotation: Any) -> tuple[Callable[[str], object], str] | None:
    types = [t for t in (get_args(annotation) or (annotation,)) if t is not NoneType]
    if types == [bool]:
        return _BOOLEAN
    if types == [int]:
        return _INTEGER
    return None


def declared_query(handler: BaseRouteHandler, path_names: Iterable[str]) -> tuple[QueryParameter, ...]:
    """The query parameters of ``handler``'s signature: not a path parameter, dependency, header, cookie,
    body or one of Litestar's reserved names."""
    skip = {*RESERVED_KWARGS, *path_names, *handler.resolve_dependencies()}
    found = []
    for name, field in handler.parsed_fn_signature.parameters.items():
        kwarg = field.kwarg_definition
        if name in skip or isinstance(kwarg, (DependencyKwarg, BodyKwarg)):
            continue
        if isinstance(kwarg, ParameterKwarg) and (kwarg.header or kwarg.cookie):
            continue
        key = kwarg.query if isinstance(kwarg, ParameterKwarg) and kwarg.query else name
        annotation = field.annotation
        found.append(
            QueryParameter(key, field.is_non_string_sequence, _null_is_none(annotation), _form(annotation))
        )
    return tuple(found)


@dataclass(frozen=True, slots=True)
class _Rules:
    query: tuple[QueryParameter, ...]
    idempotent: bool


_RULES: weakref.WeakKeyDictionary[BaseRouteHandler, _Rules] = weakref.WeakKeyDictionary()


def _rules(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> _Rules:
    rules = _RULES.get(handler)
    if rules is None:
        query = declared_query(handler, connection.path_params)
        idempotent = IDEMPOTENCY_PARAMETER in handler.parsed_fn_signature.parameters
        rules = _RULES[handler] = _Rules(query, idempotent)
    return rules


def strict_query(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """A guard for every route, driven by the handler's own signature: 400 for a single-valued query
    parameter given twice, for the literal ``null`` where Litestar would read it as "not given", for a
    number or boolean not written plainly, and for an ``Idempotency-Key`` sent to a route that does not
    honour one (it would be silently ignored)."""
    rules = _rules(connection, handler)
    errors = []
    if not rules.idempotent and IDEMPOTENCY_HEADER in connection.headers:
        errors.append({"field": "Idempotency-Key", "message": "is not supported on this route"})
    if rules.query:
        query = connection.query_params
        for parameter in rules.query:
            values = query.getall(parameter.key, [])
            if len(values) > 1 and not parameter.repeats:
                errors.append({"field": parameter.key, "message": "must be given at most once"})
            elif parameter.null_is_none and "null" in values:
                errors.append({"field": parameter.key, "message": "must not be null (leave it out instead)"})
            elif parameter.form and not parameter.repeats and values and not parameter.form[0](values[0]):
                errors.append({"field": parameter.key, "message": parameter.form[1]})
    if errors:
        raise ValidationException(detail="Invalid request parameters", extra=errors)


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
