"""Probes without auth, the OpenAPI document and its interactive docs."""

from __future__ import annotations

import time

import httpx

from tests.support import Tokens, api_server, free_port


def test_health_and_ready(anon: httpx.Client) -> None:
    assert anon.get("/health").json() == {"status": "ok"}
    ready = anon.get("/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})


def test_unreachable_database_gives_503_not_500_and_not_a_hang(
    api_env: dict[str, str], tokens: Tokens
) -> None:
    env = {**api_env, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none"}
    with api_server(env) as server:
        assert httpx.get(f"{server.url}/health").status_code == 200
        started = time.monotonic()
        ready = httpx.get(f"{server.url}/health/ready", timeout=30)
        assert ready.status_code == 503
        assert ready.headers["Retry-After"]
        response = httpx.get(f"{server.url}/api/u1/tasks", headers=tokens.headers("u1"), timeout=30)
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["Retry-After"]
        assert "postgres" not in response.text.lower()
        assert time.monotonic() - started < 20  # bounded: a stuck request would hit the 30 s client timeout


CONTRACT = {
    ("/api/{user_id}/tasks", "get"), ("/api/{user_id}/tasks", "post"), ("/api/{user_id}/tasks", "delete"),
    ("/api/{user_id}/tasks/{task_id}", "get"), ("/api/{user_id}/tasks/{task_id}", "put"),
    ("/api/{user_id}/tasks/{task_id}", "patch"), ("/api/{user_id}/tasks/{task_id}", "delete"),
    ("/api/{user_id}/tasks/{task_id}/complete", "patch"), ("/api/{user_id}/tasks/stats", "get"),
    ("/api/{user_id}/tasks/complete-all", "post"), ("/health", "get"), ("/health/ready", "get"),
    ("/api/{user_id}/events", "get"), ("/api/{user_id}/tasks/{task_id}/move", "post"),
    ("/api/{user_id}/lists", "get"), ("/api/{user_id}/lists", "post"),
    ("/api/{user_id}/lists/{list_id}", "get"), ("/api/{user_id}/lists/{list_id}", "put"),
    ("/api/{user_id}/lists/{list_id}", "patch"), ("/api/{user_id}/lists/{list_id}", "delete"),
    ("/api/{user_id}/lists/{list_id}/move", "post"), ("/api/{user_id}/sync", "get"),
}  # fmt: skip


def test_openapi_describes_exactly_the_contract(anon: httpx.Client) -> None:
    spec = anon.get("/schema/openapi.json").json()
    operations = {
        (path, method) for path, item in spec["paths"].items() for method in item if method != "parameters"
    }
    assert operations == CONTRACT
    bearer = spec["components"]["securitySchemes"]["BearerAuth"]
    assert {k: bearer[k] for k in ("type", "scheme", "bearerFormat")} == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert "Better Auth" in bearer["description"]
    for path, method in CONTRACT:
        op = spec["paths"][path][method]
        assert op.get("summary"), (path, method)
        if path.startswith("/api/"):
            assert op["security"] == [{"BearerAuth": []}], (path, method)
            assert {"401", "403"} <= set(op["responses"]), (path, method)
            problem = op["responses"]["401"]["content"]
            assert "application/problem+json" in problem, (path, method)


def test_openapi_documents_bounds_and_examples(anon: httpx.Client) -> None:
    spec = anon.get("/schema/openapi.json").json()
    params = {p["name"]: p for p in spec["paths"]["/api/{user_id}/tasks"]["get"]["parameters"]}
    assert params["limit"]["schema"]["maximum"] == 200
    assert params["limit"]["schema"]["minimum"] == 1
    assert set(params["sort"]["schema"]["enum"]) >= {"created_at", "-created_at", "priority", "-title"}
    create = spec["paths"]["/api/{user_id}/tasks"]["post"]
    assert "201" in create["responses"]
    schemas = spec["components"]["schemas"]
    body = create["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    task_write = schemas[body]
    # Only the title is required on create: every other field has a default.
    assert task_write["required"] == ["title"]
    assert task_write["properties"]["title"]["maxLength"] == 255
    assert task_write["properties"]["tags"]["maxItems"] == 10
    assert task_write["properties"]["tags"]["items"]["maxLength"] == 30
    assert task_write["properties"]["completed"]["default"] is False
    # A partial update requires nothing, and names the same fields.
    patch = spec["paths"]["/api/{user_id}/tasks/{task_id}"]["patch"]
    patch_body = schemas[
        patch["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    ]
    assert "required" not in patch_body
    assert set(patch_body["properties"]) == set(task_write["properties"])
    # The toggle's body is optional: no body toggles.
    toggle = spec["paths"]["/api/{user_id}/tasks/{task_id}/complete"]["patch"]
    assert toggle["requestBody"]["required"] is False
    params = {p["name"]: p for p in spec["paths"]["/api/{user_id}/tasks"]["get"]["parameters"]}
    assert params["due_before"]["schema"]["format"] == "date-time"
    total = spec["paths"]["/api/{user_id}/tasks"]["get"]["responses"]["200"]["headers"]["X-Total-Count"]
    assert total["schema"]["type"] == "integer"


def test_docs_page_loads_the_openapi_document(anon: httpx.Client) -> None:
    page = anon.get("/schema")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    # The page hands the renderer this API's own document (a headless browser renders it in
    # tests/test_docs_browser.py).
    assert "/schema/openapi.json" in page.text or '"openapi":' in page.text
