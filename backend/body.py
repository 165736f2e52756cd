"""Request bodies: decoded by msgspec in strict mode, every offending field reported.

Litestar's own body parsing converts leniently (``"true"`` or ``1`` become ``True``, an integer becomes a
timestamp). The contract wants a 400 for a wrong type, so handlers use ``dto=StrictBody[Model]``.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any, ClassVar, Generic, TypeVar

import msgspec
from litestar.dto import AbstractDTO, DTOConfig, DTOFieldDefinition
from litestar.exceptions import ClientException, HTTPException, ValidationException
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE
from litestar.typing import FieldDefinition

T = TypeVar("T")
_AT_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>.*)`$")


class FieldErrors(ValueError):
    """Collects per-field problems found after decoding (raised from ``__post_init__``)."""

    def __init__(self) -> None:
        super().__init__("invalid fields")
        self.errors: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append({"field": field, "message": message})

    def raise_if_any(self) -> None:
        if self.errors:
            raise self


def _split(exc: msgspec.ValidationError, prefix: str = "") -> dict[str, str]:
    text = str(exc)
    match = _AT_PATH.search(text)
    message = text[: match.start()] if match else text
    path = (prefix + (match.group("path") if match else "")).lstrip(".")
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


def collect_errors(raw: bytes, model: type[Any], first: msgspec.ValidationError) -> list[dict[str, str]]:
    """Every offending field, not only the first one msgspec stopped at."""
    if isinstance(first.__cause__, FieldErrors):
        return first.__cause__.errors
    obj = msgspec.json.decode(raw)
    if not isinstance(obj, dict):
        return [_split(first)]
    errors: list[dict[str, str]] = []
    fields = {f.encode_name: f for f in msgspec.structs.fields(model)}
    errors.extend({"field": k, "message": "is not a writable field"} for k in obj if k not in fields)
    for name, f in fields.items():
        if name not in obj:
            if f.required:
                errors.append({"field": name, "message": "is required"})
            continue
        try:
            msgspec.convert(obj[name], type=_strip_unset(f.type), strict=True)
        except msgspec.ValidationError as exc:
            errors.append(_split(exc, prefix=name))
    if not errors:
        try:
            msgspec.convert(obj, type=model, strict=True)
        except msgspec.ValidationError as exc:
            return exc.__cause__.errors if isinstance(exc.__cause__, FieldErrors) else [_split(exc)]
    return errors or [_split(first)]


def decode_strict(raw: bytes, model: type[T], method: str, path: str) -> T:
    """Decode ``raw`` JSON into ``model``; 400 with a list of field errors when it does not fit."""
    try:
        return msgspec.json.decode(raw, type=model)
    except msgspec.ValidationError as exc:
        raise ValidationException(
            detail=f"Validation failed for {method} {path}", extra=collect_errors(raw, model, exc)
        ) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # msgspec reports a lone surrogate escape as "truncated"; say what it is.
        reason = (
            "invalid UTF-8 or a lone surrogate"
            if "truncated" in str(exc) or isinstance(exc, UnicodeDecodeError)
            else str(exc)
        )
        raise ClientException(detail=f"Request body is not valid JSON: {reason}") from None


class StrictBody(AbstractDTO[T], Generic[T]):
    """A DTO that only decodes: ``dto=StrictBody[TaskCreate]``; responses are encoded as usual."""

    config: ClassVar[DTOConfig] = DTOConfig()

    @classmethod
    def generate_field_definitions(cls, model_type: type[Any]) -> Generator[DTOFieldDefinition, None, None]:
        yield from ()

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False

    @classmethod
    def create_for_field_definition(
        cls, field_definition: FieldDefinition, handler_id: str, backend_cls: Any = None
    ) -> None:
        """Nothing to build: decoding is one msgspec call."""

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: Any
    ) -> Any:
        return schema_creator.for_field_definition(FieldDefinition.from_annotation(cls.model_type))

    def decode_bytes(self, value: bytes) -> T:
        request = self.asgi_connection
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise HTTPException(
                status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail="Request bodies must be application/json"
            )
        return decode_strict(value, self.model_type, str(request.scope.get("method", "")), request.url.path)

    def decode_builtins(self, value: dict[str, Any]) -> T:
        raise ClientException(detail="Request body must be JSON")
