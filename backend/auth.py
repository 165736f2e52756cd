"""Bearer-token verification (JWKS and/or a shared HMAC secret) and the guard that checks ``{user_id}``."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, NoReturn

import httpx
import jwt
from jwt.types import Options
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard, Scope

from backend.ratelimit import RateLimiter
from backend.settings import Settings

logger = logging.getLogger(__name__)

USER_ID_MAX = 255
VERIFIED_CACHE_SIZE = 10_000
# A user id is 1-255 characters without control characters (NUL included) or lone surrogates:
# it goes into paths, SQL parameters (PostgreSQL refuses NUL) and UTF-8 log lines.
_UNUSABLE_IN_USER_ID = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Claims PyJWT checks with ``int(value)``, which also takes a numeric string: the contract wants numbers.
_NUMERIC_CLAIMS = ("exp", "iat", "nbf")
# Route handler ``opt`` key: this route also takes the token as ``?access_token=`` (RFC 6750 §2.3),
# for clients that cannot send headers (a browser's EventSource).
TOKEN_IN_QUERY = "token_in_query"  # noqa: S105 - a name, not a secret
ACCESS_TOKEN_PARAM = "access_token"  # noqa: S105 - a name, not a secret


def is_usable_user_id(value: object) -> bool:
    """1-255 characters, none of them a control character or a lone surrogate."""
    return (
        isinstance(value, str) and 1 <= len(value) <= USER_ID_MAX and not _UNUSABLE_IN_USER_ID.search(value)
    )


class InvalidToken(Exception):
    """The token cannot be trusted; the message is safe to show to the client."""


class JWKSCache:
    """Public keys from a JWKS URL, by ``kid``.

    An unknown ``kid`` triggers a re-fetch at most once per ``min_refresh`` seconds, so a flood of
    made-up ``kid``s costs the auth server one request per interval while a rotated key is picked up
    within seconds. Keys are also refreshed in the background once they are ``max_age`` old, so a key
    removed from the set stops working without anyone sending an unknown ``kid``.
    """

    def __init__(self, url: str, *, timeout: float, min_refresh: float, max_age: float = 300.0) -> None:
        self.url = url
        self.timeout = timeout
        self.min_refresh = min_refresh
        self.max_age = max_age
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()
        self._client: httpx.AsyncClient | None = None
        self._background: asyncio.Task[None] | None = None
        self.generation = 0  # +1 whenever the key set is replaced

    def refresh_if_stale(self) -> None:
        """Start a background refresh when the keys are older than ``max_age``; never waits."""
        if time.monotonic() - self._fetched_at > self.max_age and self._keys and self._background is None:
            self._background = asyncio.create_task(self._refresh_in_background())

    async def get(self, kid: str | None) -> jwt.PyJWK | None:
        self.refresh_if_stale()
        key = self._lookup(kid)
        # A fetch under way (the lock is held) is waited for, not skipped: at a cold start every
        # concurrent request needs the keys that first fetch brings.
        if key is None and (self._lock.locked() or time.monotonic() - self._attempted_at >= self.min_refresh):
            await self._refresh()
            key = self._lookup(kid)
        return key

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            # Without a kid, only an unambiguous single-key set can be used.
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh_in_background(self) -> None:
        try:
            await self._refresh()
        finally:
            self._background = None

    async def _refresh(self) -> None:
        async with self._lock:
            # Whoever waited for the lock behind a fetch reuses its result.
            if time.monotonic() - self._attempted_at < self.min_refresh:
                return
            self._attempted_at = time.monotonic()
            try:
                keys = await self._fetch()
            except (httpx.HTTPError, TimeoutError, ValueError) as exc:
                # Keep the last good keys: an auth server answering junk or an empty set for a
                # moment must not log everyone out.
                logger.warning("JWKS fetch from %s failed: %s", self.url, exc)
                return
            if keys.keys() != self._keys.keys():
                self.generation += 1
            self._keys = keys
            self._fetched_at = time.monotonic()

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        # httpx's timeout is per read; a server trickling bytes must not hold the lock for longer.
        async with asyncio.timeout(self.timeout):
            response = await self._client.get(self.url)
        response.raise_for_status()
        document = response.json()
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ValueError("not a JWKS document")
        keys: dict[str, jwt.PyJWK] = {}
        for jwk in entries:
            try:
                keys[str(jwk.get("kid", ""))] = jwt.PyJWK(jwk)
            except (jwt.PyJWKError, jwt.InvalidKeyError, TypeError, ValueError, AttributeError):
                continue  # a key we cannot use; the others still work
        if not keys:
            # Empty or all unusable looks broken (a rotation publishes the new key first): keep ours.
            raise ValueError("no usable key in the JWKS" if entries else "the JWKS holds no keys")
        return keys

    async def aclose(self) -> None:
        if self._background is not None:
            self._background.cancel()
        if self._client is not None:
            await self._client.aclose()


class TokenVerifier:
    """Turns a bearer token into a user id, or raises :class:`InvalidToken`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jwks = (
            JWKSCache(
                settings.jwt_jwks_url,
                timeout=settings.jwt_jwks_timeout_seconds,
                min_refresh=settings.jwt_jwks_min_refresh_seconds,
            )
            if settings.jwt_jwks_url
            else None
        )
        self._hmac = frozenset(settings.hmac_algorithms) if settings.jwt_secret else frozenset()
        self._asymmetric = frozenset(settings.jwks_algorithms) if self.jwks else frozenset()
        self._options: Options = {"require": ["exp"], "verify_aud": settings.jwt_audience is not None}
        # token -> (user, expires at, key-set generation): a client sends the same token for minutes, and
        # checking a signature again costs more than the rest of the request's auth.
        self._verified: dict[str, tuple[str, float, int]] = {}

    async def verify(self, token: str) -> str:
        """The token's user id."""
        user, _ = await self.verify_with_expiry(token)
        return user

    async def verify_with_expiry(self, token: str) -> tuple[str, float]:
        """The token's user id and when it stops being accepted (``exp`` + leeway, epoch seconds)."""
        if self.jwks is not None:
            self.jwks.refresh_if_stale()
        cached = self._verified.get(token)
        if cached is not None:
            user, expires_at, generation = cached
            if time.time() < expires_at and (self.jwks is None or generation == self.jwks.generation):
                return user, expires_at
            del self._verified[token]
        user, expires_at = await self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]  # the oldest entry
        self._verified[token] = (user, expires_at, self.jwks.generation if self.jwks else 0)
        return user, expires_at

    async def _verify(self, token: str) -> tuple[str, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise InvalidToken("malformed token")
        key: Any
        # The header's alg picks the key *kind*; an HMAC alg never reaches a JWKS public key.
        if alg in self._hmac:
            key = self.settings.jwt_secret
        elif alg in self._asymmetric and self.jwks is not None:
            kid = header.get("kid")
            key = await self.jwks.get(kid if isinstance(kid, str) else None)
            if key is None:
                raise InvalidToken("unknown signing key")
            if key.algorithm_name != alg:
                raise InvalidToken("algorithm does not match the signing key")
        else:
            raise InvalidToken("algorithm not allowed")
        claims = self._decode(token, key, alg)
        expires_at = self._check_lifetime(claims)
        user = claims.get(self.settings.jwt_user_claim)
        if (
            not isinstance(user, str)
            or not 1 <= len(user) <= USER_ID_MAX
            or _UNUSABLE_IN_USER_ID.search(user)
        ):
            raise InvalidToken(f"token has no usable '{self.settings.jwt_user_claim}' claim")
        return user, expires_at

    def _check_lifetime(self, claims: dict[str, Any]) -> float:
        """``exp`` + leeway, once the time claims are numbers and the lifetime is within the maximum."""
        for name in _NUMERIC_CLAIMS:
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise InvalidToken(f"{name} must be a number")
        try:
            exp = float(claims["exp"])
            start = float(claims["iat"]) if "iat" in claims else time.time()
        except OverflowError:  # e.g. exp = 10**400: an int no float can hold
            raise InvalidToken("token lifetime exceeds the maximum") from None
        if exp - start > self.settings.jwt_max_lifetime_seconds:
            raise InvalidToken("token lifetime exceeds the maximum")
        return exp + self.settings.jwt_leeway_seconds

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        s = self.settings
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=s.jwt_audience,
                issuer=s.jwt_issuer,
                leeway=s.jwt_leeway_seconds,
                options=self._options,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("token audience is not accepted") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("token issuer is not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"token lacks the '{exc.claim}' claim") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("token signature is invalid") from None
        except jwt.PyJWTError:
            raise InvalidToken("token is invalid") from None

    async def aclose(self) -> None:
        if self.jwks is not None:
            await self.jwks.aclose()


def _unauthorized(detail: str, *, token_sent: bool) -> NotAuthorizedException:
    challenge = f'Bearer error="invalid_token", error_description="{detail}"' if token_sent else "Bearer"
    return NotAuthorizedException(detail=detail, headers={"WWW-Authenticate": challenge})


def _authorization(scope: Scope) -> str | None:
    # Straight from the scope: ``connection.headers`` builds and copies a Headers object per call.
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")
    return None


def _bearer_token(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> str | None:
    """``Authorization: Bearer <token>``; on a route that opted in, ``?access_token=`` without it.

    None: no credentials at all. ``""``: credentials of the wrong kind or an empty token.
    """
    header = _authorization(connection.scope)
    if header is None or not header.strip():
        if handler.opt.get(TOKEN_IN_QUERY) is True:
            return connection.query_params.get(ACCESS_TOKEN_PARAM)
        return None
    scheme, _sep, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def owner_guard(verifier: TokenVerifier, limiter: RateLimiter | None = None) -> Guard:
    """A guard: a valid bearer token whose user is the path's ``{user_id}``, before any other work.

    The token comes from the ``Authorization`` header; a route handler with ``opt={"token_in_query":
    True}`` also takes it from ``?access_token=`` when no such header is sent. On success
    ``scope["state"]`` holds ``user_id`` and ``token_expires_at`` (``exp`` + leeway, epoch seconds).
    With a limiter, an authenticated request counts against its user, any other against its client IP.
    """

    async def reject(
        connection: ASGIConnection[Any, Any, Any, Any], error: NotAuthorizedException
    ) -> NoReturn:
        if limiter is not None:
            await limiter.check(connection, f"ip:{limiter.client_ip(connection)}")
        raise error

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        token = _bearer_token(connection, handler)
        if not token:
            await reject(connection, _unauthorized("missing bearer token", token_sent=token is not None))
        try:
            user, expires_at = await verifier.verify_with_expiry(token)
        except InvalidToken as exc:
            await reject(connection, _unauthorized(str(exc), token_sent=True))
        state = connection.scope.setdefault("state", {})
        state["user_id"] = user  # for the access log
        state["token_expires_at"] = expires_at  # for long-lived responses (live updates) to end on time
        if limiter is not None:
            await limiter.check(connection, f"user:{user}")
        if connection.path_params.get("user_id") != user:
            raise PermissionDeniedException(detail="the path's user id is not the token's subject")

    return guard
