"""A bounded load generator on loopback: worker processes with keep-alive connections send
pre-built SOAP requests and record each latency. Stops at a request count or a time limit."""

from __future__ import annotations

import http.client
import multiprocessing
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Result:
    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]
    bodies: list[bytes]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


def _worker(args: tuple[str, list[bytes], float, bool, int]) -> tuple[list[float], dict[int, int], list[bytes], float]:
    url, bodies, seconds, keep_bodies, repeat = args
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    kept: list[bytes] = []
    started = time.perf_counter()
    deadline = started + seconds
    sent = 0
    while sent < len(bodies) * repeat and time.perf_counter() < deadline:
        body = bodies[sent % len(bodies)]
        t0 = time.perf_counter()
        conn.request("POST", parts.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        latencies.append((time.perf_counter() - t0) * 1000)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        if keep_bodies:
            kept.append(data)
        sent += 1
    conn.close()
    return latencies, statuses, kept, time.perf_counter() - started


def run(
    url: str,
    bodies_per_worker: list[list[bytes]],
    seconds: float,
    repeat: int = 1_000_000,
    keep_bodies: bool = False,
) -> Result:
    """Each worker cycles through its own bodies (`repeat` times at most) until `seconds` pass."""
    with multiprocessing.get_context("fork").Pool(len(bodies_per_worker)) as pool:
        started = time.perf_counter()
        parts = pool.map(_worker, [(url, b, seconds, keep_bodies, repeat) for b in bodies_per_worker])
        elapsed = time.perf_counter() - started
    latencies = [x for p in parts for x in p[0]]
    statuses: dict[int, int] = {}
    for p in parts:
        for status, n in p[1].items():
            statuses[status] = statuses.get(status, 0) + n
    elapsed = max(p[3] for p in parts) or elapsed
    return Result(len(latencies), elapsed, latencies, statuses, [b for p in parts for b in p[2]])
