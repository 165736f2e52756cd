"""The OpenAPI document and the interactive docs served at ``/schema``.

What every operation shares is added here, once, from what the code does rather than per handler:
``operationId`` (the handler's name in camelCase), who may call it (``security``: an operation with a
guard needs the bearer token, one without is public), whether the body may be left out (the handler's
``data`` has a default) and the headers each response carries. Litestar
builds the document in ``OpenAPIPlugin._build_openapi`` from ``OpenAPIConfig.to_openapi_schema()``;
``TasksOpenAPIConfig`` returns a document whose ``to_schema()`` (what ``/schema/openapi.json`` and
``litestar schema openapi`` both serialise) fills those in first.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from litestar.exceptions import ImproperlyConfiguredException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.types import Method

from backend.http.docs_page import OfflineScalar, schema_router
from backend.http.openapi_text import polish

BEARER = "BearerAuth"

# Handlers whose camelCased name would not say what they are.
OPERATION_ID_OVERRIDES = {"health": "getHealth", "ready": "getReadiness"}


def _header(description: str, schema: Schema) -> OpenAPIHeader:
    return OpenAPIHeader(description=description, schema=schema)


_INT = Schema(type=OpenAPIType.INTEGER, minimum=0)
_STR = Schema(type=OpenAPIType.STRING)
HEADERS: dict[str, OpenAPIHeader] = {
    "X-Request-ID": _header(
        "This request's id (the client's own `X-Request-ID` when it is 1-128 of `A-Za-z0-9._:-`); "
        "it is in the server's log line for the request.",
        Schema(type=OpenAPIType.STRING, max_length=128),
    ),
    "RateLimit-Limit": _header("Requests allowed per window (when rate limiting is on).", _INT),
    "RateLimit-Remaining": _header("Requests left in the current window.", _INT),
    "RateLimit-Reset": _header("Seconds until the window resets.", _INT),
    "RateLimit-Policy": _header("The limit and window, e.g. `600;w=60`.", _STR),
    "Retry-After": _header("Seconds to wait before retrying.", _INT),
    "WWW-Authenticate": _header("The bearer challenge: why the token was refused.", _STR),
}
_EVERY_RESPONSE = ("X-Request-ID",)
_GUARDED_RESPONSE = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")
_BY_STATUS = {"401": ("WWW-Authenticate",), "429": ("Retry-After",), "503": ("Retry-After",)}


def camel_case(name: str) -> str:
    head, *rest = name.strip("_").split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


@dataclass
class TasksOpenAPIConfig(OpenAPIConfig):
    """``OpenAPIConfig`` that names operations after their handlers and completes every operation."""

    handlers: dict[str, HTTPRouteHandler] = field(default_factory=dict, repr=False)
    """operationId -> its handler, recorded while Litestar names the operations."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.operation_id_creator = self.operation_id

    def operation_id(self, handler: HTTPRouteHandler, method: Method, _: list[Any]) -> str:
        """The handler's function name in camelCase. A handler serving PATCH and PUT alike
        (``update_task``) is ``updateTask`` for PATCH and ``replaceTask`` for PUT, as clients name them;
        any other method of a shared handler goes first (``postUpdateTask``)."""
        name = OPERATION_ID_OVERRIDES.get(handler.handler_name) or camel_case(handler.handler_name)
        verb = str(getattr(method, "value", method)).lower()
        if len(handler.http_methods) > 1 and verb != "patch":
            if verb == "put" and name.startswith("update"):
                name = "replace" + name.removeprefix("update")
            else:
                name = verb + name[:1].upper() + name[1:]
        known = self.handlers.setdefault(name, handler)
        if known is not handler:
            raise ImproperlyConfiguredException(
                f"two handlers would share the operationId {name!r}: rename one or add it to the overrides"
            )
        return name

    def to_openapi_schema(self) -> OpenAPI:
        document = super().to_openapi_schema()
        completed = _Document(**{f.name: getattr(document, f.name) for f in fields(document)})
        completed.config = self
        return completed


