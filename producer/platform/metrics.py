"""Prometheus metrics (GET /metrics): calls, latency, faults and refusals, the /admin API, the
database pool and the replica, the EI outbox, and each process's CPU, memory and open files.

The server runs several worker processes, so counters live in prometheus_client's multiprocess
files (PROMETHEUS_MULTIPROC_DIR, set by `tidbok serve` before the workers start; `tidbok run` shares
its folder with the publisher and the sweeper, whose counters, engagement_index.metrics, are then
summed too) and a scrape of any worker sums them all. The outbox figures are read from the database
at scrape time. prometheus_client's own process collector does not work in multiprocess mode, so
each process registers itself (register_process) and a scrape reads /proc for every one of them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from psycopg_pool import ConnectionPool

from producer.platform import outbox_watch

log = logging.getLogger("tidbok.metrics")
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
SCRAPE_TIMEOUT_SECONDS = 2.0

CALLS = Counter("tidbok_soap_calls", "SOAP calls answered, by operation and outcome", ["operation", "outcome"])
LATENCY = Histogram(
    "tidbok_soap_call_seconds",
    "Time from request to answer, by operation",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
FAULTS = Counter("tidbok_soap_faults", "SOAP faults sent, by operation and fault code", ["operation", "code"])
REFUSED = Counter(
    "tidbok_refused_calls",
    "Callers refused: no or unusable certificate, untrusted proxy, consumer not authorized, failed TLS handshake",
    ["reason"],
)
DATABASE_UNAVAILABLE = Counter("tidbok_database_unavailable", "Calls answered 'temporarily unavailable'")
POOL_SIZE = Gauge("tidbok_db_pool_connections", "Open database connections", multiprocess_mode="livesum")
POOL_IN_USE = Gauge("tidbok_db_pool_connections_in_use", "Connections lent out", multiprocess_mode="livesum")
POOL_WAITING = Gauge(
    "tidbok_db_pool_requests_waiting", "Requests waiting for a connection", multiprocess_mode="livesum"
)
AVAILABILITY_MEMORY = Counter(
    "tidbok_availability_memory",
    "Availability calls by where their days came from: memory (all remembered), database (some read"
    " and remembered), unheard (the change listener was not listening: read, not remembered); replica:"
    " of the database reads, those a replica answered",
    ["source"],
)
SLOT_LISTENER_LOST = Counter(
    "tidbok_slot_listener_lost", "Times a worker stopped hearing slot changes (its listening connection failed)"
)
REPLICA_READS = Counter(
    "tidbok_db_replica_reads",
    "Calls that may read the replica (availability, catalogue), by the server that answered them",
    ["served_by"],
)
REPLICA_FALLBACKS = Counter(
    "tidbok_db_replica_fallbacks", "Calls the replica failed mid-read, answered again by the primary"
)
REPLICA_STATES = Counter(
    "tidbok_db_replica_state_changes",
    "Changes of a worker's view of the replica, by the state entered (usable, lagging, down, refused)",
    ["state"],
)
REPLICA_USABLE = Gauge(
    "tidbok_db_replica_usable",
    "Worker processes whose last check found the replica usable",
    multiprocess_mode="livesum",
)
REPLICA_LAG = Gauge(
    "tidbok_db_replica_lag_seconds",
    "How stale the replica may be, at its last check (largest over the workers)",
    multiprocess_mode="livemax",
)
REPLICA_LAG_BYTES = Gauge(
    "tidbok_db_replica_lag_bytes",
    "WAL the replica had yet to replay at its last check (largest over the workers)",
    multiprocess_mode="livemax",
)
CHILD_CRASHES = Counter(
    "tidbok_child_crashes", "Helper processes of `tidbok run` that died and were restarted", ["child"]
)

ADMIN_CALLS = Counter("tidbok_admin_requests", "/admin API requests, by route and HTTP status", ["route", "status"])
ADMIN_LATENCY = Histogram(
    "tidbok_admin_request_seconds",
    "Time from request to answer of the /admin API, by route",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
)
PROCESS = Gauge(
    "tidbok_process", "The processes that count in these metrics, by role", ["role"], multiprocess_mode="liveall"
)


def register_process(role: str) -> None:
    """Count this process's CPU, memory and open files in every scrape (see ProcessCollector)."""
    PROCESS.labels(role).set(1)


def observe_admin(route: str, status: int, seconds: float) -> None:
    """`route` is the route's template (`PUT /admin/units/{unit}/bookings/{id}`), never the path."""
    ADMIN_CALLS.labels(route, str(status)).inc()
    ADMIN_LATENCY.labels(route).observe(seconds)


def observe(operation: str, outcome: str, seconds: float, fault_code: str | None) -> None:
    CALLS.labels(operation, outcome).inc()
    LATENCY.labels(operation).observe(seconds)
    if fault_code is not None:
        FAULTS.labels(operation, fault_code).inc()


_last_pool: list[tuple[int, int, int]] = [(-1, -1, -1)]


def observe_pool(pool: ConnectionPool | None) -> None:
    """The pool's state after a call; the shared files are written only when it changed."""
    if pool is None:
        return
    stats = pool.get_stats()
    size = stats.get("pool_size", 0)
    now = (size, size - stats.get("pool_available", 0), stats.get("requests_waiting", 0))
    if now == _last_pool[0]:
        return
    _last_pool[0] = now
    POOL_SIZE.set(now[0])
    POOL_IN_USE.set(now[1])
    POOL_WAITING.set(now[2])


