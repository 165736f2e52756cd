"""The TypeScript client in ``clients/typescript``: generated from the committed ``openapi.json``, both
current, strictly typed, and working against a live API."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.better_auth import _node_tools
from tests.node_project import QUIET_NODE_ENV, installed, run_bin
from tests.openapi_export import COMMITTED, ROOT, export_openapi
from tests.support import ApiServer, Tokens

SOURCE = ROOT / "clients" / "typescript"
STALE = "is stale: run clients/typescript/generate and commit the result"


def client_project() -> Path:
    """The client installed (pinned, ``npm ci``) with its current sources copied in."""
    project = installed(SOURCE, "clients-typescript")
    for folder in ("src", "example", "type-tests"):
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


# Passed to tsc with the fixture named on the command line (tsc then ignores tsconfig.json).
_TSC_FILE_OPTIONS = ("--noEmit", "--strict", "--skipLibCheck", "--target", "ES2022", "--module", "NodeNext")


@pytest.mark.parametrize(
    ("fixture", "code", "field"),
    [("misspelt-field.ts", "TS2561", "prority"), ("read-only-field.ts", "TS2353", "version")],
)
def test_a_wrong_request_body_does_not_compile(fixture: str, code: str, field: str) -> None:
    """A misspelt or read-only field in a body written inline is a compile error, not a 400 at run time."""
    project = client_project()
    done = run_bin(project, "tsc", *_TSC_FILE_OPTIONS, f"type-tests/{fixture}")
    errors = re.findall(r"^(\S+)\(\d+,\d+\): error (TS\d+): (.*)$", done.stdout, re.MULTILINE)
    assert done.returncode != 0, f"{fixture} compiled"
    assert [(where, c) for where, c, _ in errors] == [(f"type-tests/{fixture}", code)], done.stdout
    assert f"'{field}'" in errors[0][2], done.stdout


def test_the_same_calls_with_writable_fields_compile() -> None:
    project = client_project()
    done = run_bin(project, "tsc", *_TSC_FILE_OPTIONS, "type-tests/valid-bodies.ts")
    assert done.returncode == 0, done.stdout + done.stderr


def test_example_runs_against_the_api(api: ApiServer, tokens: Tokens, user: str) -> None:
    """With the command the client's README gives (``npm run example``: compile, then run with node)."""
    project = client_project()
    shutil.rmtree(project / "dist", ignore_errors=True)
    _, npm = _node_tools()
    done = subprocess.run(  # noqa: S603 - our own example
        [npm, "run", "--silent", "example"],
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
