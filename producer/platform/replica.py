"""Availability reads from a streaming replica of the database, while it is known to be fresh enough.

Which calls (``may_read_replica``): the reads whose answer holds no resident's own bookings,
GetAvailableTimeslots, GetAvailableDates and the catalogue (GetAllTimeTypes, GetAllCareTypes,
GetAllPerformers, GetAllHealthcareFacilities), and only when they carry no bookingId: with one
they read that booking (rebooking what was just booked must find it). Every change, and every read
of a resident's own bookings (GetBookingDetails, GetSubjectOfCareSchedule), uses the primary. The
choice is made from the request alone, never from a session, so it holds whichever host and worker
a call reaches: a resident's read after their own write always sees it. What the replica may show
late is the calendar as everyone sees it (a slot taken or freed a moment ago); MakeBooking and
UpdateBooking decide on the primary, under its locks, as they do for any slot shown free.

How fresh: while a worker has calls, it checks its replica every CHECK_SECONDS (at most every
0.5 s): the primary's flushed WAL position, then the replica's replayed position. A check whose
primary position the replica has replayed proves that it holds everything committed before that
check began (``Freshness``); the replica is used while the newest such proof is at most
``replica_max_lag`` seconds old (and, if set, the WAL it had yet to replay at the last check is at
most ``replica_max_lag_bytes``). Unlike ``now() - pg_last_xact_replay_timestamp()``, which grows
while the primary is idle, this measures what matters: what the replica may be missing. A call
never waits for a check; an idle worker stops checking, and its first call after a pause reads the
primary while the checks resume.

Skipped, and logged and counted once per change of state: a replica that is down, lagging, not in
recovery (promoted), or not a copy of the primary's database. A read the replica fails (it went
down, or cancelled the query on a recovery conflict) is answered again by the primary: skipping the
replica never fails a call.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from time import monotonic, sleep
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from producer.platform import metrics
from producer.platform.database import DeadlineConnection, Pool, guards, make_pool
from producer.platform.settings import Settings

log = logging.getLogger("tidbok.replica")

# The interactions that may be answered from the replica (when they carry no bookingId).
REPLICA_READS = frozenset(
    {
        "GetAvailableTimeslots",
        "GetAvailableDates",
        "GetAllTimeTypes",
        "GetAllCareTypes",
        "GetAllPerformers",
        "GetAllHealthcareFacilities",
    }
)
CHECK_SECONDS = 0.5  # at most; a bound below 2 s is checked four times within it
CHECK_TIMEOUT_SECONDS = 2.0  # a check gives up on a server that does not answer
IDLE_SECONDS = 10.0  # a worker without calls for this long stops checking
REPLICA_WAIT_SECONDS = 1.0  # a call waits this long for a replica connection, then reads the primary
MAX_PENDING = 256  # primary positions remembered while the replica has not replayed them

T = TypeVar("T")
Answer = Callable[[psycopg.Connection[Any]], T]


def may_read_replica(interaction: str, request: Mapping[str, Any]) -> bool:
    return interaction in REPLICA_READS and not request.get("bookingId")


def lsn(text: str) -> int:
    """A WAL position ('16/B374D848') as a byte offset."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def where(url: str) -> str:
    """The server a URL names, for log lines (never its password)."""
    parts = conninfo_to_dict(url)
    return f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


class Freshness:
    """What the checks prove: the replica holds everything the primary committed before ``held_at``
    (monotonic seconds), the start of the newest check whose primary position it has replayed."""

    def __init__(self) -> None:
        self.held_at = float("-inf")
        self.byte_lag = 0
        self._pending: deque[tuple[float, int]] = deque(maxlen=MAX_PENDING)

    def observe(self, sampled_at: float, primary: int, replayed: int) -> None:
        """``primary``: the primary's flushed WAL position read at ``sampled_at``; ``replayed``: the
        replica's replayed position, read after it."""
        self._pending.append((sampled_at, primary))
        while self._pending and self._pending[0][1] <= replayed:
            self.held_at = max(self.held_at, self._pending.popleft()[0])
        self.byte_lag = max(0, primary - replayed)

    def staleness(self, now: float) -> float:
        """At most how many seconds of the primary's commits the replica may be missing."""
        return now - self.held_at


