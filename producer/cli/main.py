"""The `tidbok` command: set up the database, serve, publish to EI, and look after the outbox."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from producer.cli import preflight
from producer.platform import logs
from producer.platform.settings import ConfigError, Settings

if TYPE_CHECKING:
    import psycopg

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
    """`make run`: the demo into an empty calendar, anchored at TIDBOK_DEMO_DATE's week (default this week)."""
    from producer.cli import kit

    try:
        kit.load_into_empty(url, kit.demo_week(settings), settings.booking_id_policy)
    except ValueError as refused:
        raise ConfigError(f"TIDBOK_DEMO_DATE: {refused}") from None


def cmd_serve(settings: Settings, url: str) -> None:
    from producer.http.serving import serve

    serve(settings, url)


def cmd_publish(settings: Settings, url: str, sweeping: bool = True) -> None:
    """Publish the outbox to EI until SIGTERM/SIGINT, finishing the batches in hand.

    TIDBOK_EI_PUBLISHER_THREADS loops run side by side (default 2): one builds and sends a batch
    while another waits for EI's answer. They coordinate through the database like separate
    processes do. The first also sweeps, unless a `tidbok sweep --loop` does (`sweeping` False)."""
    from engagement_index.client import UpdateClient
    from engagement_index.config import EiSettings
    from engagement_index.publisher import run
    from engagement_index.sweeper import sweep
    from producer.platform import metrics

    metrics.register_process("publisher")
    ei = EiSettings.from_env()
    assert ei.update_url is not None  # preflight refused a publisher without one
    stop = _stop_on_signals()
    log.info("publishing the EI outbox to %s with %d thread(s)", ei.update_url, ei.publisher_threads)
    connect = _connector(settings, url)
    _run_side_by_side(
        {
            f"publisher-{n}": partial(
                run, connect, ei, UpdateClient(ei, ei.update_url).update, stop, sweep if n == 0 and sweeping else None
            )
            for n in range(ei.publisher_threads)
        }
    )
    log.info("publisher stopped")


def cmd_ep(settings: Settings, url: str, action: str) -> int:
    """Egen provhantering's outbox: publish it until SIGTERM/SIGINT (finishing the rounds in hand),
    or print its status.

    TIDBOK_EP_PUBLISHER_THREADS loops run side by side (default 4): EP takes one resident a call, so
    several calls wait on EP at once. They coordinate through the database like separate processes."""
    import psycopg

    from egen_provhantering.client import OfferClient
    from egen_provhantering.config import ClientConfig
    from egen_provhantering.publisher import run, status
    from egen_provhantering.publisher_config import PublishingSettings

    if action == "status":
        with psycopg.connect(url, autocommit=True) as conn:
            print("\n".join(status(conn).lines()))
        return 0
    client_config = ClientConfig.from_settings(settings)
    if client_config is None:
        raise ConfigError("TIDBOK_EP_URL is not set: where is Egen provhantering's OfferInteraction service?")
    publishing = PublishingSettings.from_env()
    from producer.platform import metrics

    metrics.register_process("ep publisher")
    stop = _stop_on_signals()
    log.info("publishing EP offers to %s with %d thread(s)", client_config.url, publishing.threads)
    connect = _connector(settings, url)
    with OfferClient(client_config) as client:
        _run_side_by_side(
            {f"ep-publisher-{n}": partial(run, connect, publishing, client, stop) for n in range(publishing.threads)}
        )
    log.info("EP publisher stopped")
    return 0


def _stop_on_signals() -> threading.Event:
    """An event SIGTERM and SIGINT set: a publishing loop finishes the round in hand and returns."""
    import signal

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _connector(settings: Settings, url: str) -> Callable[[], psycopg.Connection]:
    """How a publishing loop opens (and reopens) its connection: autocommit, UTC, and given up on
    when the database falls silent (producer.platform.database.watched)."""
    from producer.platform.database import guards, watched

    connection_class = watched(url, settings.db_timeout_seconds)

    def connect() -> psycopg.Connection:
        return connection_class.connect(
            url, autocommit=True, options="-c TimeZone=UTC", **guards(settings.db_timeout_seconds)
        )

    return connect


