"""Query parameters exactly as written: Litestar's parsing is lenient where the contract is not."""

from __future__ import annotations

import inspect
import re
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import NoneType
from typing import Any, get_args

import msgspec
from litestar.connection import ASGIConnection
from litestar.constants import RESERVED_KWARGS
from litestar.enums import ParamType
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.params import BodyKwarg, DependencyKwarg, ParameterKwarg

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
        if isinstance(kwarg, ParameterKwarg) and kwarg.param_type is not ParamType.QUERY:
            continue
        # ``QueryParameter(name=...)`` (and the older ``Parameter(query=...)``, which sets ``name`` too)
        key = kwarg.name if isinstance(kwarg, ParameterKwarg) and kwarg.name else name
        annotation = field.annotation
        found.append(
            QueryParameter(key, field.is_non_string_sequence, _null_is_none(annotation), _form(annotation))
        )
    return tuple(found)


@dataclass(frozen=True, slots=True)
class _Rules:
    query: tuple[QueryParameter, ...]
    idempotent: bool


_PATH_PARAMETER = re.compile(r"\{(\w+)(?::[^}]*)?\}")
# By the handler's function: Litestar hands guards a copy of its own handlers (see backend.http.routes).
_RULES: weakref.WeakKeyDictionary[Any, _Rules] = weakref.WeakKeyDictionary()


def _rules(handler: BaseRouteHandler) -> _Rules:
    rules = _RULES.get(handler.fn)
    if rules is None:
        path_names = {name for path in handler.paths for name in _PATH_PARAMETER.findall(path)}
        query = declared_query(handler, path_names)
        idempotent = _honours_idempotency_key(handler)
        rules = _RULES[handler.fn] = _Rules(query, idempotent)
    return rules


def _honours_idempotency_key(handler: BaseRouteHandler) -> bool:
    """The handler, or a dependency it asks for (e.g. ``backend.http.idempotency.provide_once``), takes
    the ``idempotency_key`` header parameter."""
    parameters = handler.parsed_fn_signature.parameters
    if IDEMPOTENCY_PARAMETER in parameters:
        return True
    providers = handler.resolve_dependencies()
    return any(
        IDEMPOTENCY_PARAMETER in inspect.signature(providers[name].dependency).parameters
        for name in parameters
        if name in providers
    )


async def strict_query(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """A guard for every route, driven by the handler's own signature: 400 for a single-valued query
    parameter given twice, for the literal ``null`` where Litestar would read it as "not given", for a
    number or boolean not written plainly, and for an ``Idempotency-Key`` sent to a route that does not
    honour one (it would be silently ignored)."""
    rules = _rules(handler)
    errors = []
    # OPTIONS: Litestar's own handler, which answers every request alike.
    idempotency_checked = not rules.idempotent and connection.scope.get("method") != "OPTIONS"
    if idempotency_checked and IDEMPOTENCY_HEADER in connection.headers:
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
