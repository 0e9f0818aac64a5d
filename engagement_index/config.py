"""EI publishing settings: TIDBOK_EI_* or the [ei] section of the configuration file; a bad value
names the setting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from producer.platform import setting_checks, settings_source
from producer.platform.settings_source import ConfigError, Source

CATEGORIZATIONS = ("split", "NA")
_TLS_NAMES = ("TIDBOK_EI_CLIENT_CERT", "TIDBOK_EI_CLIENT_KEY", "TIDBOK_EI_CA_BUNDLE")


@dataclass(frozen=True)
class EiSettings:
    """Where EI is, how the producer names itself there, and how hard the publisher tries.

    `update_url` None means "no EI configured": `tidbok run` then starts the EI stub and uses it.
    """

    update_url: str | None = None
    logical_address: str = "5565594230"
    source_system: str = "SE2321000016-TIDB"
    data_controller: str = "SE2321000016"
    categorization: str = "split"  # Booking/Invitation (1177 guide v3.2); "NA" per TKB 1.1.2+
    batch_size: int = 1000
    timeout_seconds: int = 10
    retry_initial_ms: int = 5000
    retry_max_ms: int = 300_000
    retry_max_attempts: int = 50
    poll_seconds: float = 0.2
    sweep_seconds: int = 60
    publisher_threads: int = 2
    client_cert: Path | None = None
    client_key: Path | None = None
    ca_bundle: Path | None = None

    @classmethod
    def from_env(cls, source: Source | None = None) -> EiSettings:
        source = source or settings_source.load()
        categorization = source.get("TIDBOK_EI_CATEGORIZATION") or "split"
        if categorization not in CATEGORIZATIONS:
            raise ConfigError(f"{source.label('TIDBOK_EI_CATEGORIZATION')} must be split or NA, got {categorization!r}")
        batch = source.integer("TIDBOK_EI_BATCH_SIZE", 1000, 1)
        if batch > 1000:
            raise ConfigError(
                f"{source.label('TIDBOK_EI_BATCH_SIZE')} must be at most 1000 (the EI's limit per Update)"
            )
        initial, maximum = setting_checks.retry_interval(source, "TIDBOK_EI_RETRY_INITIAL_MS", "TIDBOK_EI_RETRY_MAX_MS")
        cert, key = source.file("TIDBOK_EI_CLIENT_CERT"), source.file("TIDBOK_EI_CLIENT_KEY")
        setting_checks.paired(source, "TIDBOK_EI_CLIENT_CERT", "TIDBOK_EI_CLIENT_KEY", cert, key)
        ca_bundle = source.file("TIDBOK_EI_CA_BUNDLE")
        # loaded now as the publisher's client will, so a wrong file is named before anything starts
        setting_checks.tls_files(source, _TLS_NAMES, cert, key, ca_bundle)
        return cls(
            update_url=source.url("TIDBOK_EI_UPDATE_URL", ("http", "https")),
            logical_address=(source.get("TIDBOK_EI_LOGICAL_ADDRESS") or "").strip() or "5565594230",
            source_system=(source.get("TIDBOK_EI_SOURCE_SYSTEM") or "SE2321000016-TIDB").upper(),
            data_controller=source.get("TIDBOK_EI_DATA_CONTROLLER") or "SE2321000016",
            categorization=categorization,
            batch_size=batch,
            timeout_seconds=source.integer("TIDBOK_EI_TIMEOUT", 10, 1, 3600),
            retry_initial_ms=initial,
            retry_max_ms=maximum,
            retry_max_attempts=source.integer("TIDBOK_EI_RETRY_MAX_ATTEMPTS", 50, 1),
            poll_seconds=source.integer("TIDBOK_EI_POLL_MS", 200, 10) / 1000,
            sweep_seconds=source.integer("TIDBOK_EI_SWEEP_SECONDS", 60, 1),
            publisher_threads=source.integer("TIDBOK_EI_PUBLISHER_THREADS", 2, 1, 64),
            client_cert=cert,
            client_key=key,
            ca_bundle=ca_bundle,
        )
