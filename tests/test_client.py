"""The TypeScript client in ``clients/typescript``: generated from the committed ``openapi.json``, both
current, strictly typed, and working against a live API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.node_project import QUIET_NODE_ENV, installed, run_bin
from tests.openapi_export import COMMITTED, ROOT, export_openapi
from tests.support import ApiServer, Tokens

SOURCE = ROOT / "clients" / "typescript"
STALE = "is stale: run clients/typescript/generate and commit the result"


def client_project() -> Path:
    """The client installed (pinned, ``npm ci``) with its current sources copied in."""
    project = installed(SOURCE, "clients-typescript")
    for folder in ("src", "example"):
        shutil.rmtree(project / folder, ignore_errors=True)
        shutil.copytree(SOURCE / folder, project / folder)
    shutil.copyfile(SOURCE / "tsconfig.json", project / "tsconfig.json")
    return project


def test_committed_openapi_json_is_current(tmp_path: Path) -> None:
    export_openapi(tmp_path / "openapi.json")
    assert (tmp_path / "openapi.json").read_text() == COMMITTED.read_text(), f"openapi.json {STALE}"


def test_generated_types_are_current(tmp_path: Path) -> None:
    project = client_project()
    out = tmp_path / "schema.ts"
    done = run_bin(
        project, "openapi-typescript", str(COMMITTED), "--default-non-nullable", "false", "--output", str(out)
    )
    assert done.returncode == 0, done.stderr
    committed = SOURCE / "src" / "schema.ts"
    assert out.read_text() == committed.read_text(), f"clients/typescript/src/schema.ts {STALE}"


def test_client_and_example_typecheck_strictly() -> None:
    project = client_project()
    done = run_bin(project, "tsc", "--noEmit", "--strict", "-p", "tsconfig.json")
    assert done.returncode == 0, done.stdout + done.stderr


def test_example_runs_against_the_api(api: ApiServer, tokens: Tokens, user: str) -> None:
    project = client_project()
    shutil.rmtree(project / "dist", ignore_errors=True)
    # Emit JavaScript to run (type errors are the test above's business).
    run_bin(project, "tsc", "-p", "tsconfig.json", "--noEmit", "false", "--outDir", "dist")
    script = project / "dist" / "example" / "flow.js"
    assert script.is_file(), "tsc emitted no example"
    node = shutil.which("node")
    assert node, "node is needed (apt-get install nodejs)"
    done = subprocess.run(  # noqa: S603 - our own example
        [node, str(script)],
        cwd=project,
        env={
            **os.environ,
            **QUIET_NODE_ENV,
            "TASKS_API_URL": api.url,
            "TASKS_USER": user,
            "TASKS_TOKEN": tokens.jwks(user),
            "TASKS_OTHER_USER": f"{user}-other",
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["created"] == ["Buy milk", "Call mum", "Book flights"]
    assert seen["total"] == 3
    assert seen["firstPage"] == ["Book flights", "Buy milk"]
    assert seen["secondPage"] == ["Call mum"]
    assert seen["links"] == ["first", "last", "next"]
    assert "offset=2" in seen["next"]
    assert seen["toggled"]["before"] is False
    assert seen["toggled"]["after"] is True
    assert seen["toggled"]["etag"] == '"2"'
    assert seen["staleIfMatch"]["status"] == 412
    assert seen["staleIfMatch"]["problem"]["status"] == 412
    assert seen["deleted"] == 204
    assert seen["foreign"]["status"] == 403
    assert seen["foreign"]["problem"]["status"] == 403
