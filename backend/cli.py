"""The app's CLI plugin: ``litestar run`` served by Granian, and ``litestar tasks ...`` developer commands."""

from __future__ import annotations

import re
import time
from typing import Any

import click
import jwt
from litestar.config.app import AppConfig
from litestar_granian import GranianPlugin

from backend.proxies import forwarded_middleware
from backend.settings import Settings

_TTL = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(value: str) -> int:
    match = _TTL.match(value.strip())
    if not match or int(match.group(1)) == 0:
        raise click.BadParameter("use a positive number with an optional unit: 90, 15m, 1h, 7d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def mint_token(settings: Settings, user_id: str, ttl_seconds: int) -> str:
    """An HS256 token the API accepts, signed with ``JWT_SECRET`` (development and curl only)."""
    if not settings.jwt_secret:
        raise click.ClickException("JWT_SECRET is not set: only HMAC tokens can be minted locally")
    now = int(time.time())
    claims: dict[str, Any] = {settings.jwt_user_claim: user_id, "iat": now, "exp": now + ttl_seconds}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    algorithm = settings.hmac_algorithms[0] if settings.hmac_algorithms else "HS256"
    return jwt.encode(claims, settings.jwt_secret, algorithm=algorithm)


class TasksCLIPlugin(GranianPlugin):
    """litestar-granian's plugin (its ``run`` replaces the uvicorn one; why: bench/results/ and
    docs/deploying.md), the proxy-header handling uvicorn used to do (backend/proxies.py), and the
    ``tasks`` command group."""

    __slots__ = ("settings",)

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        # Outermost of the app's middleware, so guards (the per-IP rate limit) see the forwarded client.
        app_config.middleware.insert(0, forwarded_middleware())
        return app_config

    def on_cli_init(self, cli: click.Group) -> None:
        super().on_cli_init(cli)
        settings = self.settings

        @cli.group(name="tasks", help="Tasks API developer commands.")
        def tasks() -> None:
            pass

        @tasks.command(name="token", help="Print a signed development token for USER_ID.")
        @click.argument("user_id")
        @click.option("--ttl", default="1h", show_default=True, help="Lifetime: 90, 15m, 1h, 7d.")
        def token(user_id: str, ttl: str) -> None:
            if not 1 <= len(user_id) <= 255:
                raise click.BadParameter("USER_ID must be 1-255 characters")
            click.echo(mint_token(settings, user_id, parse_ttl(ttl)))
