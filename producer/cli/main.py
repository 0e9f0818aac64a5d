"""The `tidbok` command: set up the database, serve, publish to EI, and look after the outbox."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from datetime import datetime

from producer.platform import logs
from producer.platform.settings import ConfigError, Settings

log = logging.getLogger("tidbok")


def _database(settings: Settings) -> tuple[str, object | None]:
    from producer.platform.database import resolve_url

    url, server = resolve_url(settings)
    if server is not None:
        log.info("embedded PostgreSQL serving %s", settings.pgdata)
    return url, server


def cmd_migrate(settings: Settings, url: str) -> None:
    from producer.platform.database import migrate

    migrate(url)
    log.info("database schema is current")


def cmd_demo(settings: Settings, url: str) -> None:
    import psycopg

    from producer.cli.demo import load_demo
    from producer.sweden.wall_time import STOCKHOLM

    with psycopg.connect(url, options="-c TimeZone=UTC") as conn:
        today = datetime.now(STOCKHOLM).date()
        if load_demo(conn, today, settings.booking_id_policy):
            log.info("demo data loaded (90 days of slots from %s)", today)
        else:
            log.info("the calendar already has care units; demo data not loaded")


def cmd_serve(settings: Settings, url: str) -> None:
    from producer.admin_api.auth import Tokens
    from producer.http.serving import serve
    from producer.staff.accounts import Accounts

    # a bad token or account setting stops here, naming it, not in every worker
    Tokens.parse(settings.admin_tokens, Accounts.parse(settings.staff_accounts))
    serve(settings, url)


def cmd_publish(settings: Settings, url: str) -> None:
    """Publish the outbox to EI until SIGTERM/SIGINT, finishing the batches in hand.

    TIDBOK_EI_PUBLISHER_THREADS loops run side by side (default 2): one builds and sends a batch
    while another waits for EI's answer. They coordinate through the database like separate
    processes do."""
    import signal
    import threading

    import psycopg

    from engagement_index.client import UpdateClient
    from engagement_index.config import EiSettings
    from engagement_index.publisher import run
    from engagement_index.sweeper import sweep

    ei = EiSettings.from_env()
    if not ei.update_url:
        raise ConfigError("TIDBOK_EI_UPDATE_URL is not set: where is EI's Update endpoint?")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("publishing the EI outbox to %s with %d thread(s)", ei.update_url, ei.publisher_threads)

    from producer.platform.database import guards, watched

    connection_class = watched(url, settings.db_timeout_seconds)  # gives up on a silent database

    def connect() -> psycopg.Connection:
        return connection_class.connect(
            url, autocommit=True, options="-c TimeZone=UTC", **guards(settings.db_timeout_seconds)
        )

    threads = [
        threading.Thread(
            target=run,
            args=(connect, ei, UpdateClient(ei, ei.update_url).update, stop, sweep if n == 0 else None),
            name=f"publisher-{n}",
        )
        for n in range(ei.publisher_threads)
    ]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(0.5)
    log.info("publisher stopped")


PARKED_SHOWN = 50


def cmd_outbox(url: str, action: str, arguments: list[str]) -> int:
    import psycopg

    from engagement_index import admin

    with psycopg.connect(url, autocommit=True) as conn:
        if action == "status":
            print("\n".join(admin.status(conn).lines()))
        elif action == "parked":
            rows = admin.parked(conn, limit=PARKED_SHOWN + 1)
            for row_id, booking_pk, booking_id, reason in rows[:PARKED_SHOWN]:
                print(f"{row_id}\tbooking {booking_pk} ({booking_id})\t{reason}")
            if len(rows) > PARKED_SHOWN:
                print("… and more: see `outbox status` for the count; retry some to see the next ones")
        elif action == "retry":
            if not all(a.isdigit() for a in arguments):
                print("tidbok outbox retry: row ids are whole numbers (see `outbox parked`)", file=sys.stderr)
                return 2
            print(f"{admin.retry_parked(conn, [int(a) for a in arguments] or None)} parked row(s) queued again")
        elif action == "resync":
            if len(arguments) != 1:
                print("tidbok outbox resync: name one care unit's HSA-id", file=sys.stderr)
                return 2
            print(f"{admin.resync(conn, arguments[0])} post(s) of {arguments[0].upper()} queued for EI")
    return 0


def cmd_run(settings: Settings, url: str) -> None:
    """What `make run` does: the EI stub (when no EI is configured), a publisher, and the server."""
    from engagement_index.config import EiSettings
    from producer.cli.supervisor import Children

    ei = EiSettings.from_env()
    env = {"DATABASE_URL": url}
    with Children() as children:
        if not ei.update_url:
            port = os.environ.get("TIDBOK_EI_STUB_PORT", "8081")
            children.start(
                "EI stub", [sys.executable, "-m", "engagement_index.stub"], {}, health=f"http://127.0.0.1:{port}/health"
            )
            env["TIDBOK_EI_UPDATE_URL"] = f"http://127.0.0.1:{port}/Update/1/rivtabp21"
            log.info("no TIDBOK_EI_UPDATE_URL: publishing to the EI stub at %s", env["TIDBOK_EI_UPDATE_URL"])
        children.start("publisher", [sys.executable, "-m", "producer", "publish"], env)
        cmd_serve(settings, url)


COMMANDS = {
    "run": "migrate, demo data (empty calendar), EI stub (no EI configured), a publisher, serve",
    "migrate": "bring the database schema up to date",
    "demo": "load the demo data into an empty calendar",
    "serve": "serve the SOAP endpoints",
    "publish": "publish the EI outbox (TIDBOK_EI_UPDATE_URL) until stopped",
    "sweep": "queue EI removals of passed bookings and expired invitations now",
    "outbox": "outbox status | parked | retry [ROW_ID ...] | resync UNIT_HSA_ID",
    "load": "load units, schedules and slots from files (tidbok load --help)",
    "staff": "invitations and bookings on a resident's behalf (tidbok staff --help)",
}
# Commands with their own arguments, handled by the module named: main(argv, database_url) -> int.
DELEGATED = {"load": "producer.loading.cli", "staff": "producer.staff.cli"}


def _delegate(command: str, argv: list[str]) -> int:
    import importlib

    if {"-h", "--help"} & set(argv):  # help needs no database (and must not start one)
        return importlib.import_module(DELEGATED[command]).main(argv, "")
    try:
        settings = Settings.from_env()
        url, _server = _database(settings)
        return importlib.import_module(DELEGATED[command]).main(argv, url)
    except ConfigError as exc:
        print(f"tidbok: configuration error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATED:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        return _delegate(argv[0], argv[1:])
    parser = argparse.ArgumentParser(
        prog="tidbok",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(f"  {name:<8} {text}" for name, text in COMMANDS.items()),
    )
    parser.add_argument("command", choices=tuple(c for c in COMMANDS if c not in DELEGATED), metavar="command")
    parser.add_argument("arguments", nargs="*", help="for outbox: the action and its arguments")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if args.command == "outbox" and (
        not args.arguments or args.arguments[0] not in ("status", "parked", "retry", "resync")
    ):
        parser.error("outbox needs an action: status, parked, retry or resync")
    try:
        settings = Settings.from_env()
        logs.configure(settings.log_level, settings.log_format, root=True)
        url, _server = _database(settings)
        if args.command in ("run", "migrate"):
            cmd_migrate(settings, url)
        if args.command in ("run", "demo"):
            cmd_demo(settings, url)
        if args.command == "outbox":
            return cmd_outbox(url, args.arguments[0], args.arguments[1:])
        if args.command == "sweep":
            import psycopg

            from engagement_index.sweeper import sweep

            with psycopg.connect(url, autocommit=True, options="-c TimeZone=UTC") as conn:
                print(f"{sweep(conn)} removal(s) queued")
        if args.command == "publish":
            cmd_publish(settings, url)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: granian has stopped its workers
            if args.command == "run":
                cmd_run(settings, url)
            elif args.command == "serve":
                cmd_serve(settings, url)
    except ConfigError as exc:
        print(f"tidbok: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0
