"""GET /ready: can this worker serve calls now, and is what it writes reaching EI? The database must
answer and its schema must be at the newest migration (a worker of a newer release must not serve an
old schema, nor the reverse); and, as configured ([readiness]), enough EI publishers must be up and
the oldest pending outbox row must not be older than its limit, and enough publishers of Egen
provhantering's offers must be up (producer.platform.outbox_watch)."""

from __future__ import annotations

from functools import cache

import psycopg
from psycopg_pool import ConnectionPool

from producer.platform import outbox_watch
from producer.platform.database import MIGRATIONS_DIR
from producer.platform.settings import Settings

READY_TIMEOUT_SECONDS = 2.0


@cache
def newest_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise RuntimeError("the migrations have no head revision")
    return head


def problem(pool: ConnectionPool, settings: Settings) -> str | None:
    """Why the worker is not ready, or None when it is."""
    try:
        with pool.connection(timeout=READY_TIMEOUT_SECONDS) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            current = row[0] if row else None
            if current != newest_revision():
                return (
                    f"the database schema is at {current or 'no revision'}, not {newest_revision()}"
                    " (run tidbok migrate)"
                )
            publishing = outbox_watch.read(conn)
            ep = outbox_watch.ep_problem(conn, settings.ready_ep_publishers)
    except psycopg.errors.UndefinedTable:
        return "the database has no schema yet (run tidbok migrate)"
    except (psycopg.Error, OSError):
        return "the database is unreachable"
    return publishing.problem(settings.ready_publishers, settings.ready_outbox_age_seconds) or ep
