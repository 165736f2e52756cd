"""The JWKS cache rules, on ``TokenVerifier`` itself against real loopback HTTP endpoints.

Every test that counts fetches or changes keys has its own key set and endpoint (the session
``jwks_server`` is shared with the API tests).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from backend.auth import InvalidToken, TokenVerifier
from backend.settings import Settings
from tests.support import AUDIENCE, ISSUER, SECRET, JWKSServer, KeySet, Tokens, free_port

T = TypeVar("T")

MIN_REFRESH = 1.0  # where the interval itself is under test
QUICK = 0.2  # elsewhere, to keep the file fast
TIMEOUT = 0.5
ALGS = ("EdDSA", "ES256", "RS256", "PS256")


def make_settings(jwks_url: str | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": "postgresql+asyncpg://test@127.0.0.1/test",
        "jwt_jwks_url": jwks_url,
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "jwt_jwks_min_refresh_seconds": MIN_REFRESH,
        "jwt_jwks_timeout_seconds": TIMEOUT,
    }
    values.update(overrides)
    return Settings(**values)


def with_verifier(settings: Settings, scenario: Callable[[TokenVerifier], Awaitable[T]]) -> T:
    """Run ``scenario`` on one event loop with a fresh verifier, closed afterwards."""

    async def main() -> T:
        verifier = TokenVerifier(settings)
        try:
            return await scenario(verifier)
        finally:
            await verifier.aclose()

    return asyncio.run(main())


async def rejected(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(token)
    return str(info.value)


def unknown_kid_token(tokens: Tokens, sub: str = "someone") -> str:
    """Well formed and signed, but naming a key id nobody published."""
    kid = tokens.keys.kid_for("EdDSA")
    _, key = tokens.keys.private[kid]
    return jwt.encode(tokens.claims(sub), key, algorithm="EdDSA", headers={"kid": uuid.uuid4().hex})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes] | None) -> str:
    """A JWT built by hand, so no library refuses to make it."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = b64(sign(signing_input.encode())) if sign else ""
    return f"{signing_input}.{signature}"


@pytest.fixture
def own_keys() -> KeySet:
    return KeySet()


@pytest.fixture
def own_jwks(own_keys: KeySet) -> Iterator[JWKSServer]:
    server = JWKSServer(own_keys)
    yield server
    # shutdown() waits out serve_forever's 0.5 s poll; nothing here depends on that wait.
    threading.Thread(target=server.close, daemon=True).start()


@pytest.fixture
def own_tokens(own_keys: KeySet) -> Tokens:
    return Tokens(own_keys)


