"""The OfferInteraction client's metrics. EP logs no failed attempt to reach it (seed 000), so every
one is counted here, by reason; under `tidbok run` (PROMETHEUS_MULTIPROC_DIR shared with the server)
they show in the server's /metrics (producer.platform.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# reason: connection_refused, tls_handshake, timeout, connection_error, http_status, soap_fault, unparsable
CONNECTION_FAILURES = Counter(
    "tidbok_ep_connection_failures",
    "Calls to EP that got no usable answer (EP logs none of them), by reason",
    ["reason"],
)
CALLS = Counter(
    "tidbok_ep_calls",
    "Calls to EP by operation and outcome (given, already_given, undone, nothing_to_undo, refused, technical)",
    ["operation", "outcome"],
)
CALL_SECONDS = Histogram(
    "tidbok_ep_call_seconds",
    "Time of a call to EP, by operation",
    ["operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
