"""Building blocks of wire Structs: field documentation, and the checks every text and timestamp needs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from litestar.dto import DTOConfig
from msgspec import Meta, Struct

from backend.http.dto import FieldErrors, StrictMsgspecDTO

T = TypeVar("T", bound=Struct)

TIMESTAMP_MESSAGE = "must be an RFC 3339 timestamp with a zone (Z or +01:00)"
OUT_OF_RANGE_MESSAGE = "must lie between years 1 and 9999 in UTC"


def doc(description: str, example: Any = None, **extra: Any) -> Meta:
    """OpenAPI text for a field: its description, an example, and schema keys msgspec cannot carry."""
    schema: dict[str, Any] = {"description": description}
    if example is not None:
        schema["examples"] = [example]
    if extra:
        schema["extra"] = extra
    return Meta(extra_json_schema=schema)


def check_text(errors: FieldErrors, field: str, value: str) -> bool:
    """False (and an error) when ``value`` holds NUL, which PostgreSQL text cannot store."""
    if "\x00" in value:
        errors.add(field, "must not contain NUL characters")
        return False
    return True


def clean_name(errors: FieldErrors, field: str, value: str, max_length: int) -> str:
    """``value`` trimmed; an error unless it is 1-``max_length`` characters after that."""
    text = value.strip()
    if not check_text(errors, field, text):
        return text
    if not text:
        errors.add(field, "must not be blank")
    elif len(text) > max_length:
        errors.add(field, f"must be at most {max_length} characters after trimming")
    return text


def in_utc(errors: FieldErrors, field: str, value: datetime | None) -> datetime | None:
    """``value`` in UTC, as the database stores and returns it; an error when it has no zone, or when
    UTC moves it out of the years a timestamp can hold (``9999-12-31T23:59:59-01:00``)."""
    if value is None:
        return None
    if value.tzinfo is None:
        errors.add(field, TIMESTAMP_MESSAGE)
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError:
        errors.add(field, OUT_OF_RANGE_MESSAGE)
        return value


def body_dtos(model: type[T]) -> tuple[type[StrictMsgspecDTO[T]], type[StrictMsgspecDTO[T]]]:
    """The strict DTOs of a write model: whole (a create), and partial (an update: a field left out stays
    as it is). Both refuse unknown and read-only fields by name."""
    whole = DTOConfig(forbid_unknown_fields=True)
    partial = DTOConfig(partial=True, forbid_unknown_fields=True)
    return (
        type(f"{model.__name__}DTO", (StrictMsgspecDTO[model],), {"config": whole}),  # type: ignore[valid-type]
        type(f"{model.__name__}PartialDTO", (StrictMsgspecDTO[model],), {"config": partial}),  # type: ignore[valid-type]
    )