class ScriptedJWKS:
    """A JWKS endpoint whose behaviour the test switches: ok, slow, trickle, or a fixed bad answer."""

    def __init__(self, keys: KeySet) -> None:
        self.keys = keys
        self.mode = "ok"
        self.body: bytes = b""
        self.status = 200
        self.fetches = 0
        # mode "hang": the request is held (``arrived`` set) until ``release`` is set.
        self.arrived = threading.Event()
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    outer.answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.block_on_close = False  # never wait for a deliberately slow handler
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/auth/jwks"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        mode = self.mode
        if mode == "slow":
            time.sleep(TIMEOUT * 3)
        if mode == "hang":
            self.arrived.set()
            self.release.wait(120)
        if mode == "trickle":
            # Each byte arrives well within the read timeout, but the whole answer takes seconds.
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", "1000")
            handler.end_headers()
            handler.wfile.flush()
            for _ in range(18):  # 6 x TIMEOUT in all
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(TIMEOUT / 3)
            return
        body = self.body if mode == "fixed" else json.dumps(self.keys.jwks()).encode()
        handler.send_response(self.status if mode == "fixed" else 200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted(own_keys: KeySet) -> Iterator[ScriptedJWKS]:
    server = ScriptedJWKS(own_keys)
    yield server
    server.close()


# --- caching --------------------------------------------------------------------------------------


def test_known_keys_are_fetched_once_for_many_verifications(own_jwks: JWKSServer, own_tokens: Tokens) -> None:
    async def scenario(verifier: TokenVerifier) -> None:
        for i in range(25):
            for alg in ALGS:
                assert await verifier.verify(own_tokens.jwks(f"user-{i}", alg)) == f"user-{i}"
        await asyncio.gather(*(verifier.verify(own_tokens.jwks("many", alg)) for alg in ALGS * 25))

    with_verifier(make_settings(own_jwks.url), scenario)
    assert own_jwks.fetches == 1


def test_nothing_is_fetched_before_the_first_token(own_jwks: JWKSServer) -> None:
    async def scenario(verifier: TokenVerifier) -> None:
        await asyncio.sleep(0)

    with_verifier(make_settings(own_jwks.url), scenario)
    assert own_jwks.fetches == 0


def test_a_flood_of_unknown_kids_costs_one_fetch_per_interval(
    own_jwks: JWKSServer, own_tokens: Tokens
) -> None:
    flood = [unknown_kid_token(own_tokens) for _ in range(200)]

    async def scenario(verifier: TokenVerifier) -> None:
        # 200 at once on a cold cache: one fetch, every one refused.
        results = await asyncio.gather(*(verifier.verify(t) for t in flood), return_exceptions=True)
        assert len(results) == len(flood)
        assert {type(r) for r in results} == {InvalidToken}
        assert own_jwks.fetches == 1
        # The same again inside the interval: no fetch at all.
        for token in flood:
            await rejected(verifier, token)
        assert own_jwks.fetches == 1
        # A sustained flood for 2.5 intervals: at most one fetch per interval.
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < 2.5 * MIN_REFRESH:
            await rejected(verifier, flood[sent % len(flood)])
            sent += 1
            await asyncio.sleep(0.005)
        assert sent > 100
        assert 1 <= own_jwks.fetches - 1 <= 3, own_jwks.fetches
        # Real tokens are unaffected.
        assert await verifier.verify(own_tokens.jwks("alice")) == "alice"

    with_verifier(make_settings(own_jwks.url), scenario)


def test_a_rotated_in_key_is_accepted_after_the_interval(
    own_keys: KeySet, own_jwks: JWKSServer, own_tokens: Tokens
) -> None:
    async def scenario(verifier: TokenVerifier) -> None:
        assert await verifier.verify(own_tokens.jwks("alice")) == "alice"
        fetched_at = time.monotonic()
        new_kid = own_keys.add("EdDSA")
        rotated = own_tokens.jwks("alice", kid=new_kid)
        # Inside the interval the new kid is not fetched for (that is the flood protection) ...
        await rejected(verifier, rotated)
        assert own_jwks.fetches == 1
        # ... and right after it, the same verifier picks it up.
        await asyncio.sleep(max(0.0, fetched_at + MIN_REFRESH + 0.05 - time.monotonic()))
        assert await verifier.verify(rotated) == "alice"
        assert own_jwks.fetches == 2
        assert await verifier.verify(own_tokens.jwks("alice")) == "alice"  # the old key too
        assert own_jwks.fetches == 2

    with_verifier(make_settings(own_jwks.url), scenario)


def test_rotation_works_for_every_algorithm(
    own_keys: KeySet, own_jwks: JWKSServer, own_tokens: Tokens
) -> None:
    async def scenario(verifier: TokenVerifier) -> None:
        for alg in ALGS:
            assert await verifier.verify(own_tokens.jwks("bob", alg)) == "bob"
        new_kids = {alg: own_keys.add(alg) for alg in ALGS}
        await asyncio.sleep(QUICK + 0.05)
        for alg, kid in new_kids.items():
            assert await verifier.verify(own_tokens.jwks("bob", alg, kid=kid)) == "bob"
        assert own_jwks.fetches == 2

    with_verifier(make_settings(own_jwks.url, jwt_jwks_min_refresh_seconds=QUICK), scenario)


def test_a_removed_key_stops_working_after_the_next_refresh(
    own_keys: KeySet, own_jwks: JWKSServer, own_tokens: Tokens
) -> None:
    old_kid = own_keys.kid_for("EdDSA")
    new_kid = own_keys.add("EdDSA")

    async def scenario(verifier: TokenVerifier) -> None:
        assert await verifier.verify(own_tokens.jwks("carol", kid=old_kid)) == "carol"
        own_keys.published.remove(old_kid)
        await asyncio.sleep(QUICK + 0.05)
        # Anything that makes the cache refresh: here an unknown kid.
        await rejected(verifier, unknown_kid_token(own_tokens))
        assert own_jwks.fetches == 2
        assert await rejected(verifier, own_tokens.jwks("carol", kid=old_kid)) == "unknown signing key"
        assert await verifier.verify(own_tokens.jwks("carol", kid=new_kid)) == "carol"

    with_verifier(make_settings(own_jwks.url, jwt_jwks_min_refresh_seconds=QUICK), scenario)


def test_a_removed_key_stops_working_once_the_cache_is_old_even_without_unknown_kids(
    own_keys: KeySet, own_jwks: JWKSServer, own_tokens: Tokens
) -> None:
    """The documented ``max_age`` background refresh (300 s in production; shortened here)."""
    old_kid = own_keys.kid_for("EdDSA")
    old = own_tokens.jwks("dave", kid=old_kid)

    async def scenario(verifier: TokenVerifier) -> None:
        assert verifier.jwks is not None
        verifier.jwks.max_age = 0.5
        assert await verifier.verify(old) == "dave"
        own_keys.published.remove(old_kid)
        await asyncio.sleep(0.6)
        deadline = time.monotonic() + 2
        while True:
            try:
                await verifier.verify(old)
            except InvalidToken:
                break
            assert time.monotonic() < deadline, "a removed key was still accepted"
            await asyncio.sleep(0.05)
        assert own_jwks.fetches == 2

    with_verifier(make_settings(own_jwks.url, jwt_jwks_min_refresh_seconds=QUICK), scenario)


# --- the JWKS endpoint misbehaving ----------------------------------------------------------------


def timed_rejection(settings: Settings, token: str) -> float:
    async def scenario(verifier: TokenVerifier) -> float:
        start = time.monotonic()
        await rejected(verifier, token)
        return time.monotonic() - start

    return with_verifier(settings, scenario)


def test_jwks_endpoint_down_is_a_prompt_invalid_token(own_tokens: Tokens) -> None:
    url = f"http://127.0.0.1:{free_port()}/api/auth/jwks"
    assert timed_rejection(make_settings(url), own_tokens.jwks("erin")) < TIMEOUT + 1


def test_jwks_endpoint_that_never_answers_times_out(own_tokens: Tokens) -> None:
    with socket.socket() as hole:  # accepts connections (backlog) but never reads or answers
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)
        url = f"http://127.0.0.1:{hole.getsockname()[1]}/api/auth/jwks"
        assert timed_rejection(make_settings(url), own_tokens.jwks("erin")) < TIMEOUT + 1