def _run_side_by_side(loops: dict[str, Callable[[], None]]) -> None:
    """Run each loop in a thread of its name until all have returned. The main thread joins in short
    waits so that it stays free to take the signals that stop them."""
    threads = [threading.Thread(target=loop, name=name) for name, loop in loops.items()]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(0.5)


def cmd_sweep(settings: Settings, url: str, ei: object, loop: bool) -> None:
    """Sweep once, or every TIDBOK_EI_SWEEP_SECONDS until SIGTERM/SIGINT (`loop`)."""
    import psycopg

    from engagement_index.config import EiSettings
    from engagement_index.sweeper import sweep

    def once() -> int:
        with psycopg.connect(url, autocommit=True, options="-c TimeZone=UTC") as conn:
            return sweep(conn)

    if not loop:
        print(f"{once()} removal(s) queued")
        return
    assert isinstance(ei, EiSettings)
    from producer.platform import metrics

    metrics.register_process("sweeper")
    stop = _stop_on_signals()
    log.info("sweeping passed and expired EI posts every %d s", ei.sweep_seconds)
    while not stop.is_set():
        try:
            swept = once()
            if swept:
                log.info("sweeper queued %d removal(s) of passed or expired posts", swept)
        except psycopg.OperationalError as exc:
            log.warning("database unavailable (%s); sweeping again later", exc)
        stop.wait(ei.sweep_seconds)
    log.info("sweeper stopped")


PARKED_SHOWN = 50


def cmd_outbox(url: str, action: str, arguments: list[str]) -> int:
    """The outbox's administration (engagement_index.admin)."""
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
            print(f"{admin.resync(conn, arguments[0])} post(s) of {arguments[0].upper()} queued for EI")
    return 0


def cmd_run(settings: Settings, url: str, checked: preflight.Checked) -> None:
    """What `make run` does: the EI stub (when no EI is configured), a publisher, a sweeper, EP's
    publisher (when EP is configured) and the server; the helpers are restarted when they die
    (producer.cli.supervisor), and /ready requires each publisher unless [readiness] says otherwise."""
    import dataclasses
    import shutil
    import tempfile

    from producer.cli.supervisor import Children
    from producer.http.serving import MULTIPROCESS_DIR

    if checked.source.get("TIDBOK_READY_PUBLISHERS") is None:
        settings = dataclasses.replace(settings, ready_publishers=1)
        os.environ["TIDBOK_READY_PUBLISHERS"] = "1"  # the server's workers read the settings again
    if settings.ep_url is not None and checked.source.get("TIDBOK_READY_EP_PUBLISHERS") is None:
        settings = dataclasses.replace(settings, ready_ep_publishers=1)  # it starts one: /ready requires it
        os.environ["TIDBOK_READY_EP_PUBLISHERS"] = "1"
    own_metrics = not os.environ.get(MULTIPROCESS_DIR)
    if own_metrics:  # one folder for the server's and the helpers' metrics: /metrics shows them all
        os.environ[MULTIPROCESS_DIR] = tempfile.mkdtemp(prefix="tidbok-metrics-")
    from prometheus_client import multiprocess

    from producer.platform import metrics

    def ended(name: str, pid: int, crashed: bool) -> None:
        multiprocess.mark_process_dead(pid)  # its live gauges are no longer summed
        if crashed:
            metrics.CHILD_CRASHES.labels(name).inc()

    env = {"DATABASE_URL": url}
    try:
        with Children(on_exit=ended) as children:
            if checked.stub is not None:
                port = checked.stub.port
                children.start(
                    "EI stub",
                    [sys.executable, "-m", "engagement_index.stub"],
                    {},
                    health=f"http://127.0.0.1:{port}/health",
                )
                env["TIDBOK_EI_UPDATE_URL"] = f"http://127.0.0.1:{port}/Update/1/rivtabp21"
                log.info("no TIDBOK_EI_UPDATE_URL: publishing to the EI stub at %s", env["TIDBOK_EI_UPDATE_URL"])
            children.start("publisher", [sys.executable, "-m", "producer", "publish", "--no-sweep"], env)
            children.start("sweeper", [sys.executable, "-m", "producer", "sweep", "--loop"], env)
            if settings.ep_url is not None:  # Egen provhantering configured: its outbox is published too
                children.start("EP publisher", [sys.executable, "-m", "producer", "ep", "publish"], env)
            children.supervise()
            threading.Thread(target=_announce, args=(settings, url, checked), daemon=True).start()
            cmd_serve(settings, url)
    finally:
        if own_metrics:
            shutil.rmtree(os.environ.pop(MULTIPROCESS_DIR), ignore_errors=True)


