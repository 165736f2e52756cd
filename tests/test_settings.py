"""Configuration: litestar.toml < .env < environment, validated once, with one clear line on error."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.settings import ConfigError, load_settings, normalize_database_url
from tests.support import SECRET, run_cli

BASE = {"DATABASE_URL": "postgresql://u:p@db.example:5432/tasks", "JWT_SECRET": SECRET}


@pytest.fixture(autouse=True)
def _no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # .env is read from the working directory
    return tmp_path


def test_defaults_come_from_litestar_toml() -> None:
    s = load_settings(dict(BASE))
    assert (s.database_pool_size, s.jwt_leeway_seconds, s.jwt_user_claim) == (20, 30, "sub")
    assert s.hmac_algorithms == ("HS256",)
    assert s.jwks_algorithms == ("EdDSA", "ES256", "RS256", "PS256")


def test_dotenv_overrides_toml_and_environment_overrides_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text('JWT_LEEWAY_SECONDS=5\nexport DATABASE_POOL_SIZE="7"\n# a comment\n')
    s = load_settings(dict(BASE))
    assert (s.jwt_leeway_seconds, s.database_pool_size) == (5, 7)
    s = load_settings({**BASE, "JWT_LEEWAY_SECONDS": "9"})
    assert s.jwt_leeway_seconds == 9


def test_toml_of_another_root_is_read(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "litestar.toml").write_text("[tasks]\njwt_user_claim = 'uid'\n")
    assert load_settings(dict(BASE), root=root).jwt_user_claim == "uid"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h:5432/d", "postgresql+asyncpg://u:p@h:5432/d"),
        ("postgres://u:p@h/d", "postgresql+asyncpg://u:p@h/d"),
        ("postgresql+asyncpg://u:p@h/d", "postgresql+asyncpg://u:p@h/d"),
        (
            "postgresql://u:p@ep-x-pooler.eu.aws.neon.tech/d?sslmode=require&channel_binding=require",
            "postgresql+asyncpg://u:p@ep-x-pooler.eu.aws.neon.tech/d?ssl=require",
        ),
        ("postgresql://postgres@/d?host=/tmp/sock", "postgresql+asyncpg://postgres@/d?host=%2Ftmp%2Fsock"),
    ],
)
def test_database_urls_are_normalised_for_asyncpg(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": BASE["DATABASE_URL"]}, "JWT_JWKS_URL"),
        ({**BASE, "JWT_SECRET": "too-short"}, "at least 32 bytes"),
        ({**BASE, "DATABASE_URL": "mysql://u@h/d"}, "DATABASE_URL"),
        ({**BASE, "DATABASE_URL": "postgresql:///nohost"}, "DATABASE_URL"),
        ({**BASE, "JWT_JWKS_URL": "ftp://x/jwks"}, "JWT_JWKS_URL"),
        ({**BASE, "JWT_ALGORITHMS": "none"}, "JWT_ALGORITHMS"),
        ({**BASE, "JWT_LEEWAY_SECONDS": "soon"}, "JWT_LEEWAY_SECONDS"),
        ({**BASE, "DATABASE_POOL_SIZE": "0"}, "DATABASE_POOL_SIZE"),
        ({**BASE, "RATE_LIMIT": "lots"}, "RATE_LIMIT"),
        ({**BASE, "RATE_LIMIT": "10/fortnight"}, "RATE_LIMIT"),
        ({**BASE, "REDIS_URL": "http://cache:6379"}, "REDIS_URL"),
    ],
)
def test_invalid_configuration_is_one_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(env)
    assert "\n" not in str(info.value)


def test_empty_variables_count_as_unset() -> None:
    assert load_settings({**BASE, "JWT_JWKS_URL": ""}).jwt_jwks_url is None


def test_the_app_refuses_to_start_with_one_line() -> None:
    result = run_cli(
        "database", "show-current-revision", env={"JWT_SECRET": "", "JWT_JWKS_URL": ""}, check=False
    )
    assert result.returncode != 0
    assert (
        result.stderr.strip().splitlines()[-1].startswith("Tasks API configuration error: set JWT_JWKS_URL")
    )


def test_pool_mode_is_detected_for_neon_pooler_hosts_and_can_be_set() -> None:
    listen = {"DATABASE_LISTEN_URL": "postgresql://u:p@ep-cool-123.eu-central-1.aws.neon.tech/db"}
    pooled = {
        **BASE,
        **listen,
        "DATABASE_URL": "postgresql://u:p@ep-cool-123-pooler.eu-central-1.aws.neon.tech/db",
    }
    assert load_settings(pooled).database_pool_mode == "transaction"
    assert load_settings(dict(BASE)).database_pool_mode == "session"
    assert (
        load_settings({**BASE, **listen, "DATABASE_POOL_MODE": "transaction"}).database_pool_mode
        == "transaction"
    )
    assert load_settings({**pooled, "DATABASE_POOL_MODE": "session"}).database_pool_mode == "session"
    with pytest.raises(ConfigError, match="DATABASE_POOL_MODE"):
        load_settings({**BASE, "DATABASE_POOL_MODE": "statement"})


def test_max_token_lifetime_defaults_to_a_day_and_must_be_positive() -> None:
    assert load_settings(dict(BASE)).jwt_max_lifetime_seconds == 86_400
    assert load_settings({**BASE, "JWT_MAX_LIFETIME_SECONDS": "900"}).jwt_max_lifetime_seconds == 900
    for bad in ("0", "-5", "a day"):
        with pytest.raises(ConfigError, match="JWT_MAX_LIFETIME_SECONDS"):
            load_settings({**BASE, "JWT_MAX_LIFETIME_SECONDS": bad})