class Reads:
    """Runs each call's database work on the primary or, when it may and the replica is fresh, on
    the replica (one per worker process; the pools and the checking thread start on first use)."""

    def __init__(self, settings: Settings, primary: Callable[[], Pool]) -> None:
        self.settings = settings
        self.url = settings.replica_url
        self.primary = primary
        self.max_lag = settings.replica_max_lag_seconds
        self.max_bytes = settings.replica_max_lag_bytes
        self.interval = min(CHECK_SECONDS, self.max_lag / 4)
        self._pool: Pool | None = None
        self._fresh_until = float("-inf")  # monotonic time until which calls may use the replica
        self._state = "unknown"
        self._state_lock = threading.Lock()
        self._started = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._closed = False
        self._last_call = 0.0
        self._check_conn: psycopg.Connection[Any] | None = None
        self._connected_at = 0.0
        self._freshness = Freshness()

    # -- calls --------------------------------------------------------------------------------------

    def run(self, interaction: str, request: Mapping[str, Any], answer: Answer[T]) -> T:
        """``answer(conn)`` on the server this call should read; read-only work that fails on the
        replica is run again on the primary."""
        if self.url is None or not may_read_replica(interaction, request):
            return self._on_primary(answer)
        now = monotonic()
        self._awake(now)
        if now >= self._fresh_until:
            metrics.REPLICA_READS.labels("primary").inc()
            return self._on_primary(answer)
        try:
            with self._replica_pool().connection(timeout=REPLICA_WAIT_SECONDS) as conn:
                result = answer(conn)
        except psycopg.OperationalError as exc:  # gone, silent, or a query cancelled by recovery
            self._fresh_until = float("-inf")
            self._enter("down", f"a read failed ({_first_line(exc)})")
            metrics.REPLICA_FALLBACKS.inc()
            metrics.REPLICA_READS.labels("primary").inc()
            return self._on_primary(answer)
        except psycopg.Error as exc:  # anything else: the primary's answer decides
            log.info("a read on the replica failed (%s); asking the primary", type(exc).__name__)
            metrics.REPLICA_FALLBACKS.inc()
            metrics.REPLICA_READS.labels("primary").inc()
            return self._on_primary(answer)
        metrics.REPLICA_READS.labels("replica").inc()
        return result

    def holding(self, since: float, work: Answer[T]) -> tuple[T] | None:
        """``(work(conn),)`` on the replica when it is fresh and known to hold every commit made
        before ``since`` (time.monotonic() seconds); None when it is not, or the read fails there
        (the caller then reads the primary). For the workers' memory of free slots, which must not
        remember a day the replica has not caught up with (producer.interactions.free_slots)."""
        if self.url is None:
            return None
        now = monotonic()
        self._awake(now)
        if now >= self._fresh_until or self._freshness.held_at < since:
            return None
        try:
            with self._replica_pool().connection(timeout=REPLICA_WAIT_SECONDS) as conn:
                result = work(conn)
        except psycopg.OperationalError as exc:
            self._fresh_until = float("-inf")
            self._enter("down", f"a read failed ({_first_line(exc)})")
            metrics.REPLICA_FALLBACKS.inc()
            return None
        except psycopg.Error:
            metrics.REPLICA_FALLBACKS.inc()
            return None
        return (result,)

    def _on_primary(self, answer: Answer[T]) -> T:
        with self.primary().connection() as conn:
            return answer(conn)

    def _replica_pool(self) -> Pool:
        if self._pool is None:
            with self._started:
                if self._pool is None:
                    self._pool = make_pool(self.url or "", self.settings, name="tidbok-replica", min_size=0)
        return self._pool

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._pool is not None:
            self._pool.close()

    # -- checking -----------------------------------------------------------------------------------

    def _awake(self, now: float) -> None:
        """A call arrived: keep (or start) checking."""
        self._last_call = now
        if self._thread is None:
            with self._started:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="tidbok-replica-check", daemon=True)
                    self._thread.start()
        if not self._wake.is_set():
            self._wake.set()

    def _loop(self) -> None:
        while not self._closed:
            if monotonic() - self._last_call > IDLE_SECONDS:
                self._wake.clear()
                if monotonic() - self._last_call > IDLE_SECONDS:  # no call came in meanwhile
                    self._disconnect()
                    self._wake.wait()
                continue
            started = monotonic()
            try:
                self.check()
            except Exception:  # the thread must outlive any surprise; calls then read the primary
                log.exception("checking the replica failed")
                self._fresh_until = float("-inf")
            sleep(max(0.0, self.interval - (monotonic() - started)))

    def check(self) -> None:
        """One check: the primary's WAL position, then the replica's; sets whether calls may use it."""
        sampled_at = monotonic()
        try:
            with self.primary().connection(timeout=CHECK_TIMEOUT_SECONDS) as conn:
                primary = lsn(conn.execute("SELECT pg_current_wal_flush_lsn()").fetchone()[0])
                connecting = self._check_conn is None or self._check_conn.closed
                identity = _identity(conn) if connecting else None
        except (psycopg.Error, OSError):
            return  # no judgement without the primary; the last proof ages until the bound
        try:
            conn = self._check_connection(identity)
            if isinstance(conn, str):
                self._refuse(conn)
                return
            in_recovery, replayed = conn.execute("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()").fetchone()
        except (psycopg.Error, OSError) as exc:
            self._disconnect()
            self._fresh_until = float("-inf")
            self._enter("down", f"unreachable ({_first_line(exc)})")
            return
        if not in_recovery:
            self._refuse("it is not in recovery (promoted, or not a standby)")
            return
        freshness = self._freshness
        freshness.observe(sampled_at, primary, lsn(replayed))
        now = monotonic()
        staleness = freshness.staleness(now)
        metrics.REPLICA_LAG.set(staleness)  # +Inf: nothing proven since connecting
        metrics.REPLICA_LAG_BYTES.set(freshness.byte_lag)
        if freshness.held_at == float("-inf") and now - self._connected_at <= self.max_lag:
            return  # just connected, nothing proven yet: give it the bound before calling it late
        if staleness > self.max_lag or (self.max_bytes and freshness.byte_lag > self.max_bytes):
            self._fresh_until = float("-inf")
            shown = "more than its bound" if staleness == float("inf") else f"{staleness:.1f} s"
            self._enter(
                "lagging",
                f"it may miss {shown} of the primary's commits, {freshness.byte_lag} bytes of WAL behind"
                f" (bounds {self.max_lag:g} s, {self.max_bytes or 'any'} bytes)",
            )
            return
        self._fresh_until = freshness.held_at + self.max_lag
        self._enter("usable", f"at most {staleness:.2f} s behind (bound {self.max_lag:g} s)")

    def _check_connection(self, identity: tuple[str, str] | None) -> psycopg.Connection[Any] | str:
        """The check's own connection to the replica (not the pool's: a replica that is down is
        tried once per check, quietly); on a new one, a reason to refuse it, if any."""
        if self._check_conn is not None and not self._check_conn.closed:
            return self._check_conn
        conn = DeadlineConnection.connect(
            self.url or "", autocommit=True, application_name="tidbok-replica-check", **guards(2)
        )
        conn.deadline = CHECK_TIMEOUT_SECONDS
        if identity is not None and _identity(conn) != identity:
            conn.close()
            return "it is not a copy of the primary's database (another cluster or database name)"
        self._check_conn = conn
        self._connected_at = monotonic()
        self._freshness = Freshness()  # another server may answer at this address now
        return conn

    def _disconnect(self) -> None:
        conn, self._check_conn = self._check_conn, None
        if conn is not None:
            conn.close()

    def _refuse(self, why: str) -> None:
        self._disconnect()
        self._fresh_until = float("-inf")
        self._enter("refused", why)

    def _enter(self, state: str, detail: str) -> None:
        """Log and count a change of state (not every check's finding)."""
        with self._state_lock:
            if state == self._state:
                return
            self._state = state
        metrics.REPLICA_STATES.labels(state).inc()
        metrics.REPLICA_USABLE.set(1 if state == "usable" else 0)
        if state == "usable":
            log.info("the replica %s is used for availability reads: %s", where(self.url or ""), detail)
        else:
            log.warning(
                "the replica %s is skipped, availability is read from the primary: %s", where(self.url or ""), detail
            )


def _identity(conn: psycopg.Connection[Any]) -> tuple[str, str]:
    """The cluster (its system identifier, shared by its physical replicas) and database a connection reaches."""
    row = conn.execute("SELECT (SELECT system_identifier FROM pg_control_system())::text, current_database()")
    return tuple(row.fetchone())  # type: ignore[return-value]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