class _Document(OpenAPI):
    """The document, completed when serialised (``to_schema``).

    ``config`` is a plain attribute, not a dataclass field: ``to_schema`` serialises the dataclass fields
    only (``dataclasses.fields``), so it never reaches the document, with no private Litestar API.
    """

    config: TasksOpenAPIConfig | None = None

    def to_schema(self) -> dict[str, Any]:
        if self.config is not None:
            complete_operations(self, self.config.handlers)
        schema: dict[str, Any] = single_branches_inlined(super().to_schema())
        enum_components_without_field_text(schema)
        polish(schema)
        return schema


def enum_components_without_field_text(document: dict[str, Any]) -> None:
    """Drop ``description`` and ``examples`` from enum components: they belong to one of its fields.

    Litestar writes a field's description and examples onto the enum schema it shares as a component
    (``SchemaCreator.process_schema_result`` sets them on the registered object), so the component
    would carry the text of whichever field came first, which differs from run to run. Each field
    keeps its own next to its ``$ref``.
    """
    for component in document.get("components", {}).get("schemas", {}).values():
        if isinstance(component, dict) and "enum" in component and "properties" not in component:
            component.pop("description", None)
            component.pop("examples", None)


def single_branches_inlined(value: Any) -> Any:
    """``{"oneOf": [X], ...}`` as ``{...X, ...}``, everywhere in ``value``.

    Litestar leaves a one-branch ``oneOf`` behind when it drops msgspec's ``UNSET`` (and ``None`` of a
    required field) from a union; generators then make a needless union type, linters warn.
    """
    if isinstance(value, list):
        return [single_branches_inlined(v) for v in value]
    if not isinstance(value, dict):
        return value
    result = {k: single_branches_inlined(v) for k, v in value.items()}
    branches = result.get("oneOf")
    if isinstance(branches, list) and len(branches) == 1 and isinstance(branches[0], dict):
        siblings = {k: v for k, v in result.items() if k != "oneOf"}
        # The field's own description and bounds win over the branch's.
        result = {**branches[0], **siblings}
    return result


def complete_operations(document: OpenAPI, handlers: dict[str, HTTPRouteHandler]) -> None:
    """Add ``security`` and the shared response headers to every operation (idempotent)."""
    document.components.headers = {**(document.components.headers or {}), **HEADERS}
    for path_item in (document.paths or {}).values():
        for operation in _operations(path_item):
            handler = handlers.get(operation.operation_id or "")
            guarded = handler is not None and bool(handler.resolve_guards())
            # An operation without a guard answers anyone: say so (the root requirement is the token).
            operation.security = operation.security or ([{BEARER: []}] if guarded else [])
            _optional_body(operation, handler)
            for status, response in (operation.responses or {}).items():
                if not isinstance(response, OpenAPIResponse):
                    continue
                names = [
                    *_EVERY_RESPONSE,
                    *(_GUARDED_RESPONSE if guarded else ()),
                    *_BY_STATUS.get(status, ()),
                ]
                headers = {
                    **(response.headers or {}),
                    **{name: Reference(ref=f"#/components/headers/{name}") for name in names},
                }
                # Litestar's order of a handler's own headers changes from run to run: sort them, so
                # the exported document (and what is generated from it) is the same each time.
                response.headers = dict(sorted(headers.items(), key=lambda item: item[0].lower()))


def _optional_body(operation: Operation, handler: HTTPRouteHandler | None) -> None:
    """A handler whose ``data`` has a default takes no body as well: Litestar marks every body required."""
    data = handler.parsed_fn_signature.parameters.get("data") if handler is not None else None
    if data is not None and data.has_default and isinstance(operation.request_body, RequestBody):
        operation.request_body.required = False


def _operations(path_item: Any) -> list[Operation]:
    methods = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
    return [op for op in (getattr(path_item, m, None) for m in methods) if isinstance(op, Operation)]


def openapi_config() -> TasksOpenAPIConfig:
    return TasksOpenAPIConfig(
        title="Tasks API",
        version="1.0.0",
        description="Each signed-in user's tasks, and nobody else's. Every `/api/{user_id}/...` call needs "
        "`Authorization: Bearer <JWT>` whose subject is `{user_id}`. Errors are `application/problem+json`.",
        openapi_router=schema_router(),
        render_plugins=[OfflineScalar()],
        create_examples=False,
        security=[{BEARER: []}],
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="A Better Auth JWT (from `/api/auth/token`) or an HS256 token signed with "
                    "JWT_SECRET (`litestar tasks token <user_id>`).",
                )
            }
        ),
    )
