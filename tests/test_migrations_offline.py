"""`litestar database upgrade --sql` (Alembic offline mode) writes the schema as SQL, no database needed."""

from __future__ import annotations

from tests.support import SECRET, run_cli


def test_offline_upgrade_prints_the_schema_without_a_database() -> None:
    # Nothing listens on this port: offline mode must not connect.
    env = {"DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:9/none", "JWT_SECRET": SECRET}
    result = run_cli("database", "upgrade", "--sql", "--no-prompt", env=env)
    assert "CREATE TABLE tasks" in result.stdout
    assert "INSERT INTO alembic_version" in result.stdout