def test_a_slow_jwks_endpoint_is_an_invalid_token_within_the_timeout(
    scripted: ScriptedJWKS, own_tokens: Tokens
) -> None:
    scripted.mode = "slow"
    assert timed_rejection(make_settings(scripted.url), own_tokens.jwks("erin")) < TIMEOUT + 1


def test_a_trickling_jwks_endpoint_is_an_invalid_token_within_the_timeout(
    scripted: ScriptedJWKS, own_tokens: Tokens
) -> None:
    """A byte every so often defeats a per-read timeout; the fetch as a whole must still be bounded."""
    scripted.mode = "trickle"
    elapsed = timed_rejection(make_settings(scripted.url), own_tokens.jwks("erin"))
    assert elapsed < TIMEOUT + 1, f"took {elapsed:.1f}s with jwt_jwks_timeout_seconds={TIMEOUT}"


def test_cached_keys_still_verify_while_the_endpoint_is_down(
    own_jwks: JWKSServer, own_tokens: Tokens
) -> None:
    async def scenario(verifier: TokenVerifier) -> None:
        assert await verifier.verify(own_tokens.jwks("frank")) == "frank"
        own_jwks.close()
        await asyncio.sleep(QUICK + 0.05)
        start = time.monotonic()
        await rejected(verifier, unknown_kid_token(own_tokens))  # a failed re-fetch ...
        assert time.monotonic() - start < TIMEOUT + 1
        for alg in ALGS:  # ... keeps the keys it had
            assert await verifier.verify(own_tokens.jwks("frank", alg)) == "frank"

    with_verifier(make_settings(own_jwks.url, jwt_jwks_min_refresh_seconds=QUICK), scenario)


