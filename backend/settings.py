"""Settings: ``litestar.toml`` defaults, then ``.env``, then the environment; validated once."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from backend.ratelimit import parse_rate

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_DATA_DIR = PROJECT_ROOT / ".data"
DEV_PGDATA = DEV_DATA_DIR / "postgres"

_JWKS_ALGORITHMS = ("EdDSA", "ES256", "RS256", "PS256")
_HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
_ASYMMETRIC_ALGORITHMS = frozenset(
    {"EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)


class ConfigError(ValueError):
    """Invalid configuration: the message is one line meant for the operator."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    database_pool_size: int = 20
    database_max_overflow: int = 10
    database_pool_timeout: float = 5.0
    database_statement_timeout: float = 10.0
    database_echo: bool = False
    # "session" (a direct server) or "transaction" (PgBouncer or Neon's -pooler endpoint in transaction
    # mode: no named prepared statements). Empty: "transaction" when the host contains "-pooler".
    database_pool_mode: str = ""
    jwt_jwks_url: str | None = None
    jwt_secret: str | None = None
    jwt_algorithms: tuple[str, ...] = ()
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_user_claim: str = "sub"
    jwt_leeway_seconds: int = 30
    jwt_jwks_timeout_seconds: float = 3.0
    jwt_jwks_min_refresh_seconds: float = 5.0
    # Live updates: the direct (session) connection LISTEN needs; empty means DATABASE_URL.
    database_listen_url: str | None = None
    # A token whose lifetime (exp past iat, or past now without iat) exceeds this is refused.
    jwt_max_lifetime_seconds: int = 86400
    cors_allow_origins: tuple[str, ...] = ()
    # Request headers a browser may send besides the built-in list (Authorization, tracing headers...).
    cors_allow_headers: tuple[str, ...] = ()
    # Tasks one user may hold; a create past it is refused and creates nothing.
    tasks_max_per_user: int = 100_000
    # Lists one user may hold; past it a create is refused (409) and creates nothing.
    lists_max_per_user: int = 1_000
    rate_limit: str = "600/minute"
    redis_url: str | None = None
    # Serving (`scripts/serve`: `litestar run` on Granian; docs/deploying.md). Granian's HTTP/1 read
    # buffer, which bounds a request's line and headers: a head smaller than it is always read, one twice
    # its size or more always gets a 431 (between, it depends on how the bytes arrive); 100 headers at
    # most. Then the seconds a client has to send the head, and the seconds in-flight requests get to
    # finish after SIGTERM.
    server_header_buffer_bytes: int = 32768
    server_header_read_timeout: float = 10.0
    server_shutdown_timeout: int = 30

    @property
    def jwks_algorithms(self) -> tuple[str, ...]:
        """Asymmetric algorithms accepted against JWKS keys (never an HMAC one)."""
        chosen = self.jwt_algorithms or _JWKS_ALGORITHMS
        return tuple(a for a in chosen if a in _ASYMMETRIC_ALGORITHMS)

    @property
    def hmac_algorithms(self) -> tuple[str, ...]:
        """HMAC algorithms accepted with the shared secret."""
        chosen = self.jwt_algorithms or ("HS256",)
        return tuple(a for a in chosen if a in _HMAC_ALGORITHMS)


def _read_dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        section = tomllib.load(f).get("tasks", {})
    return {str(k).upper(): v for k, v in section.items()}


