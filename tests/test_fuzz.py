"""Property-based fuzzing of the live API against its own OpenAPI document (schemathesis).

The schema is loaded from the running server's ``/schema/openapi.json``. Every operation gets
schemathesis' deterministic coverage cases (boundaries, missing and wrongly typed values, undocumented
methods) and a bounded number of fuzzed cases, valid and invalid, from a fixed seed. Every call is
authenticated: ``{user_id}`` is pinned to the token's subject (anything else is a 403 by design), with
one user per operation so that the per-user rate limit stays out of reach. (Some invalid cases leave the
bearer token out on purpose: those must be the documented 401.)

The document has no OpenAPI links, so there is no stateful phase. Instead the single-task operations are
fuzzed twice: on generated task ids (which name no task: the documented 404) and on a real task of the
caller, so that their success responses are checked too.

Every response must pass: no 5xx, a documented status code, the documented content type, headers and
body schema, invalid input rejected, undocumented methods answered with 405. All distinct failures of the
run are reported together, each with a reproduction.

Why the schema-driven run never found the malformed-JSON 500s: Schemathesis generates *values* from
the request-body schema and serializes them with a JSON encoder, so every body it sends is well-formed
JSON (its negative mode breaks the schema, never the syntax); Hypothesis' JSON strategies exclude NaN
and infinities (not JSON), bound nesting and number size, and never cut a document short. Trailing
commas, ``NaN``, ``1e999``, 5,000-digit numbers, 10,000-deep nesting and truncated UTF-8 were therefore
unreachable. ``test_raw_bodies_never_cause_a_server_error`` closes that gap: a Hypothesis strategy of
raw bytes (mutated valid bodies, deep nesting, huge and non-finite numbers, lone surrogates, arbitrary
bytes) sent as ``application/json`` to every operation of the document that takes a body.

``schemathesis.pytest.from_fixture`` (the lazy loader a fixture-served API would need) does not work
with pytest 9.2 (it reads and sets ``Function._nodeid``), so the test drives schemathesis' Python API
itself: ``iter_coverage_cases`` and ``APIOperation.as_strategy`` under Hypothesis' ``@given``.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeAlias

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case as AnyCase
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.support import ApiServer, Tokens

Case: TypeAlias = AnyCase[Any]
Operation: TypeAlias = APIOperation[Any, Any, Any, Any]

SEED = 20261121
MAX_EXAMPLES = 25  # fuzzed cases per operation, generation mode and kind of task id

CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    unsupported_method,
]


def user_for(operation: Operation) -> str:
    return "fuzz-" + hashlib.sha256(operation.label.encode()).hexdigest()[:12]


def authenticate(case: Case, *, user: str, tokens: Tokens) -> None:
    if "user_id" in {p.name for p in case.operation.path_parameters}:
        case.path_parameters = {**(case.path_parameters or {}), "user_id": user}
    case.headers.update(tokens.headers(user))


class Findings:
    """Distinct failures, keyed by operation and kind, each with its first reproduction and a count."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, str], str] = {}
        self.count: Counter[tuple[str, str]] = Counter()
        self.statuses: dict[str, Counter[int]] = {}  # per operation, of its own method's responses

    def run(self, case: Case) -> int:
        """Call the API with ``case``, check the response, and return its status code."""
        response = case.call()
        if case.method.upper() == case.operation.method.upper():  # not an undocumented-method probe
            self.statuses.setdefault(case.operation.label, Counter())[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            self.add(case, group.exceptions, str(group))
        except Failure as failure:
            self.add(case, (failure,), str(failure))
        return response.status_code

    def add(self, case: Case, failures: tuple[Failure, ...], text: str) -> None:
        for failure in failures:
            key = (case.operation.label, failure.title)
            self.count[key] += 1
            self.first.setdefault(key, text)

    def report(self) -> str:
        return "\n\n".join(
            f"=== {label}: {title} ({self.count[label, title]} case(s)); the first:\n{text}"
            for (label, title), text in self.first.items()
        )


class RealTask:
    """Pins ``{task_id}`` (or ``{list_id}``) to a real task (or list) of the caller, making a new one
    whenever a case deleted it."""

    def __init__(self, client: httpx.Client, parameter: str = "task_id") -> None:
        self.client = client
        self.parameter = parameter
        self.task_id = self.create()

    def create(self) -> str:
        if self.parameter == "list_id":
            created = self.client.post("/lists", json={"name": "fuzz"})
        else:
            created = self.client.post("/tasks", json={"title": "fuzz", "tags": ["fuzz"]})
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    def pin(self, case: Case, valid: bool) -> None:
        case.path_parameters = {**(case.path_parameters or {}), self.parameter: self.task_id}
        if valid and case.path.endswith("/move") and len(str(case.body)) % 2:
            # Generated ids name no sibling (a 400): half the valid cases move it first instead, so the
            # move's success answer is checked against the document too.
            case.body = {"after": None}

    def after(self, case: Case, status: int) -> None:
        if case.method.upper() == "DELETE" and status == 204:
            self.task_id = self.create()


def fuzz(
    operation: Operation,
    mode: GenerationMode,
    prepare: Callable[[Case], None],
    findings: Findings,
    task: RealTask | None = None,
) -> None:
    """Run ``MAX_EXAMPLES`` generated cases; failures are recorded, not raised, so that every case runs."""

    @seed(SEED)
    @settings(
        max_examples=MAX_EXAMPLES, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy(mode))
    def run(case: Case) -> None:
        prepare(case)
        if task is not None:
            task.pin(case, valid=mode is GenerationMode.POSITIVE)
        status = findings.run(case)
        if task is not None:
            task.after(case, status)

    try:
        run()
    except Unsatisfiable:
        # Nothing to make invalid: no parameters, or only ones pinned here (e.g. /health).
        assert mode is GenerationMode.NEGATIVE, operation.label


def _streams(operation: Operation) -> bool:
    content = operation.definition.raw.get("responses", {}).get("200", {}).get("content", {})
    return "text/event-stream" in content


def test_api_conforms_to_its_openapi_document(api: ApiServer, tokens: Tokens) -> None:
    config = SchemathesisConfig.from_dict({"seed": SEED, "request-timeout": 30})
    schema = schemathesis.openapi.from_url(f"{api.url}/schema/openapi.json", config=config)
    findings = Findings()
    labels = []
    streaming: set[str] = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        labels.append(operation.label)
        if _streams(operation):
            # An endless text/event-stream cannot be read to its end: tests/test_events.py covers it.
            streaming.add(operation.label)
            continue
        user = user_for(operation)
        prepare = functools.partial(authenticate, user=user, tokens=tokens)

        # Deterministic coverage cases: boundaries, missing and wrongly typed values, other methods.
        generation = schema.config.generation_for(operation=operation)
        for case in schema.iter_coverage_cases(
            operation, generation_modes=list(GenerationMode), generation_config=generation
        ):
            prepare(case)
            findings.run(case)

        # Fuzzing; the single-task and single-list operations both on generated ids and on a real one.
        for mode in GenerationMode:
            fuzz(operation, mode, prepare, findings)
            for parameter in {p.name for p in operation.path_parameters} & {"task_id", "list_id"}:
                with httpx.Client(base_url=f"{api.url}/api/{user}", headers=tokens.headers(user)) as client:
                    fuzz(operation, mode, prepare, findings, RealTask(client, parameter))

    assert len(labels) >= 12, labels
    # Each operation's success response was checked at least once, not only its errors.
    unsuccessful = {
        label for label in labels if not any(s < 400 for s in findings.statuses.get(label, {}))
    } - streaming
    assert not unsuccessful, (unsuccessful, findings.statuses)
    if findings.first:
        pytest.fail(f"{len(findings.first)} distinct failure(s):\n\n{findings.report()}", pytrace=False)


# --- raw bodies: what a JSON encoder can never produce -------------------------------------------

RAW_EXAMPLES = 60  # per operation that takes a body
_VALID_BODIES = [
    b'{"title": "a", "priority": "high", "tags": ["x"], "completed": false}',
    b'{"title": "b", "description": null, "due_at": "2026-12-01T09:00:00Z"}',
    b'{"completed": true}',
    b"{}",
]
_NON_FINITE = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1E400", b"0e99999"]


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    body = bytearray(draw(st.sampled_from(_VALID_BODIES)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body)))
        kind = draw(st.sampled_from(["cut", "insert", "replace"]))
        if kind == "cut":
            del body[at:]
        elif kind == "insert":
            body[at:at] = draw(
                st.binary(min_size=1, max_size=6) | st.sampled_from([b",", b"]", b"}", b'"', b"\\"])
            )
        else:
            body[at : at + 1] = draw(st.binary(min_size=1, max_size=1))
    return bytes(body)


