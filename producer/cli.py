"""The `tidbok` command: migrate, load the demo data, serve, or all three (`run`, what `make run` does)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from datetime import datetime

from producer.config import ConfigError, Settings

log = logging.getLogger("tidbok")


def _database(settings: Settings) -> tuple[str, object | None]:
    from producer.database import resolve_url

    url, server = resolve_url(settings)
    if server is not None:
        log.info("embedded PostgreSQL serving %s", settings.pgdata)
    return url, server


def cmd_migrate(settings: Settings, url: str) -> None:
    from producer.database import migrate

    migrate(url)
    log.info("database schema is current")


def cmd_demo(settings: Settings, url: str) -> None:
    import psycopg

    from producer.demo import load_demo
    from producer.wire_time import STOCKHOLM

    with psycopg.connect(url, options="-c TimeZone=UTC") as conn:
        today = datetime.now(STOCKHOLM).date()
        if load_demo(conn, today, settings.booking_id_policy):
            log.info("demo data loaded (90 days of slots from %s)", today)
        else:
            log.info("the calendar already has care units; demo data not loaded")


def cmd_serve(settings: Settings, url: str) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    os.environ["DATABASE_URL"] = url  # the workers are new processes; they read it from the environment
    log.info("serving on http://%s:%s/<Interaction>/1/rivtabp21", settings.host, settings.port)
    Granian(
        "producer.wsgi:create_app",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.WSGI,
        workers=settings.workers,
        blocking_threads=settings.db_pool_size,  # a WSGI thread needs a connection; more would only queue
        factory=True,
        log_access=True,
        log_access_format='%(addr)s "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).1fms',
    ).serve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidbok", description=__doc__)
    parser.add_argument(
        "command",
        choices=("run", "migrate", "demo", "serve"),
        help="run = migrate + demo (into an empty calendar) + serve",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"tidbok: configuration error: {exc}", file=sys.stderr)
        return 2
    url, _server = _database(settings)
    if args.command in ("run", "migrate"):
        cmd_migrate(settings, url)
    if args.command in ("run", "demo"):
        cmd_demo(settings, url)
    if args.command in ("run", "serve"):
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: granian has stopped its workers
            cmd_serve(settings, url)
    return 0
