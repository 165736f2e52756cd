"""`litestar tasks token`: a development token the API accepts."""

from __future__ import annotations

import httpx

from tests.support import SECRET, ApiServer, run_cli


def test_minted_token_is_accepted(api: ApiServer, api_env: dict[str, str]) -> None:
    token = run_cli("tasks", "token", "dev-user", "--ttl", "5m", env=api_env).stdout.strip()
    response = httpx.get(f"{api.url}/api/dev-user/tasks", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert (
        httpx.get(f"{api.url}/api/other/tasks", headers={"Authorization": f"Bearer {token}"}).status_code
        == 403
    )


def test_bad_ttl_and_missing_secret_are_clear_errors(api_env: dict[str, str]) -> None:
    bad = run_cli("tasks", "token", "u", "--ttl", "0", env=api_env, check=False)
    assert bad.returncode != 0
    assert "positive number" in bad.stderr
    no_secret = run_cli("tasks", "token", "u", env={**api_env, "JWT_SECRET": ""}, check=False)
    assert no_secret.returncode != 0
    assert "JWT_SECRET is not set" in no_secret.stderr
    assert SECRET not in no_secret.stderr