def test_cached_keys_verify_while_a_fetch_hangs(scripted: ScriptedJWKS, own_tokens: Tokens) -> None:
    """A fetch held open by the endpoint (well within the fetch timeout) blocks no verification by a
    cached key: those complete while the fetch is still in flight."""

    async def scenario(verifier: TokenVerifier) -> None:
        assert await verifier.verify(own_tokens.jwks("gina")) == "gina"
        scripted.mode = "hang"
        await asyncio.sleep(QUICK + 0.05)  # past the minimum refresh interval: an unknown kid fetches
        hanging = asyncio.create_task(rejected(verifier, unknown_kid_token(own_tokens)))
        assert await asyncio.to_thread(scripted.arrived.wait, 30), "the fetch never reached the endpoint"
        for alg in ALGS:
            assert await verifier.verify(own_tokens.jwks("gina", alg)) == "gina"
        assert not hanging.done()  # the cached keys did not wait for it
        scripted.release.set()
        await hanging
        assert await verifier.verify(own_tokens.jwks("gina", "RS256")) == "gina"

    settings = make_settings(scripted.url, jwt_jwks_min_refresh_seconds=QUICK, jwt_jwks_timeout_seconds=60)
    with_verifier(settings, scenario)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, b'{"error": "boom"}'),
        (200, b"<html>not json</html>"),
        (200, b"[1, 2, 3]"),
        (200, b'"keys"'),
        (200, b'{"keys": null}'),
        (200, b'{"keys": 5}'),
        (200, b'{"keys": [42, "x"]}'),
        (200, b'{"keys": []}'),
    ],
    ids=[
        "http-500",
        "not-json",
        "json-list",
        "json-string",
        "keys-null",
        "keys-number",
        "keys-not-objects",
        "keys-empty",
    ],
)
def test_a_broken_jwks_answer_is_an_invalid_token_and_keeps_the_cached_keys(
    status: int, body: bytes, scripted: ScriptedJWKS, own_tokens: Tokens
) -> None:
    async def scenario(verifier: TokenVerifier) -> None:
        assert await verifier.verify(own_tokens.jwks("hank")) == "hank"
        scripted.mode, scripted.status, scripted.body = "fixed", status, body
        await asyncio.sleep(QUICK + 0.05)
        await rejected(verifier, unknown_kid_token(own_tokens))
        assert scripted.fetches == 2
        assert await verifier.verify(own_tokens.jwks("hank")) == "hank"

    with_verifier(make_settings(scripted.url, jwt_jwks_min_refresh_seconds=QUICK), scenario)


def test_unusable_entries_in_the_jwks_do_not_hide_the_usable_ones(
    scripted: ScriptedJWKS, own_keys: KeySet, own_tokens: Tokens
) -> None:
    document = own_keys.jwks()
    document["keys"] = [
        {"kty": "XYZ", "kid": "mystery"},
        {"kty": "EC", "crv": "P-999", "x": "AA", "y": "AA", "kid": "bad-curve"},
        {"kty": "RSA", "kid": "no-modulus"},
        *document["keys"],
    ]
    scripted.mode, scripted.status, scripted.body = "fixed", 200, json.dumps(document).encode()

    async def scenario(verifier: TokenVerifier) -> None:
        for alg in ALGS:
            assert await verifier.verify(own_tokens.jwks("ivy", alg)) == "ivy"

    with_verifier(make_settings(scripted.url), scenario)


# --- tokens that must never verify ----------------------------------------------------------------


