"""The publisher's and the sweeper's metrics. They run in processes of their own; under `tidbok run`
(or with PROMETHEUS_MULTIPROC_DIR shared with the server) their counters are in the server's
multiprocess folder, so the server's /metrics shows them (producer.platform.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PUBLISHED = Counter("tidbok_ei_published_rows", "Outbox rows EI accepted (marked published)")
RETRIED = Counter(
    "tidbok_ei_retried_rows", "Outbox rows whose Update call failed technically (sent again later, or parked)"
)
PARKED = Counter("tidbok_ei_parked_rows", "Outbox rows parked for an operator, by why", ["reason"])
CALL_SECONDS = Histogram(
    "tidbok_ei_update_call_seconds",
    "Update calls to EI, by outcome (ok, data_error: EI refused a post, unavailable: technical failure)",
    ["outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
BATCH_ENGAGEMENTS = Histogram(
    "tidbok_ei_update_call_engagements",
    "Engagements (creates, updates and deletes) per Update call",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
SWEEPS = Counter("tidbok_ei_sweeps", "Sweeps run (passed bookings, expired invitations)")
SWEPT = Counter("tidbok_ei_swept_posts", "EI posts the sweeper queued for removal")
SWEEP_SECONDS = Histogram(
    "tidbok_ei_sweep_seconds", "Time one sweep took", buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
)