def _announce(settings: Settings, url: str, checked: preflight.Checked) -> None:
    """Once the server answers, the start summary: the last lines of a start, where they are read."""
    import http.client

    for _ in range(600):
        try:
            conn = http.client.HTTPConnection(settings.host, settings.port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                break
        except OSError:
            pass
        time.sleep(0.1)
    else:
        return
    for line in start_summary(settings, url, checked):
        log.info("%s", line)


DEMO_RESIDENT = "191212121212"  # Tolvan Tolvansson, the demo data's resident (producer.cli.demo)


def start_summary(settings: Settings, url: str, checked: preflight.Checked) -> list[str]:
    """What `make run` tells at start: where to look, the demo's ids, how to stop."""
    import psycopg

    base = f"http://{settings.host}:{settings.port}"
    with psycopg.connect(url) as conn:
        units = [r[0] for r in conn.execute("SELECT hsa_id FROM care_unit ORDER BY hsa_id").fetchall()]
        demo = conn.execute(
            "SELECT booking_id, kind FROM booking WHERE subject_of_care = %s AND status = 'active' ORDER BY pk",
            (DEMO_RESIDENT,),
        ).fetchall()
    lines = [
        f"tidbok is up: SOAP at {base}/<Interaction>/1/rivtabp21 (WSDL: {base}/MakeBooking/1/rivtabp21?wsdl)",
        f"  probes {base}/health {base}/ready {base}/metrics; JSON API {base}/admin (TIDBOK_ADMIN_TOKENS)",
        f"  care units: {', '.join(units) or 'none'}",
    ]
    if demo:
        held = ", ".join(f"{booking_id} ({kind})" for booking_id, kind in demo)
        lines.append(f"  demo resident {DEMO_RESIDENT}: {held}")
    if checked.stub is not None:
        lines.append(f"  EI stub: curl -s http://127.0.0.1:{checked.stub.port}/_stub/state (the posts 1177 would see)")
    if settings.database_url is None:
        lines.append(f"  embedded PostgreSQL in {settings.pgdata} (its log: {settings.pgdata / 'log'})")
    lines.append("  Ctrl-C stops everything (the publisher finishes its batch)")
    return lines


COMMANDS = {
    "run": "migrate, demo data (empty calendar), EI stub (no EI configured), publisher, sweeper, serve",
    "migrate": "bring the database schema up to date",
    "demo": "load the demo data into an empty calendar; demo reset [--date D] [--force] (tidbok demo --help)",
    "serve": "serve the SOAP endpoints, /admin and the probes",
    "publish": "publish the EI outbox (TIDBOK_EI_UPDATE_URL) until stopped",
    "sweep": "queue EI removals of passed bookings and expired invitations",
    "outbox": "outbox status | parked | retry [ROW_ID ...] | resync UNIT_HSA_ID",
    "ep": "Egen provhantering's offers: ep publish (TIDBOK_EP_URL) | ep status",
    "load": "load units, schedules and slots from files (tidbok load --help)",
    "staff": "invitations and bookings on a resident's behalf (tidbok staff --help)",
    "fixtures": "replay DIR --url URL: send recorded SOAP requests, compare the answers (tidbok fixtures --help)",
    "collection": "--format postman|soapui OUT: the demo's flows for Postman/newman or SoapUI",
}
# Commands with their own arguments, handled by the function named (module:function): f(argv, database_url) -> int.
DELEGATED = {
    "load": "producer.loading.cli:main",
    "staff": "producer.staff.cli:main",
    "demo": "producer.cli.kit:demo_main",
}
# ...and those that need no database: f(argv) -> int.
WITHOUT_DATABASE = {"fixtures": "producer.cli.kit:fixtures_main", "collection": "producer.cli.kit:collection_main"}
EP_ACTIONS = {
    "publish": "send the offers and withdrawals campaigns queued to EP (TIDBOK_EP_URL) until stopped",
    "status": "pending, retrying, parked (refused by EP, given up), oldest pending age, sent last hour",
}
OUTBOX_ACTIONS = {
    "status": "pending, parked, oldest pending age, published last hour",
    "parked": "the parked rows and why",
    "retry": "queue parked rows again: all, or the ROW_IDs given",
    "resync": "re-publish every current post of the care unit given (its HSA-id)",
}


def _handler(target: str) -> Callable[..., int]:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def _delegate(command: str, argv: list[str]) -> int:
    if command in WITHOUT_DATABASE:
        return _handler(WITHOUT_DATABASE[command])(argv)
    if {"-h", "--help"} & set(argv):  # help needs no database (and must not start one)
        return _handler(DELEGATED[command])(argv, "")
    try:
        settings = preflight.check(command).settings
        logs.configure(settings.log_level, settings.log_format, root=True)
        url, _server = _database(settings)
        return _handler(DELEGATED[command])(argv, url)
    except ConfigError as exc:
        print(f"tidbok: configuration error: {exc}", file=sys.stderr)
        return 2


def parser() -> argparse.ArgumentParser:
    """The command line: each command has its own --help (`tidbok serve --help`)."""
    top = argparse.ArgumentParser(
        prog="tidbok",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n"
        + "\n".join(f"  {name:<8} {text}" for name, text in COMMANDS.items())
        + "\n\nSettings: TIDBOK_CONFIG names a TOML file; TIDBOK_* variables override it (README: Configuration).",
    )
    commands = top.add_subparsers(dest="command", metavar="command", required=True)
    for name, text in COMMANDS.items():
        if name in DELEGATED or name in WITHOUT_DATABASE:
            commands.add_parser(name, help=text, add_help=False)
            continue
        sub = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        if name == "publish":
            sub.add_argument("--no-sweep", action="store_true", help="leave the sweep to a `tidbok sweep --loop`")
        elif name == "sweep":
            sub.add_argument(
                "--loop", action="store_true", help="sweep every TIDBOK_EI_SWEEP_SECONDS until stopped (not once)"
            )
        elif name == "ep":
            actions = sub.add_subparsers(dest="action", metavar="action", required=True)
            for action, action_text in EP_ACTIONS.items():
                actions.add_parser(action, help=action_text, description=action_text)
        elif name == "outbox":
            actions = sub.add_subparsers(dest="action", metavar="action", required=True)
            for action, action_text in OUTBOX_ACTIONS.items():
                added = actions.add_parser(action, help=action_text, description=action_text)
                if action == "retry":
                    added.add_argument("arguments", nargs="*", metavar="ROW_ID")
                elif action == "resync":
                    added.add_argument("arguments", nargs=1, metavar="UNIT_HSA_ID")
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and (argv[0] in DELEGATED or argv[0] in WITHOUT_DATABASE):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        return _delegate(argv[0], argv[1:])
    args = parser().parse_args(argv)
    try:
        checked = preflight.check(args.command)  # before anything starts
        settings = checked.settings
        logs.configure(settings.log_level, settings.log_format, root=True)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        url, _server = _database(settings)
        if args.command in ("run", "migrate"):
            cmd_migrate(settings, url)
        if args.command == "run":
            cmd_demo(settings, url)
        if args.command == "outbox":
            return cmd_outbox(url, args.action, getattr(args, "arguments", []))
        if args.command == "ep":
            return cmd_ep(settings, url, args.action)
        if args.command == "sweep":
            cmd_sweep(settings, url, checked.ei, args.loop)
        if args.command == "publish":
            cmd_publish(settings, url, sweeping=not args.no_sweep)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: granian has stopped its workers
            if args.command == "run":
                cmd_run(settings, url, checked)
            elif args.command == "serve":
                cmd_serve(settings, url)
    except ConfigError as exc:
        print(f"tidbok: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0