def confusion_secrets(keys: KeySet, kid: str) -> list[bytes]:
    """What an attacker might hope the server uses as the HMAC secret for a public key."""
    alg, private = keys.private[kid]
    pem = keys.public_pem(kid)
    jwk = json.dumps(next(k for k in keys.jwks()["keys"] if k["kid"] == kid)).encode()
    secrets = [pem, pem.strip(), jwk]
    if alg == "EdDSA":
        from cryptography.hazmat.primitives import serialization

        secrets.append(
            private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
    return secrets


@pytest.mark.parametrize("with_secret", [False, True], ids=["jwks-only", "jwks-and-secret"])
def test_hmac_signed_with_a_jwks_public_key_is_rejected(
    with_secret: bool, own_keys: KeySet, own_jwks: JWKSServer, own_tokens: Tokens
) -> None:
    extra: dict[str, Any] = (
        {"jwt_secret": SECRET, "jwt_algorithms": (*ALGS, "HS256", "HS384", "HS512")} if with_secret else {}
    )
    forged: list[str] = []
    for alg in ALGS:
        kid = own_keys.kid_for(alg)
        for secret in confusion_secrets(own_keys, kid):
            for hs, digest in (("HS256", "sha256"), ("HS384", "sha384"), ("HS512", "sha512")):
                header = {"alg": hs, "typ": "JWT", "kid": kid}
                sign = functools.partial(hmac.digest, secret, digest=digest)
                forged.append(hand_made(header, own_tokens.claims("mallory"), sign))

    async def scenario(verifier: TokenVerifier) -> None:
        assert await verifier.verify(own_tokens.jwks("alice")) == "alice"  # the keys are loaded
        for token in forged:
            await rejected(verifier, token)
        if with_secret:  # the shared secret path itself works
            assert await verifier.verify(own_tokens.hs256("alice")) == "alice"

    with_verifier(make_settings(own_jwks.url, **extra), scenario)


@pytest.mark.parametrize("with_secret", [False, True], ids=["jwks-only", "jwks-and-secret"])
def test_alg_none_is_rejected(
    with_secret: bool, own_keys: KeySet, own_jwks: JWKSServer, own_tokens: Tokens
) -> None:
    extra: dict[str, Any] = {"jwt_secret": SECRET} if with_secret else {}
    claims = own_tokens.claims("mallory")
    unsigned = [
        hand_made({"alg": alg, "typ": "JWT", **kid}, claims, None)
        for alg in ("none", "None", "NONE", "nOnE", "")
        for kid in ({}, {"kid": own_keys.kid_for("EdDSA")})
    ]
    # And a real signature carried over under alg none.
    signed = own_tokens.jwks("mallory").split(".")
    header = {"alg": "none", "kid": own_keys.kid_for("EdDSA")}
    unsigned.append(f"{b64(json.dumps(header).encode())}.{signed[1]}.{signed[2]}")

    async def scenario(verifier: TokenVerifier) -> None:
        assert await verifier.verify(own_tokens.jwks("alice")) == "alice"
        for token in unsigned:
            await rejected(verifier, token)

    with_verifier(make_settings(own_jwks.url, **extra), scenario)


def test_a_kid_signed_by_another_key_or_alg_is_rejected(
    own_keys: KeySet, own_jwks: JWKSServer, own_tokens: Tokens
) -> None:
    ed_kid, es_kid = own_keys.kid_for("EdDSA"), own_keys.kid_for("ES256")
    _, es_key = own_keys.private[es_kid]
    other_ed = ed25519.Ed25519PrivateKey.generate()
    claims = own_tokens.claims("mallory")
    wrong_key = jwt.encode(claims, other_ed, algorithm="EdDSA", headers={"kid": ed_kid})
    wrong_alg = jwt.encode(claims, es_key, algorithm="ES256", headers={"kid": ed_kid})
    rs_as_ps = jwt.encode(
        claims, own_keys.private[own_keys.kid_for("RS256")][1], algorithm="PS256",
        headers={"kid": own_keys.kid_for("RS256")},
    )  # fmt: skip

    async def scenario(verifier: TokenVerifier) -> None:
        assert await rejected(verifier, wrong_key) == "token signature is invalid"
        for token in (wrong_alg, rs_as_ps):
            assert await rejected(verifier, token) == "algorithm does not match the signing key"

    with_verifier(make_settings(own_jwks.url), scenario)


# --- verified tokens are remembered, but never past their expiry or their key ----------------------


def test_a_remembered_token_still_expires(own_jwks: JWKSServer, own_tokens: Tokens) -> None:
    token = own_tokens.jwks("erin", exp=int(time.time()) + 2)

    async def scenario(verifier: TokenVerifier) -> None:
        assert await verifier.verify(token) == "erin"
        assert await verifier.verify(token) == "erin"  # from memory
        await asyncio.sleep(2.5)
        with pytest.raises(InvalidToken, match="expired"):
            await verifier.verify(token)

    with_verifier(make_settings(own_jwks.url, jwt_leeway_seconds=0), scenario)


def test_a_remembered_token_is_checked_again_after_its_key_is_removed(
    own_keys: KeySet, own_jwks: JWKSServer, own_tokens: Tokens
) -> None:
    old_kid = own_keys.kid_for("EdDSA")
    old = own_tokens.jwks("fay", kid=old_kid)
    new_kid = own_keys.add("EdDSA")
    new = own_tokens.jwks("fay", kid=new_kid)

    async def scenario(verifier: TokenVerifier) -> None:
        own_keys.published.remove(new_kid)
        assert await verifier.verify(old) == "fay"  # first fetch: only the old key
        own_keys.published.remove(old_kid)
        own_keys.published.append(new_kid)
        await asyncio.sleep(QUICK + 0.1)
        assert await verifier.verify(new) == "fay"  # unknown kid: refresh, the old key is gone
        with pytest.raises(InvalidToken):
            await verifier.verify(old)

    with_verifier(make_settings(own_jwks.url, jwt_jwks_min_refresh_seconds=QUICK), scenario)


def test_concurrent_first_requests_all_wait_for_the_first_fetch(
    own_jwks: JWKSServer, own_tokens: Tokens
) -> None:
    tokens = [own_tokens.jwks(f"cold-{i}") for i in range(50)]

    async def scenario(verifier: TokenVerifier) -> None:
        users = await asyncio.gather(*(verifier.verify(t) for t in tokens))
        assert users == [f"cold-{i}" for i in range(50)]
        assert own_jwks.fetches == 1

    with_verifier(make_settings(own_jwks.url), scenario)