def normalize_database_url(url: str) -> str:
    """Accept ``postgresql://``/``postgres://`` and Neon-style ``sslmode=`` and return an asyncpg URL."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgresql", "postgres", "postgresql+asyncpg"}:
        raise ConfigError(
            f"DATABASE_URL must start with postgresql:// or postgresql+asyncpg:// (got {parts.scheme}://)"
        )
    if not (parts.hostname or "host=" in parts.query):
        raise ConfigError("DATABASE_URL has no host")
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        # asyncpg calls libpq's sslmode "ssl"; channel_binding has no asyncpg equivalent.
        if key == "sslmode":
            key = "ssl"
        if key == "channel_binding":
            continue
        query.append((key, value))
    return urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, urlencode(query), parts.fragment))


def dev_database_url() -> str:
    """The local cluster that ``scripts/dev`` starts (unix socket inside its data folder)."""
    return f"postgresql+asyncpg://postgres@/postgres?host={DEV_PGDATA}"


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be true or false (got {value!r})")


def _as_number(name: str, value: Any, kind: type[int] | type[float], minimum: float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number (got {value!r})") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum} (got {value!r})")
    return number


def _as_list(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(s for s in (str(i).strip() for i in items) if s)


def raw_settings(environ: dict[str, str] | None = None, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """``litestar.toml`` < ``.env`` (working directory) < the environment, by upper-case name."""
    raw: dict[str, Any] = _read_toml(root / "litestar.toml")
    raw.update(_read_dotenv(Path.cwd() / ".env"))
    raw.update(os.environ if environ is None else environ)
    # An empty variable counts as unset, as in most twelve-factor tooling.
    return {k: v for k, v in raw.items() if v != ""}


def load_settings(environ: dict[str, str] | None = None, root: Path = PROJECT_ROOT) -> Settings:
    """Build and validate the settings."""
    raw = raw_settings(environ, root)

    url = raw.get("DATABASE_URL") or dev_database_url()
    values: dict[str, Any] = {"database_url": normalize_database_url(str(url))}
    for f in fields(Settings):
        key = f.name.upper()
        if f.name in values or key not in raw:
            continue
        value = raw[key]
        if f.type == "int":
            values[f.name] = _as_number(key, value, int, 0)
        elif f.type == "float":
            values[f.name] = _as_number(key, value, float, 0)
        elif f.type == "bool":
            values[f.name] = _as_bool(key, value)
        elif f.type == "tuple[str, ...]":
            values[f.name] = _as_list(value)
        else:
            values[f.name] = str(value)
    if not values.get("database_pool_mode"):
        pooled = "-pooler" in (urlsplit(str(url)).hostname or "")
        values["database_pool_mode"] = "transaction" if pooled else "session"
    settings = Settings(**values)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    if not (s.jwt_jwks_url or s.jwt_secret):
        raise ConfigError(
            "set JWT_JWKS_URL (Better Auth's /api/auth/jwks) or JWT_SECRET (32+ bytes), or both"
        )
    if s.jwt_secret is not None and len(s.jwt_secret.encode()) < 32:
        raise ConfigError("JWT_SECRET must be at least 32 bytes long")
    if s.jwt_jwks_url and urlsplit(s.jwt_jwks_url).scheme not in {"http", "https"}:
        raise ConfigError("JWT_JWKS_URL must be an http(s) URL")
    unknown = set(s.jwt_algorithms) - _ASYMMETRIC_ALGORITHMS - set(_HMAC_ALGORITHMS)
    if unknown:
        raise ConfigError(f"JWT_ALGORITHMS has unsupported algorithms: {', '.join(sorted(unknown))}")
    if s.jwt_jwks_url and not s.jwks_algorithms:
        raise ConfigError("JWT_ALGORITHMS lists no asymmetric algorithm for JWT_JWKS_URL")
    if s.jwt_secret and not s.hmac_algorithms and not s.jwt_jwks_url:
        raise ConfigError("JWT_ALGORITHMS lists no HMAC algorithm for JWT_SECRET")
    try:
        parse_rate(s.rate_limit)
    except ValueError as exc:
        raise ConfigError(str(exc).replace("\n", " ")) from None
    if s.redis_url and urlsplit(s.redis_url).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
    if s.database_pool_mode not in {"session", "transaction"}:
        raise ConfigError(f"DATABASE_POOL_MODE must be session or transaction (got {s.database_pool_mode!r})")
    if s.database_listen_url:
        try:
            listen_host = urlsplit(normalize_database_url(s.database_listen_url)).hostname or ""
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("DATABASE_URL", "DATABASE_LISTEN_URL")) from None
        if "-pooler" in listen_host:
            raise ConfigError("DATABASE_LISTEN_URL must be a direct connection (on Neon: without -pooler)")
    elif s.database_pool_mode == "transaction":
        # Live updates LISTEN on one session, which a transaction-mode pooler does not keep.
        raise ConfigError(
            "DATABASE_POOL_MODE is transaction (a pooler): set DATABASE_LISTEN_URL to a direct connection "
            "for live updates (LISTEN), e.g. Neon's URL without -pooler"
        )
    for name in (
        "database_pool_size",
        "tasks_max_per_user",
        "lists_max_per_user",
        "jwt_max_lifetime_seconds",
    ):
        if getattr(s, name) < 1:
            raise ConfigError(f"{name.upper()} must be at least 1")
