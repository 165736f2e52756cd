"""Request bodies: Litestar's ``MsgspecDTO``, decoding strictly and reporting every offending field.

Litestar's DTO backend decodes with ``strict=False`` (``"true"`` and ``1`` become ``True``, a number
becomes a timestamp) and stops at the first error; a model's ``__post_init__`` error would escape as a
500. ``StrictMsgspecDTO`` changes just that: its backend decodes with ``strict=True``, and a body that
does not fit is a 400 listing every offending field, or saying where the JSON breaks.
"""

from __future__ import annotations

import json
import re
from typing import Any, Generic, TypeVar, cast, get_type_hints

import msgspec
from litestar.connection import ASGIConnection
from litestar.dto import DTOData, MsgspecDTO
from litestar.dto._codegen_backend import DTOCodegenBackend
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.spec import Reference, Schema
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE
from litestar.typing import FieldDefinition

T = TypeVar("T", bound=msgspec.Struct)
_AT_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>.*)`$")
_AT_BYTE = re.compile(r"^JSON is malformed: (?P<what>.*) \(byte (?P<byte>\d+)\)$")


class FieldErrors(ValueError):
    """Per-field problems a model finds after decoding (raised from ``__post_init__`` or ``clean``)."""

    def __init__(self) -> None:
        super().__init__("invalid fields")
        self.errors: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append({"field": field, "message": message})

    def raise_if_any(self) -> None:
        if self.errors:
            raise self


class _StrictBackend(DTOCodegenBackend):
    """Litestar's DTO backend, decoding JSON with ``strict=True``.

    Private API: Litestar has no public switch for this. Its DTO backends decode with ``strict=False``
    on purpose since litestar-org/litestar#3685 (commit b058d64f9), for form and msgpack data alike.
    tests/test_dto_backend.py pins it, with a control that fails once Litestar's own DTO is strict.
    """

    def parse_raw(self, raw: bytes, asgi_connection: ASGIConnection[Any, Any, Any, Any]) -> Any:
        parsed = msgspec.json.decode(raw, type=self.annotation, strict=True)
        if parsed is None:  # an optional body sent as `null` is still not an object (left out, it is None)
            raise msgspec.ValidationError("Expected `object`, got `null`")
        return parsed


class StrictMsgspecDTO(MsgspecDTO[T], Generic[T]):
    """``MsgspecDTO`` for request bodies: JSON only (else 415), strict, every problem a 400.

    With ``DTOConfig(partial=True)`` the handler takes ``DTOData[Model]``; the given fields are then
    checked by the model's ``clean(fields) -> fields`` classmethod, as ``__post_init__`` checks a whole one.
    """

    @classmethod
    def create_for_field_definition(
        cls, field_definition: FieldDefinition, handler_id: str, backend_cls: Any = None
    ) -> None:
        super().create_for_field_definition(field_definition, handler_id, backend_cls or _StrictBackend)

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: Any
    ) -> Reference | Schema:
        """The model's own schema (its name, defaults, bounds and examples), not a per-handler copy.

        A partial DTO documents ``<Model>Patch``: the same fields, none required.
        """
        model: type[Any] = cls.model_type
        if cls.config.partial:
            model = _patch_model(model)
        reference = schema_creator.for_field_definition(FieldDefinition.from_annotation(model))
        if cls.config.partial:
            registered = schema_creator.schema_registry.get_schema_for_field_definition(
                FieldDefinition.from_annotation(model)
            )
            for prop in (registered.properties or {}).values():
                # ``X | UnsetType`` renders as a one-branch ``oneOf``: say ``X`` itself.
                if isinstance(prop, Schema) and prop.one_of and len(prop.one_of) == 1:
                    only = prop.one_of[0]
                    prop.one_of = None
                    if isinstance(only, Reference):
                        prop.all_of = [only]
                        continue
                    for name, value in vars(only).items():
                        if value is not None and getattr(prop, name, None) is None:
                            setattr(prop, name, value)
            registered.required = None
        return cast("Reference | Schema", reference)

    def decode_bytes(self, value: bytes) -> Any:
        request = self.asgi_connection
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise HTTPException(
                status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail="Request bodies must be application/json"
            )
        try:
            data = super().decode_bytes(value)
            if isinstance(data, DTOData):
                # ``DTOData(backend, values)`` is public; the backend of the one we got is not (pinned by
                # tests/test_dto_backend.py).
                data = DTOData(data._backend, self.model_type.clean(data.as_builtins()))  # type: ignore[attr-defined]
            return data
        except (msgspec.MsgspecError, FieldErrors, RecursionError) as exc:
            raise ValidationException(
                detail=f"Validation failed for {request.scope.get('method')} {request.url.path}",
                extra=body_errors(value, self.model_type, exc, partial=self.config.partial),
            ) from None


_PATCH_MODELS: dict[type[Any], type[msgspec.Struct]] = {}


def _patch_model(model: type[Any]) -> type[msgspec.Struct]:
    """``model``'s fields, each optional: what a partial update's body looks like, for OpenAPI."""
    if model not in _PATCH_MODELS:
        hints = get_type_hints(model, include_extras=True)
        fields = [
            (f.name, hints[f.name] | msgspec.UnsetType, msgspec.UNSET) for f in msgspec.structs.fields(model)
        ]
        _PATCH_MODELS[model] = msgspec.defstruct(
            f"{model.__name__}Patch", fields, kw_only=True, module=model.__module__
        )
    return _PATCH_MODELS[model]


def body_errors(raw: bytes, model: type[Any], first: Exception, *, partial: bool) -> list[dict[str, str]]:
    """Every problem with ``raw`` as a ``model``: where the JSON breaks, or each offending field.

    Runs only for a body that failed, so it may decode again, field by field."""
    if isinstance(first, FieldErrors):
        return first.errors
    if isinstance(first.__cause__, FieldErrors):
        return first.__cause__.errors
    try:
        obj = msgspec.json.decode(raw)
    except msgspec.ValidationError:  # a number out of range: the typed decode knew which field
        return [_split(first)]
    except msgspec.DecodeError as exc:
        return [{"field": "body", "message": _malformed(raw, exc)}]
    except RecursionError:
        return [{"field": "body", "message": "JSON is nested too deeply"}]
    if not isinstance(obj, dict):
        return [{"field": "body", "message": f"must be a JSON object, not {_json_type(obj)}"}]
    errors: list[dict[str, str]] = []
    fields = {f.encode_name: f for f in msgspec.structs.fields(model)}
    errors.extend({"field": k, "message": "is not a writable field"} for k in obj if k not in fields)
    for name, f in fields.items():
        if name not in obj:
            if f.required and not partial:
                errors.append({"field": name, "message": "is required"})
            continue
        try:
            msgspec.convert(obj[name], type=_strip_unset(f.type), strict=True)
        except msgspec.ValidationError as exc:
            errors.append(_split(exc, prefix=name))
    if not errors:
        # Each field fits its type: what is left is the model's own checks (blank title, duplicate tags).
        try:
            if partial:
                model.clean(obj)
            else:
                msgspec.convert(obj, type=model, strict=True)
        except FieldErrors as exc:
            return exc.errors
        except msgspec.ValidationError as exc:
            return exc.__cause__.errors if isinstance(exc.__cause__, FieldErrors) else [_split(exc)]
    return errors or [_split(first)]


def _malformed(raw: bytes, exc: msgspec.DecodeError) -> str:
    """'Malformed JSON at byte N: what', N counted from 0 in the body as sent."""
    if match := _AT_BYTE.match(str(exc)):
        at = int(match["byte"])
        if match["what"] == "trailing characters":  # msgspec counts one past the first of them
            at -= 1
        return f"malformed JSON at byte {at}: {match['what']}"
    # msgspec says "truncated" for an early end, broken UTF-8 and a lone surrogate escape alike.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"malformed JSON at byte {bad.start}: not valid UTF-8"
    if not text.strip():
        return "the request body is empty or white space"
    try:
        json.loads(text)
    except json.JSONDecodeError as bad:
        return f"malformed JSON at byte {len(text[: bad.pos].encode())}: {bad.msg.lower()}"
    except (RecursionError, ValueError):
        pass
    if lone := re.search(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}", text):
        return f"malformed JSON at byte {len(text[: lone.start()].encode())}: a lone UTF-16 surrogate escape"
    return f"malformed JSON at byte {len(raw)}: the body ends early"


def _json_type(obj: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if obj is None else names.get(type(obj), "a value")


def _split(exc: msgspec.ValidationError | Exception, prefix: str = "") -> dict[str, str]:
    text = str(exc)
    match = _AT_PATH.search(text)
    message = text[: match.start()] if match else text
    path = (prefix + (match.group("path") if match else "")).lstrip(".")
    if path.startswith("[...]"):
        path = ""
    if unknown := _UNKNOWN.match(message):
        return {"field": unknown.group("name"), "message": "is not a writable field"}
    return {"field": path or "body", "message": message}


def _strip_unset(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None)
    if args and msgspec.UnsetType in args:
        kept = tuple(a for a in args if a is not msgspec.UnsetType)
        result = kept[0]
        for arg in kept[1:]:
            result = result | arg
        return result
    return annotation
