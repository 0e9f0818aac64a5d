"""The EP publisher's settings (TIDBOK_EP_* or the [ep] section), apart from the publisher itself so
that `tidbok run` and `serve` can check them before anything starts without importing its metrics
(prometheus_client must first be imported after PROMETHEUS_MULTIPROC_DIR is set)."""

from __future__ import annotations

from dataclasses import dataclass

from producer.platform import setting_checks, settings_source
from producer.platform.settings_source import Source


@dataclass(frozen=True)
class PublishingSettings:
    """How the EP publisher works: TIDBOK_EP_* (or the [ep] section), checked when read."""

    batch_size: int = 10  # rows claimed per round (one transaction; small, so the loops share a short queue)
    threads: int = 4  # publishing loops per `tidbok ep publish` (calls wait on EP, not on the CPU)
    poll_seconds: float = 0.5
    retry_initial_ms: int = 5000
    retry_max_ms: int = 300_000
    retry_max_attempts: int = 50

    @classmethod
    def from_env(cls, source: Source | None = None) -> PublishingSettings:
        source = source or settings_source.load()
        initial, maximum = setting_checks.retry_interval(source, "TIDBOK_EP_RETRY_INITIAL_MS", "TIDBOK_EP_RETRY_MAX_MS")
        return cls(
            batch_size=source.integer("TIDBOK_EP_BATCH_SIZE", 10, 1, 1000),
            threads=source.integer("TIDBOK_EP_PUBLISHER_THREADS", 4, 1, 64),
            poll_seconds=source.integer("TIDBOK_EP_POLL_MS", 500, 10) / 1000,
            retry_initial_ms=initial,
            retry_max_ms=maximum,
            retry_max_attempts=source.integer("TIDBOK_EP_RETRY_MAX_ATTEMPTS", 50, 1),
        )
