"""Prometheus metrics (GET /metrics): calls, latency, faults and refusals, the database pool, and
the EI outbox.

The server runs several worker processes, so counters live in prometheus_client's multiprocess
files (PROMETHEUS_MULTIPROC_DIR, set by `tidbok serve` before the workers start) and a scrape of
any worker sums them all. The outbox figures are read from the database at scrape time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator

import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from psycopg_pool import ConnectionPool

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


class OutboxCollector(Collector):
    """Outbox depth, oldest pending age and parked rows, read when scraped (pending rows only,
    through the partial index, so a long history costs nothing)."""

    def __init__(self, pool: Callable[[], ConnectionPool]) -> None:
        self._pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("tidbok_database_up", "1 when the scrape could read the database")
        try:
            with self._pool().connection(timeout=SCRAPE_TIMEOUT_SECONDS) as conn:
                pending, parked, oldest = conn.execute(
                    "SELECT count(*) FILTER (WHERE parked_at IS NULL), count(*) FILTER (WHERE parked_at IS NOT NULL),"
                    " coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE parked_at IS NULL)), 0)"
                    " FROM ei_outbox WHERE published_at IS NULL"
                ).fetchone()
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


def exposition(pool: Callable[[], ConnectionPool]) -> bytes:
    """The text exposition: every worker's counters, then the outbox read now."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    outbox = CollectorRegistry()
    outbox.register(OutboxCollector(pool))
    return generate_latest(registry) + generate_latest(outbox)
