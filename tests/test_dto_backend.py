"""What ``backend.http.dto`` takes from Litestar's private DTO code, pinned.

``StrictMsgspecDTO`` gives Litestar's ``DTOCodegenBackend`` (``litestar.dto._codegen_backend``) a
``parse_raw`` that decodes with ``strict=True``, and rebuilds a partial body's ``DTOData`` around its
``_backend``. The control test fails the day Litestar's own DTO decodes strictly (then our backend can
go); the others fail if Litestar stops calling our ``parse_raw`` or ``DTOData`` changes shape.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, patch, post
from litestar.dto import DTOConfig, DTOData, MsgspecDTO
from litestar.params import JSONBody
from litestar.testing import TestClient

from backend.http.dto import FieldErrors, StrictMsgspecDTO


class Flag(msgspec.Struct, kw_only=True):
    name: str
    on: bool = False

    @classmethod
    def clean(cls, fields: dict[str, Any]) -> dict[str, Any]:
        errors = FieldErrors()
        if "name" in fields:
            fields["name"] = fields["name"].strip()
            if not fields["name"]:
                errors.add("name", "must not be blank")
        errors.raise_if_any()
        return fields


class Partial(StrictMsgspecDTO[Flag]):
    config = DTOConfig(partial=True)


@post("/stock", dto=MsgspecDTO[Flag], return_dto=None, sync_to_thread=False)
def stock(data: JSONBody[Flag]) -> dict[str, Any]:
    return msgspec.structs.asdict(data)


@post("/strict", dto=StrictMsgspecDTO[Flag], return_dto=None, sync_to_thread=False)
def strict(data: JSONBody[Flag]) -> dict[str, Any]:
    return msgspec.structs.asdict(data)


@patch("/partial", dto=Partial, return_dto=None, sync_to_thread=False)
def partial(data: JSONBody[DTOData[Flag]]) -> dict[str, Any]:
    return msgspec.structs.asdict(data.update_instance(Flag(name="before", on=False)))


def _client() -> TestClient[Litestar]:
    return TestClient(Litestar([stock, strict, partial]))


def test_control_litestars_own_dto_turns_a_string_into_a_boolean() -> None:
    """Fails once Litestar's DTO decodes strictly: then ``_StrictBackend`` is no longer needed."""
    with _client() as client:
        response = client.post("/stock", json={"name": "x", "on": "true"})
    assert response.status_code == 201
    assert response.json() == {"name": "x", "on": True}


def test_ours_refuses_it_and_names_the_field() -> None:
    with _client() as client:
        response = client.post("/strict", json={"name": "x", "on": "true"})
        fine = client.post("/strict", json={"name": "x", "on": True})
    assert response.status_code == 400
    assert response.json()["extra"] == [{"field": "on", "message": "Expected `bool`, got `str`"}]
    assert fine.json() == {"name": "x", "on": True}


def test_a_partial_body_is_checked_strictly_and_cleaned_before_the_handler_sees_it() -> None:
    with _client() as client:
        cleaned = client.patch("/partial", json={"name": "  after  "})
        refused = client.patch("/partial", json={"on": 1})
        blank = client.patch("/partial", json={"name": "   "})
    assert cleaned.json() == {"name": "after", "on": False}
    assert refused.status_code == 400
    assert blank.json()["extra"] == [{"field": "name", "message": "must not be blank"}]
