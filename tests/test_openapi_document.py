"""The OpenAPI document as code generators and linters see it: operation ids, security, the headers of
every response, no invented examples, and ``redocly lint`` with nothing to report."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, get, post
from litestar.exceptions import ImproperlyConfiguredException
from litestar.params import JSONBody

from backend.http.openapi import camel_case, openapi_config
from tests.node_project import CACHE, installed, run_bin
from tests.openapi_export import ROOT, export_openapi

METHODS = ("get", "put", "post", "delete", "patch")


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, m, item[m]) for path, item in spec["paths"].items() for m in METHODS if m in item]


def test_redocly_lint_finds_nothing(tmp_path: Path) -> None:
    project = installed(ROOT / "clients" / "typescript", "clients-typescript")
    # The lint configuration names the document "openapi.json" next to it: lint a fresh export there.
    folder = CACHE / "openapi-lint"
    folder.mkdir(parents=True, exist_ok=True)
    export_openapi(folder / "openapi.json")
    for name in ("redocly.yaml", ".redocly.lint-ignore.yaml"):
        shutil.copyfile(ROOT / name, folder / name)
    done = run_bin(project, "redocly", "lint", "openapi.json", "--format=json", cwd=folder)
    assert done.stdout.strip(), done.stderr
    report = json.loads(done.stdout)
    problems = [(p["ruleId"], p["message"], p["location"][0]["pointer"]) for p in report.get("problems", [])]
    assert report["totals"]["errors"] == 0, problems
    assert report["totals"]["warnings"] == 0, problems
    assert done.returncode == 0, done.stderr


def test_operation_ids_are_the_handlers_names(anon: httpx.Client) -> None:
    spec = anon.get("/schema/openapi.json").json()
    ids = [op["operationId"] for _, _, op in operations(spec)]
    assert len(ids) == len(set(ids))
    assert ids
    assert [i for i in ids if not (i.isalnum() and i[0].islower())] == [], ids
    by_path = {(path, method): op["operationId"] for path, method, op in operations(spec)}
    assert by_path[("/health", "get")] == "getHealth"
    assert by_path[("/health/ready", "get")] == "getReadiness"
    tasks, one = "/api/{user_id}/tasks", "/api/{user_id}/tasks/{task_id}"
    lists, a_list = "/api/{user_id}/lists", "/api/{user_id}/lists/{list_id}"
    assert by_path == {
        ("/health", "get"): "getHealth",
        ("/health/ready", "get"): "getReadiness",
        (tasks, "get"): "listTasks",
        (tasks, "post"): "createTask",
        (tasks, "delete"): "clearCompletedTasks",
        (one, "get"): "getTask",
        (one, "patch"): "updateTask",
        (one, "put"): "replaceTask",
        (one, "delete"): "deleteTask",
        (f"{one}/complete", "patch"): "setTaskCompletion",
        (f"{tasks}/stats", "get"): "getTaskStats",
        (f"{tasks}/complete-all", "post"): "completeAllTasks",
        (f"{one}/move", "post"): "moveTask",
        (lists, "get"): "listLists",
        (lists, "post"): "createList",
        (a_list, "get"): "getList",
        (a_list, "patch"): "updateList",
        (a_list, "put"): "replaceList",
        (a_list, "delete"): "deleteList",
        (f"{a_list}/move", "post"): "moveList",
        ("/api/{user_id}/sync", "get"): "sync",
        ("/api/{user_id}/events", "get"): "streamTaskEvents",
    }


def test_operation_id_creator() -> None:
    @get("/a", sync_to_thread=False)
    def list_tasks() -> None:
        return None

    @get("/health", sync_to_thread=False)
    def health() -> None:
        return None

    app = Litestar([list_tasks, health], openapi_config=openapi_config())
    ids = {
        path: item.get and item.get.operation_id for path, item in (app.openapi_schema.paths or {}).items()
    }
    assert ids == {"/a": "listTasks", "/health": "getHealth"}
    assert camel_case("set_task_completion") == "setTaskCompletion"
    assert camel_case("get_task_stats") == "getTaskStats"


def test_two_handlers_with_one_name_are_refused() -> None:
    def named(path: str) -> Any:
        def list_tasks() -> None:
            return None

        return get(path, sync_to_thread=False)(list_tasks)

    app = Litestar([named("/a"), named("/b")], openapi_config=openapi_config())
    with pytest.raises(ImproperlyConfiguredException, match="listTasks"):
        app.openapi_schema  # noqa: B018 - building it is the test


def test_security_is_the_token_except_where_no_guard_runs(anon: httpx.Client) -> None:
    spec = anon.get("/schema/openapi.json").json()
    assert spec["security"] == [{"BearerAuth": []}]
    for path, method, op in operations(spec):
        expected: list[dict[str, list[str]]] = [{"BearerAuth": []}] if path.startswith("/api/") else []
        assert op["security"] == expected, (path, method)


def test_every_response_documents_its_headers(anon: httpx.Client) -> None:
    spec = anon.get("/schema/openapi.json").json()
    shared = spec["components"]["headers"]
    rate = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy"}
    assert {"X-Request-ID", "Retry-After", "WWW-Authenticate", *rate} <= set(shared)
    for path, method, op in operations(spec):
        for status, response in op["responses"].items():
            headers = response.get("headers", {})
            where = (path, method, status)
            assert headers["X-Request-ID"] == {"$ref": "#/components/headers/X-Request-ID"}, where
            if path.startswith("/api/"):
                assert rate <= set(headers), where
            if status in {"429", "503"}:
                assert "Retry-After" in headers, where
            if status == "401":
                assert "WWW-Authenticate" in headers, where


def test_documented_headers_are_sent(anon: httpx.Client) -> None:
    """What the document promises on a 401 is what a caller gets."""
    response = anon.get("/api/someone/tasks")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.headers["X-Request-ID"]
    sent = {name.lower() for name in response.headers}
    assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy"} <= sent


def test_no_invented_examples(anon: httpx.Client) -> None:
    """Examples only where the code gives one: none made up at random for the problem documents."""
    spec = anon.get("/schema/openapi.json").json()
    schemas = spec["components"]["schemas"]
    problem = json.dumps({k: v for k, v in schemas.items() if "Problem" in k})
    assert '"examples"' not in problem


def test_no_single_branch_one_of(anon: httpx.Client) -> None:
    text = anon.get("/schema/openapi.json").text
    spec = json.loads(text)

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            assert len(value.get("oneOf", [None, None])) != 1, value
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(spec)


@dataclass
class Body:
    done: bool


def test_a_body_with_a_default_may_be_left_out(anon: httpx.Client) -> None:
    @post("/optional", sync_to_thread=False, signature_namespace={"Body": Body, "JSONBody": JSONBody})
    def optional(data: JSONBody[Body | None] = None) -> None:
        return None

    @post("/required", sync_to_thread=False, signature_namespace={"Body": Body, "JSONBody": JSONBody})
    def required(data: JSONBody[Body]) -> None:
        return None

    spec = Litestar([optional, required], openapi_config=openapi_config()).openapi_schema.to_schema()
    assert spec["paths"]["/optional"]["post"]["requestBody"]["required"] is False
    assert spec["paths"]["/required"]["post"]["requestBody"]["required"] is True

    served = anon.get("/schema/openapi.json").json()
    toggle = served["paths"]["/api/{user_id}/tasks/{task_id}/complete"]["patch"]
    assert toggle["requestBody"]["required"] is False


def test_what_the_docs_page_shows_is_plain_and_complete(anon: httpx.Client) -> None:
    """Labels without Markdown, every parameter described, no ``null`` to pick, 2xx answers say what
    comes back (not Litestar's stock text)."""
    spec = anon.get("/schema/openapi.json").json()
    for path, method, op in operations(spec):
        where = (path, method)
        assert "`" not in op["summary"], where
        for status, response in op["responses"].items():
            assert "`" not in response["description"], (*where, status)
            assert response["description"] != "Request fulfilled, document follows", (*where, status)
        for parameter in op.get("parameters", []):
            name = (*where, parameter["name"])
            schema = json.dumps(parameter["schema"])
            assert '"null"' not in schema, name
            assert None not in parameter["schema"].get("enum", []), name
    listing = {p["name"]: p["schema"] for p in spec["paths"]["/api/{user_id}/tasks"]["get"]["parameters"]}
    for bound, end in (("due_before", "Exclusive."), ("due_after", "Inclusive.")):
        assert {k: listing[bound].get(k) for k in ("type", "format")} == {
            "type": "string",
            "format": "date-time",
        }
        assert end in listing[bound]["description"], listing[bound]


def test_every_parameter_is_described(anon: httpx.Client) -> None:
    spec = anon.get("/schema/openapi.json").json()
    undescribed = [
        (path, method, parameter["name"])
        for path, method, op in operations(spec)
        for parameter in op.get("parameters", [])
        if not parameter.get("description")
    ]
    assert undescribed == []


def test_the_toggles_first_example_is_no_body(anon: httpx.Client) -> None:
    spec = anon.get("/schema/openapi.json").json()
    toggle = spec["paths"]["/api/{user_id}/tasks/{task_id}/complete"]["patch"]["requestBody"]
    examples = list(toggle["content"]["application/json"]["examples"].values())
    assert examples[0]["value"] == ""
    assert examples[1]["value"] == {"completed": True}


def test_examples_obey_the_rules(anon: httpx.Client) -> None:
    """A field without an example of its own shows ``null`` where it may: a made-up ``completed_at``
    next to ``completed: false`` would contradict the contract."""
    schemas = anon.get("/schema/openapi.json").json()["components"]["schemas"]
    task = schemas["TaskRead"]["properties"]
    assert task["completed"]["examples"][0] is False
    assert task["completed_at"]["examples"] == [None]
    for name, schema in schemas.items():
        for field, value in schema.get("properties", {}).items():
            nullable = {"type": "null"} in value.get("oneOf", []) or "null" in (value.get("type") or [])
            if nullable:
                assert "examples" in value, (name, field)


def test_the_document_is_completed_without_carrying_its_config() -> None:
    """The document keeps its config as a plain attribute (no private Litestar API): serialising it
    completes every operation, and the config itself never reaches the output."""

    @get("/guarded", sync_to_thread=False, guards=[lambda connection, handler: None])
    def guarded() -> None:
        return None

    spec = Litestar([guarded], openapi_config=openapi_config()).openapi_schema.to_schema()
    assert "config" not in spec
    assert "handlers" not in json.dumps(spec)
    assert spec["paths"]["/guarded"]["get"]["security"] == [{"BearerAuth": []}]