# Egen provhantering's outbox (ep_offer, egen_provhantering.publisher), read through its partial indexes.
_EP_OUTBOX = f"""
SELECT count(*) FILTER (WHERE state = 'pending'),
       coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'pending')), 0),
       count(*) FILTER (WHERE state = 'parked'),
       {outbox_watch.PRESENT}
FROM ep_offer WHERE state IN ('pending', 'parked')
"""


class OutboxCollector(Collector):
    """Outbox depth, oldest pending age and parked rows, read when scraped (pending rows only,
    through the partial index, so a long history costs nothing)."""

    def __init__(self, pool: Callable[[], ConnectionPool]) -> None:
        self._pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("tidbok_database_up", "1 when the scrape could read the database")
        try:
            with self._pool().connection(timeout=SCRAPE_TIMEOUT_SECONDS) as conn:
                publishing = outbox_watch.read(conn)
                pending, parked, oldest = conn.execute(
                    "SELECT count(*) FILTER (WHERE parked_at IS NULL), count(*) FILTER (WHERE parked_at IS NOT NULL),"
                    " coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE parked_at IS NULL)), 0)"
                    " FROM ei_outbox WHERE published_at IS NULL"
                ).fetchone()
                ep = conn.execute(_EP_OUTBOX, outbox_watch.EP_PUBLISHER_PRESENCE).fetchone()
        except (psycopg.Error, TimeoutError, OSError) as exc:  # PoolTimeout is a psycopg.Error
            log.warning("metrics: the database could not be read (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("tidbok_ei_outbox_pending", "Outbox rows waiting to be published", value=pending)
        yield GaugeMetricFamily(
            "tidbok_ei_outbox_oldest_pending_seconds", "Age of the oldest row waiting", value=float(oldest)
        )
        yield GaugeMetricFamily("tidbok_ei_outbox_parked", "Rows EI refused, parked for an operator", value=parked)
        yield GaugeMetricFamily(
            "tidbok_ei_publisher_connections",
            "EI publisher connections up (each publishing thread holds one; 0: no publisher is running)",
            value=publishing.publishers,
        )
        ep_pending, ep_oldest, ep_parked, ep_publishers = ep
        yield GaugeMetricFamily(
            "tidbok_ep_outbox_pending", "Egen provhantering offer rows waiting to be sent", value=ep_pending
        )
        yield GaugeMetricFamily(
            "tidbok_ep_outbox_oldest_pending_seconds", "Age of the oldest offer row waiting", value=float(ep_oldest)
        )
        yield GaugeMetricFamily(
            "tidbok_ep_outbox_parked", "Offer rows parked for staff (refused by EP, or given up)", value=ep_parked
        )
        yield GaugeMetricFamily(
            "tidbok_ep_publisher_connections",
            "EP publisher connections up (each publishing thread holds one)",
            value=ep_publishers,
        )


class ProcessCollector(Collector):
    """CPU seconds, resident memory and open files of every registered process of this folder (the
    server's main process and workers, the publisher, the sweeper), by role and pid, read from /proc
    when scraped. A process that is gone is left out."""

    def __init__(self, directory: str | None) -> None:
        self._directory = directory

    def processes(self) -> dict[int, str]:
        if not self._directory:
            return {os.getpid(): "process"}
        found = {}
        for path in Path(self._directory).glob("gauge_liveall_*.db"):
            pid = int(path.stem.rsplit("_", 1)[1])
            for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
                if value and key.startswith('["tidbok_process"'):
                    found[pid] = str(key_labels(key).get("role", "process"))
        return found

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        labels = ["role", "pid"]
        cpu = CounterMetricFamily(
            "tidbok_process_cpu_seconds", "CPU time (user and system) of a process", labels=labels
        )
        memory = GaugeMetricFamily(
            "tidbok_process_resident_memory_bytes", "Resident memory of a process", labels=labels
        )
        files = GaugeMetricFamily("tidbok_process_open_fds", "Open file descriptors of a process", labels=labels)
        for pid, role in sorted(self.processes().items()):
            try:
                process = psutil.Process(pid)
                with process.oneshot():
                    times, rss, fds = process.cpu_times(), process.memory_info().rss, process.num_fds()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            values = [role, str(pid)]
            cpu.add_metric(values, times.user + times.system)
            memory.add_metric(values, rss)
            files.add_metric(values, fds)
        yield from (cpu, memory, files)


def key_labels(key: str) -> dict[str, object]:
    """The labels of a multiprocess file's key (JSON: [name, sample name, labels, help])."""
    parts = json.loads(key)
    return parts[2] if len(parts) > 2 and isinstance(parts[2], dict) else {}


def exposition(pool: Callable[[], ConnectionPool]) -> bytes:
    """The text exposition: every process's counters, then the outbox and the processes read now."""
    directory = os.environ.get(MULTIPROCESS_DIR)
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    now = CollectorRegistry()
    now.register(OutboxCollector(pool))
    now.register(ProcessCollector(directory))
    return generate_latest(registry) + generate_latest(now)