def raw_json_bodies() -> st.SearchStrategy[bytes]:
    """Bodies a JSON encoder never emits, each a 400 for the API (or a success where still valid)."""
    deep = st.integers(100, 12_000).flatmap(
        lambda n: st.sampled_from([b"[" * n + b"]" * n, b'{"title":' + b"[" * n + b"]" * n + b"}"])
    )
    huge = st.integers(300, 6_000).map(lambda n: b'{"title":"a","priority":' + b"9" * n + b"}")
    non_finite = st.sampled_from(_NON_FINITE).map(lambda v: b'{"title":"a","completed":' + v + b"}")
    surrogates = st.integers(0xD800, 0xDFFF).flatmap(
        lambda cp: st.sampled_from(
            [
                f'{{"title":"\\u{cp:04x}"}}'.encode(),
                f'{{"title":"{chr(cp)}"}}'.encode("utf-8", "surrogatepass"),
            ]
        )
    )
    return st.one_of(_mutated(), deep, huge, non_finite, surrogates, st.binary(max_size=64))


def fuzz_raw_bodies(
    client: httpx.Client, method: str, path: str, label: str, failures: dict[Any, bytes]
) -> None:
    """Send ``RAW_EXAMPLES`` raw bodies; record the first body per (operation, bad status)."""

    @seed(SEED)
    @settings(
        max_examples=RAW_EXAMPLES, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(body=raw_json_bodies())
    def send(body: bytes) -> None:
        r = client.request(method, path, content=body, headers={"Content-Type": "application/json"})
        problem = r.headers.get("content-type") == "application/problem+json"
        if r.status_code >= 500 or (r.status_code >= 400 and not problem):
            failures.setdefault((label, r.status_code), body)

    send()


def test_raw_bodies_never_cause_a_server_error(api: ApiServer, tokens: Tokens) -> None:
    config = SchemathesisConfig.from_dict({"seed": SEED, "request-timeout": 30})
    schema = schemathesis.openapi.from_url(f"{api.url}/schema/openapi.json", config=config)
    failures: dict[tuple[str, int], bytes] = {}  # (operation, status) -> the first body that caused it
    with_body = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        if "requestBody" not in operation.definition.raw:
            continue
        with_body.append(operation.label)
        user = user_for(operation)
        with httpx.Client(
            base_url=f"{api.url}/api/{user}", headers=tokens.headers(user), timeout=30
        ) as client:
            task_id = RealTask(client).task_id
            path = operation.path.replace("{user_id}", user).replace("{task_id}", task_id)
            fuzz_raw_bodies(client, operation.method.upper(), f"{api.url}{path}", operation.label, failures)
    assert len(with_body) >= 5, with_body
    assert not failures, "\n".join(
        f"{label} -> {status} for {body[:80]!r}{'...' if len(body) > 80 else ''} ({len(body)} bytes)"
        for (label, status), body in failures.items()
    )
