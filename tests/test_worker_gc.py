"""The garbage-collector tuning of ``backend.app`` is in force in a worker that the serve command runs."""

from __future__ import annotations

import httpx

from backend.app import GC_YOUNG_THRESHOLD
from tests.support import api_server


def test_a_served_worker_collects_at_the_tuned_threshold_with_the_app_frozen(api_env: dict[str, str]) -> None:
    with api_server({**api_env, "LITESTAR_APP": "tests.probe_app:create_app"}) as server:
        state = httpx.get(f"{server.url}/probe/gc").json()
    assert state["threshold"][0] == GC_YOUNG_THRESHOLD
    assert state["frozen"] > 0  # routes, schemas and modules stay out of every collection
