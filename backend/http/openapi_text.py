"""What the interactive docs show, made right once for every operation (on the exported dictionary).

Scalar (``/schema``) shows summaries and response descriptions as plain labels (backticks stay literal),
a nullable query parameter as the type of its first branch (a date-time string became "number"), an
enum's ``null`` as a value to pick, Litestar's stock "Request fulfilled, document follows" as what a
200 returns, the first example of a body as what "Test Request" sends, and makes up a value for a field
without an example (a ``completed_at`` timestamp on a task that is not completed).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
NULL = {"type": "null"}

# The owner guard's path parameter, on every /api/{user_id}/... route.
USER_ID_DESCRIPTION = (
    "The signed-in user's id: it must be the token's subject (`sub`), else 403. "
    "Better Auth's user ids are random strings, not UUIDs."
)
NO_BODY = {
    "summary": "No body",
    "description": "Send no body at all: the operation's behaviour without one (see its description).",
    "value": "",
}


def polish(document: dict[str, Any]) -> None:
    """Every fix below, in place."""
    schemas = document.get("components", {}).get("schemas", {})
    for operation in _operations(document):
        _plain_labels(operation)
        for parameter in operation.get("parameters", []):
            _parameter(parameter)
        _responses_say_what_comes_back(operation, schemas)
        _no_body_first(operation, schemas)
    for schema in schemas.values():
        _unknown_nullable_examples_null(schema)


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    paths = document.get("paths", {}).values()
    return [item[m] for item in paths for m in METHODS if isinstance(item.get(m), dict)]


def _plain(text: str) -> str:
    return text.replace("`", "")


def _plain_labels(operation: dict[str, Any]) -> None:
    """Summaries and response descriptions are labels: no Markdown."""
    if isinstance(operation.get("summary"), str):
        operation["summary"] = _plain(operation["summary"])
    for response in operation.get("responses", {}).values():
        if isinstance(response.get("description"), str):
            response["description"] = _plain(response["description"])


def _parameter(parameter: dict[str, Any]) -> None:
    is_user_id = parameter.get("in") == "path" and parameter.get("name") == "user_id"
    if is_user_id and not parameter.get("description"):
        parameter["description"] = USER_ID_DESCRIPTION
    if isinstance(parameter.get("schema"), dict):
        parameter["schema"] = not_nullable(parameter["schema"])
        # Litestar puts a header parameter's description on its schema, where some viewers skip it.
        if not parameter.get("description") and parameter["schema"].get("description"):
            parameter["description"] = parameter["schema"].pop("description")


def not_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without ``null``: a parameter left out is the "no value"; none is JSON null."""
    result = dict(schema)
    branches = result.get("oneOf")
    if isinstance(branches, list) and NULL in branches:
        rest = [b for b in branches if b != NULL]
        del result["oneOf"]
        if len(rest) == 1 and isinstance(rest[0], dict):
            result = {**rest[0], **result}  # the parameter's own description and bounds win
        else:
            result["oneOf"] = rest
    kind = result.get("type")
    if isinstance(kind, list) and "null" in kind:
        kinds = [k for k in kind if k != "null"]
        result["type"] = kinds[0] if len(kinds) == 1 else kinds
    if isinstance(result.get("enum"), list):
        result["enum"] = [v for v in result["enum"] if v is not None]
    return result


def _responses_say_what_comes_back(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Replace Litestar's stock text for a 2xx that returns JSON with what it returns."""
    for status, response in operation.get("responses", {}).items():
        if not (status.isdigit() and 200 <= int(status) < 300):
            continue
        if response.get("description") != HTTPStatus(int(status)).description:
            continue
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        what = _what(schema, schemas)
        if what:
            response["description"] = what


def _what(schema: dict[str, Any], schemas: dict[str, Any]) -> str | None:
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        name = _name(schema["items"])
        return f"A JSON array of {name} objects (see the schema below)" if name else None
    name = _name(schema)
    if not name:
        return None
    component = schemas.get(name, {})
    if component.get("description"):
        return str(component["description"])
    fields = list(component.get("properties", {}))
    listed = f": {', '.join(fields)}" if 0 < len(fields) <= 6 else " (see the schema below)"
    return f"The {name} object{listed}"


def _name(schema: dict[str, Any]) -> str:
    return str(schema.get("$ref", "")).rsplit("/", 1)[-1]


def _no_body_first(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """An optional body's first example is sending none ("Test Request" sends the first one)."""
    body = operation.get("requestBody")
    if not isinstance(body, dict) or body.get("required", True):
        return
    for media in body.get("content", {}).values():
        if "examples" in media or "example" in media:
            continue
        examples: dict[str, Any] = {"no-body": NO_BODY}
        value = _example_of(media.get("schema", {}), schemas)
        if value:
            examples["with-body"] = {"summary": "With a body", "value": value}
        media["examples"] = examples


def _example_of(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any] | None:
    """An object from its properties' first examples (those with one)."""
    component = schemas.get(_name(schema), schema)
    properties = component.get("properties", {})
    value = {k: p["examples"][0] for k, p in properties.items() if isinstance(p, dict) and p.get("examples")}
    return value or None


def _unknown_nullable_examples_null(schema: dict[str, Any]) -> None:
    """A nullable field without an example shows ``null``, not a value Scalar makes up.

    A made-up value can break the object's rules: a task with ``completed: false`` and a
    ``completed_at`` timestamp.
    """
    for field in schema.get("properties", {}).values():
        if not isinstance(field, dict) or "examples" in field or "example" in field:
            continue
        nullable = NULL in field.get("oneOf", []) or "null" in (field.get("type") or [])
        if nullable:
            field["examples"] = [None]
