"""Every route under /api needs a valid bearer token whose subject is the path's user."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import quote

import httpx
import jwt
import pytest

from tests.support import SECRET, Tokens, api_server


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned(sub: str) -> str:
    now = int(time.time())
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'sub': sub, 'exp': now + 600})}."


def bad_tokens(tokens: Tokens, user: str) -> dict[str, str]:
    now = int(time.time())
    ed_kid = tokens.keys.kid_for("EdDSA")
    return {
        "garbage": "not-a-jwt",
        "alg none": unsigned(user),
        "expired": tokens.jwks(user, exp=now - 3600, iat=now - 7200),
        "not yet valid": tokens.jwks(user, nbf=now + 3600),
        "wrong signature": tokens.jwks(user)[:-4] + "AAAA",
        "wrong hmac secret": jwt.encode(
            tokens.claims(user), "another-secret-of-at-least-32-bytes!!", "HS256"
        ),
        "wrong issuer": tokens.jwks(user, iss="http://evil.test"),
        "wrong audience": tokens.jwks(user, aud="http://other.test"),
        "no exp": tokens.jwks(user, exp=None),
        "no sub": tokens.jwks(None),
        "sub not a string": _ed(tokens, {**tokens.claims(None), "sub": 42}),
        "sub too long": _ed(tokens, tokens.claims("x" * 256)),
        "unknown kid": _ed(tokens, tokens.claims(user), kid="no-such-kid"),
        "hs256 signed with the jwks public key": _forge_hs256(
            tokens.claims(user), tokens.keys.public_pem(ed_kid), ed_kid
        ),
        "hs512 not allowed": jwt.encode(tokens.claims(user), SECRET, "HS512"),
        # Time claims must be numbers (PyJWT alone takes "exp": "9999999999") and finite-sized.
        "exp beyond any float": tokens.jwks(user, exp=10**400),
        "exp a numeric string": tokens.jwks(user, exp=str(now + 600)),
        "iat a numeric string": tokens.jwks(user, iat=str(now)),
        "exp true": tokens.jwks(user, exp=True),
        # JWT_MAX_LIFETIME_SECONDS (default a day) from iat, or from now without iat.
        "lives longer than a day": tokens.jwks(user, iat=now, exp=now + 86_400 + 120),
        "lives longer than a day, no iat": tokens.jwks(user, iat=None, exp=now + 2 * 86_400),
        "iat far in the past": tokens.jwks(user, iat=-(10**400), exp=now + 600),
        # A user id has no control characters and is valid Unicode.
        "sub with NUL": tokens.jwks(f"{user}\x00"),
        "sub with a lone surrogate": tokens.jwks(f"{user}\ud800"),
        "sub with a newline": tokens.jwks(f"{user}\nfake log line"),
    }


def _ed(tokens: Tokens, claims: dict[str, object], kid: str | None = None) -> str:
    real_kid = tokens.keys.kid_for("EdDSA")
    _, key = tokens.keys.private[real_kid]
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid or real_kid})


def _forge_hs256(claims: dict[str, object], secret: bytes, kid: str) -> str:
    # PyJWT refuses a PEM key as an HMAC secret; an attacker would not, so sign by hand.
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{b64(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def test_missing_token_is_401_with_bare_challenge(anon: httpx.Client, user: str) -> None:
    response = anon.get(f"/api/{user}/tasks")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer  x y", "Token abc"])
def test_non_bearer_authorization_is_401(anon: httpx.Client, user: str, header: str) -> None:
    response = anon.get(f"/api/{user}/tasks", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_every_bad_token_is_401_invalid_token(anon: httpx.Client, tokens: Tokens, user: str) -> None:
    for name, token in bad_tokens(tokens, user).items():
        response = anon.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"'), name
        body = response.json()
        assert body["status"] == 401
        assert body["detail"], name


def test_a_token_living_just_under_the_maximum_is_accepted(
    anon: httpx.Client, tokens: Tokens, user: str
) -> None:
    now = int(time.time())
    for token in (
        tokens.jwks(user, iat=now, exp=now + 86_400 - 60),
        tokens.jwks(user, iat=None, exp=now + 600),
    ):
        assert anon.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_string_exp_says_it_must_be_a_number(anon: httpx.Client, tokens: Tokens, user: str) -> None:
    token = tokens.jwks(user, exp=str(int(time.time()) + 600))
    response = anon.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["detail"] == "exp must be a number"


def test_max_lifetime_is_configurable(api_env: dict[str, str], tokens: Tokens, user: str) -> None:
    now = int(time.time())
    with api_server({**api_env, "JWT_MAX_LIFETIME_SECONDS": "300"}) as server:
        url = f"{server.url}/api/{user}/tasks"
        short = tokens.jwks(user, iat=now, exp=now + 290)
        assert httpx.get(url, headers={"Authorization": f"Bearer {short}"}).status_code == 200
        long = tokens.jwks(user, iat=now, exp=now + 900)
        refused = httpx.get(url, headers={"Authorization": f"Bearer {long}"})
        assert refused.status_code == 401
        assert refused.json()["detail"] == "token lifetime exceeds the maximum"


@pytest.mark.parametrize("odd", ["\x00", "\x1b[31m", "\ud800"])
def test_a_path_and_sub_with_unusable_characters_is_401_at_the_guard(
    anon: httpx.Client, tokens: Tokens, user: str, odd: str
) -> None:
    """Even when the path names the same odd id as the token: the guard refuses before the database."""
    sub = f"{user}{odd}"
    path_id = quote(sub.encode("utf-8", "surrogatepass"), safe="")
    token = tokens.jwks(sub)
    for method in ("GET", "POST"):
        response = anon.request(
            method, f"/api/{path_id}/tasks", json={"title": "x"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, (method, response.text)
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256", "PS256"])
def test_jwks_algorithms_are_accepted(anon: httpx.Client, tokens: Tokens, user: str, alg: str) -> None:
    response = anon.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {tokens.jwks(user, alg)}"})
    assert response.status_code == 200


def test_shared_secret_hs256_is_accepted(anon: httpx.Client, tokens: Tokens, user: str) -> None:
    response = anon.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {tokens.hs256(user)}"})
    assert response.status_code == 200


def test_small_clock_skew_is_absorbed_by_leeway(anon: httpx.Client, tokens: Tokens, user: str) -> None:
    now = int(time.time())
    token = tokens.jwks(user, exp=now - 5, nbf=now + 5)
    assert anon.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_every_route_needs_a_token(anon: httpx.Client, user: str) -> None:
    task = "0193f3c4-6a1e-7c2b-9a55-2f1e0c8d4b21"
    routes = [
        ("GET", "/tasks"), ("POST", "/tasks"), ("DELETE", "/tasks?completed=true"), ("GET", "/tasks/stats"),
        ("POST", "/tasks/complete-all"), ("GET", f"/tasks/{task}"), ("PUT", f"/tasks/{task}"),
        ("PATCH", f"/tasks/{task}"), ("DELETE", f"/tasks/{task}"), ("PATCH", f"/tasks/{task}/complete"),
    ]  # fmt: skip
    for method, path in routes:
        response = anon.request(method, f"/api/{user}{path}", json={"title": "x"})
        assert response.status_code == 401, (method, path)


def test_path_user_mismatch_is_403_before_the_body_is_read(
    anon: httpx.Client, tokens: Tokens, user: str
) -> None:
    headers = {**tokens.headers(user), "Content-Type": "application/json"}
    response = anon.post("/api/someone-else/tasks", content=b"{not json", headers=headers)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    # And nothing was created for anyone.
    assert anon.get(f"/api/{user}/tasks", headers=tokens.headers(user)).json() == []


def test_403_for_every_route_on_another_users_path(anon: httpx.Client, tokens: Tokens, user: str) -> None:
    for method, path in [("GET", "/tasks"), ("GET", "/tasks/stats"), ("DELETE", "/tasks?completed=true")]:
        response = anon.request(method, f"/api/victim/{path.lstrip('/')}", headers=tokens.headers(user))
        assert response.status_code == 403, path


def test_user_claim_is_configurable(api_env: dict[str, str], tokens: Tokens, user: str) -> None:
    env = {**api_env, "JWT_USER_CLAIM": "uid"}
    with api_server(env) as server:
        good = tokens.jwks("ignored", uid=user)
        response = httpx.get(f"{server.url}/api/{user}/tasks", headers={"Authorization": f"Bearer {good}"})
        assert response.status_code == 200
        missing = tokens.jwks(user)
        response = httpx.get(f"{server.url}/api/{user}/tasks", headers={"Authorization": f"Bearer {missing}"})
        assert response.status_code == 401
