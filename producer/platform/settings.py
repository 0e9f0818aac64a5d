"""Settings, read once from the configuration file and the environment so every process (server,
CLI, tests) agrees; a bad value stops the start with an error that names the setting."""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from producer.platform import setting_checks, settings_source
from producer.platform.consumers import Consumers
from producer.platform.settings_source import ConfigError, Source
from producer.sweden.identifiers import is_valid_hsa_id

__all__ = ["BOOKING_ID_POLICIES", "REPO_ROOT", "ConfigError", "Settings"]

REPO_ROOT = Path(__file__).resolve().parents[2]

BOOKING_ID_POLICIES = ("stable", "per-slot")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _choice(source: Source, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = source.get(name) or default
    if value not in choices:
        raise ConfigError(f"{source.label(name)} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _hsa_ids(source: Source, name: str) -> frozenset[str]:
    ids = [e.strip().upper() for e in (source.get(name) or "").split(",") if e.strip()]
    bad = [i for i in ids if not is_valid_hsa_id(i)]
    if bad:
        raise ConfigError(f"{source.label(name)}: {bad[0]!r} is not an HSA-id (SE + 10-12 digits + - + suffix)")
    return frozenset(ids)


def _networks(source: Source, name: str) -> tuple[Network, ...]:
    networks = []
    for entry in (e.strip() for e in (source.get(name) or "").split(",")):
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ConfigError(f"{source.label(name)}: {entry!r} is not an IP address or network") from None
    return tuple(networks)


@dataclass(frozen=True)
class Settings:
    """Everything the producer can be told; defaults are the documented ones (tidbok.example.toml)."""

    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    booking_id_policy: str = "stable"
    max_search_days: int = 92
    max_request_bytes: int = 1_048_576
    db_pool_size: int = 2
    db_timeout_seconds: int = 5
    shutdown_timeout_seconds: int = 30
    body_timeout_seconds: int = 10
    pgdata: Path = field(default=REPO_ROOT / ".pgdata")
    # A streaming replica for availability reads (producer.platform.replica); None: all on the primary
    replica_url: str | None = None
    replica_max_lag_seconds: float = 2.0  # a replica possibly staler than this is skipped
    replica_max_lag_bytes: int = 0  # ... or further behind than this in WAL (0: not checked)
    admin_tokens: str = ""  # TIDBOK_ADMIN_TOKENS: see producer.admin_api.auth
    staff_accounts: str = ""  # TIDBOK_STAFF_ACCOUNTS: see producer.staff.accounts
    staff_session_minutes: int = 30  # TIDBOK_STAFF_SESSION_MINUTES: a page session ends this long after its last use
    # The service platforms (their certificates' HSA-ids) whose x-rivta-original-serviceconsumer-hsaid
    # names the consumer a booking rule applies to; any other caller is that consumer itself.
    platforms: frozenset[str] = frozenset()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    proxy_cert_header: str | None = None
    trusted_proxies: tuple[Network, ...] = ()
    consumers: Consumers = field(default_factory=Consumers, compare=False)
    log_format: str = "text"
    log_level: str = "INFO"
    demo_date: date | None = None  # TIDBOK_DEMO_DATE: the demo is anchored at that date's Monday (None: this week's)
    record_dir: Path | None = None  # TIDBOK_RECORD_DIR: write each SOAP request and response there (producer.testkit)
    record_mask: bool = False  # TIDBOK_RECORD_MASK: personnummer masked in what is recorded
    ready_publishers: int = 0  # EI publisher connections /ready requires (0: not checked)
    ready_outbox_age_seconds: int = 600  # oldest pending outbox row /ready accepts (0: not checked)
    ready_ep_publishers: int = 0  # EP publisher connections /ready requires (0: not checked)
    # TIDBOK_AVAILABILITY_MEMORY: workers answer availability from their memory of free slots
    # (producer.interactions.free_slots); off: every call reads the database
    availability_memory: bool = True
    availability_memory_mb: int = 32  # TIDBOK_AVAILABILITY_MEMORY_MB: how much of it each worker may hold
    # Egen provhantering's OfferInteraction (egen_provhantering.config.ClientConfig): TIDBOK_EP_*, see _ep()
    ep_url: str | None = None  # None: no EP configured
    ep_cert: Path | None = None
    ep_key: Path | None = None
    ep_ca: Path | None = None
    ep_timeout_seconds: int = 10
    ep_namespace: str | None = None  # None: our rendition's (egen_provhantering.contract.DEFAULT_NAMESPACE)
    # who gives a campaign's EP offers when staff name nobody (HCProfessionalID and the names shown to
    # the resident): a function such as Screeningverksamheten; None: the staff member (producer.staff.offers)
    ep_giver_id: str | None = None
    ep_giver_first_name: str | None = None
    ep_giver_last_name: str | None = None

    @property
    def transport(self) -> str:
        """How callers are identified: "mtls" (our own TLS with client certificates), "proxy" (a
        TLS-terminating proxy passes the verified certificate in a header) or "open" (plain HTTP,
        nobody identified: development and tests)."""
        if self.tls_cert is not None:
            return "mtls"
        if self.proxy_cert_header:
            return "proxy"
        return "open"

    @classmethod
    def from_env(cls, source: Source | None = None) -> Settings:
        source = source or settings_source.load()
        max_days = source.integer("TIDBOK_MAX_SEARCH_DAYS", 92, minimum=1)
        if max_days < 62:
            raise ConfigError(
                f"{source.label('TIDBOK_MAX_SEARCH_DAYS')} must be at least 62 (1177 searches 62-day windows)"
            )
        record_dir = (source.get("TIDBOK_RECORD_DIR") or "").strip()
        settings = cls(
            database_url=_database_url(source, "DATABASE_URL"),
            host=(source.get("TIDBOK_HOST") or "").strip() or "127.0.0.1",
            port=source.integer("TIDBOK_PORT", 8080, minimum=1, maximum=65535),
            workers=source.integer("TIDBOK_WORKERS", 2, minimum=1, maximum=256),
            booking_id_policy=_choice(source, "TIDBOK_BOOKING_ID_POLICY", "stable", BOOKING_ID_POLICIES),
            max_search_days=max_days,
            max_request_bytes=source.integer("TIDBOK_MAX_REQUEST_BYTES", 1_048_576, minimum=1024),
            db_pool_size=source.integer("TIDBOK_DB_POOL_SIZE", 2, minimum=1, maximum=1000),
            db_timeout_seconds=source.integer("TIDBOK_DB_TIMEOUT", 5, minimum=1, maximum=3600),
            shutdown_timeout_seconds=source.integer("TIDBOK_SHUTDOWN_TIMEOUT", 30, minimum=1, maximum=3600),
            body_timeout_seconds=source.integer("TIDBOK_BODY_TIMEOUT", 10, minimum=1, maximum=3600),
            pgdata=Path(source.get("TIDBOK_PGDATA") or str(REPO_ROOT / ".pgdata")),
            replica_url=_database_url(source, "TIDBOK_DATABASE_REPLICA_URL"),
            replica_max_lag_seconds=source.number("TIDBOK_DATABASE_REPLICA_MAX_LAG", 2.0, minimum=0.5, maximum=3600),
            replica_max_lag_bytes=source.integer("TIDBOK_DATABASE_REPLICA_MAX_LAG_BYTES", 0, minimum=0),
            admin_tokens=source.get("TIDBOK_ADMIN_TOKENS") or "",
            staff_accounts=source.get("TIDBOK_STAFF_ACCOUNTS") or "",
            staff_session_minutes=source.integer("TIDBOK_STAFF_SESSION_MINUTES", 30, minimum=1),
            platforms=_hsa_ids(source, "TIDBOK_PLATFORMS"),
            tls_cert=source.file("TIDBOK_TLS_CERT"),
            tls_key=source.file("TIDBOK_TLS_KEY"),
            tls_ca=source.file("TIDBOK_TLS_CA"),
            proxy_cert_header=(source.get("TIDBOK_PROXY_CERT_HEADER") or "").strip() or None,
            trusted_proxies=_networks(source, "TIDBOK_TRUSTED_PROXIES"),
            consumers=Consumers.from_source(source),
            log_format=_choice(source, "TIDBOK_LOG_FORMAT", "text", LOG_FORMATS),
            log_level=_choice(source, "TIDBOK_LOG_LEVEL", "INFO", LOG_LEVELS),
            demo_date=source.date("TIDBOK_DEMO_DATE"),
            record_dir=Path(record_dir) if record_dir else None,
            record_mask=source.boolean("TIDBOK_RECORD_MASK"),
            availability_memory=source.boolean("TIDBOK_AVAILABILITY_MEMORY", True),
            availability_memory_mb=source.integer("TIDBOK_AVAILABILITY_MEMORY_MB", 32, minimum=1, maximum=65536),
            ready_publishers=source.integer("TIDBOK_READY_PUBLISHERS", 0, minimum=0, maximum=1000),
            ready_outbox_age_seconds=source.integer("TIDBOK_READY_OUTBOX_AGE", 600, minimum=0, maximum=10**7),
            ready_ep_publishers=source.integer("TIDBOK_READY_EP_PUBLISHERS", 0, minimum=0, maximum=1000),
            **_ep(source),
        )
        _check_transport(settings, source)
        if settings.database_url is None:
            _check_pgdata(settings.pgdata, source)
        return settings


def _database_url(source: Source, name: str) -> str | None:
    """A postgresql:// URL that libpq can parse (its host may be in the query: ?host=/socket/dir)."""
    raw = (source.get(name) or "").strip()
    if not raw:
        return None
    if not raw.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{source.label(name)} must be a postgresql://… URL")
    try:
        conninfo_to_dict(raw)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"{source.label(name)} is not a usable PostgreSQL URL: {exc}") from None
    return raw


def _check_pgdata(pgdata: Path, source: Source) -> None:
    """The embedded server's folder must be one we can write, or one we can create."""
    if pgdata.exists():
        if not pgdata.is_dir():
            raise ConfigError(f"{source.label('TIDBOK_PGDATA')} names {str(pgdata)!r}, which is not a folder")
        if not os.access(pgdata, os.W_OK | os.X_OK):
            raise ConfigError(f"{source.label('TIDBOK_PGDATA')} names {str(pgdata)!r}, which this user cannot write")
        return
    parent = pgdata.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{source.label('TIDBOK_PGDATA')} names {str(pgdata)!r}, which cannot be created ({parent} is not writable)"
        )


def _check_transport(settings: Settings, source: Source) -> None:
    """The transport settings must make one coherent mode, and a mode that identifies callers must
    name who may call (a producer open to every certificate holder is never the default)."""
    tls = {"TIDBOK_TLS_CERT": settings.tls_cert, "TIDBOK_TLS_KEY": settings.tls_key, "TIDBOK_TLS_CA": settings.tls_ca}
    given = [name for name, path in tls.items() if path is not None]
    if given and len(given) < 3:
        missing = next(name for name in tls if name not in given)
        raise ConfigError(f"{source.label(missing)} is needed too: mutual TLS takes a certificate, its key and a CA")
    if given and settings.proxy_cert_header:
        raise ConfigError(
            f"{source.label('TIDBOK_PROXY_CERT_HEADER')} and {source.label('TIDBOK_TLS_CERT')} exclude each other:"
            " terminate TLS here or at a proxy, not both"
        )
    if settings.proxy_cert_header and not settings.trusted_proxies:
        raise ConfigError(
            f"{source.label('TIDBOK_TRUSTED_PROXIES')} is needed: the proxy's client-certificate header is"
            " believed only from the proxy's addresses"
        )
    if settings.transport != "open" and not settings.consumers:
        raise ConfigError(
            f"{source.label('TIDBOK_CONSUMERS')}: name the service consumers (HSA-ids) that may call"
            " (TIDBOK_CONSUMERS or [[consumer]] tables)"
        )
    if settings.transport == "open" and settings.consumers:
        listed = "TIDBOK_CONSUMERS" if source.get("TIDBOK_CONSUMERS") is not None else f"[[consumer]] in {source.path}"
        raise ConfigError(
            f"{listed} names service consumers, but nothing identifies callers: set [tls] (TIDBOK_TLS_CERT,"
            " TIDBOK_TLS_KEY, TIDBOK_TLS_CA) for mutual TLS, or [proxy] (TIDBOK_PROXY_CERT_HEADER,"
            " TIDBOK_TRUSTED_PROXIES) behind a TLS-terminating proxy"
        )
    if settings.transport == "mtls":
        _check_tls_files(settings, source)


def _check_tls_files(settings: Settings, source: Source) -> None:
    """Load what the server will load, now, so a wrong file is named before any worker starts."""
    names = ("TIDBOK_TLS_CERT", "TIDBOK_TLS_KEY", "TIDBOK_TLS_CA")
    setting_checks.tls_files(
        source, names, settings.tls_cert, settings.tls_key, settings.tls_ca, purpose=ssl.Purpose.CLIENT_AUTH
    )


_EP_NAMESPACE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s\"'<>&\\]+")  # as egen_provhantering.contract


def _ep(source: Source) -> dict[str, Any]:
    """The EP client's settings, checked now: an https:// URL for a client certificate, certificate and
    key together and loadable, a CA bundle that loads, a namespace that is an absolute URI."""
    url = source.url("TIDBOK_EP_URL", ("http", "https"))
    cert, key, ca = source.file("TIDBOK_EP_CERT"), source.file("TIDBOK_EP_KEY"), source.file("TIDBOK_EP_CA")
    label = source.label
    setting_checks.paired(source, "TIDBOK_EP_CERT", "TIDBOK_EP_KEY", cert, key)
    given = [name for name, value in (("TIDBOK_EP_CERT", cert), ("TIDBOK_EP_CA", ca)) if value is not None]
    if given and url is None:
        raise ConfigError(f"{label(given[0])} is set but {label('TIDBOK_EP_URL')} is not")
    if given and url is not None and not url.startswith("https://"):
        raise ConfigError(
            f"{label(given[0])} needs an https:// {label('TIDBOK_EP_URL')} (EP is called with mutual TLS)"
        )
    setting_checks.tls_files(source, ("TIDBOK_EP_CERT", "TIDBOK_EP_KEY", "TIDBOK_EP_CA"), cert, key, ca)
    namespace = (source.get("TIDBOK_EP_NAMESPACE") or "").strip() or None
    if namespace is not None and not _EP_NAMESPACE.fullmatch(namespace):
        raise ConfigError(
            f"{label('TIDBOK_EP_NAMESPACE')} must be an absolute URI (http://… or urn:…, the targetNamespace of"
            f" EP's ?wsdl) without spaces, quotes, <, > or &, got {namespace!r}"
        )
    return {
        "ep_url": url,
        "ep_cert": cert,
        "ep_key": key,
        "ep_ca": ca,
        "ep_timeout_seconds": source.integer("TIDBOK_EP_TIMEOUT", 10, minimum=1, maximum=3600),
        "ep_namespace": namespace,
        **_ep_giver(source),
    }


def _ep_giver(source: Source) -> dict[str, Any]:
    """The function that gives a campaign's EP offers by default: an HSA-id with a name to show."""
    giver = (source.get("TIDBOK_EP_GIVER_ID") or "").strip().upper() or None
    first = (source.get("TIDBOK_EP_GIVER_FIRST_NAME") or "").strip() or None
    last = (source.get("TIDBOK_EP_GIVER_LAST_NAME") or "").strip() or None
    if giver is not None and not is_valid_hsa_id(giver):
        raise ConfigError(f"{source.label('TIDBOK_EP_GIVER_ID')}: {giver[:40]!r} is not an HSA-id")
    if giver is None and (first or last):
        named = "TIDBOK_EP_GIVER_FIRST_NAME" if first else "TIDBOK_EP_GIVER_LAST_NAME"
        raise ConfigError(f"{source.label(named)} is set but {source.label('TIDBOK_EP_GIVER_ID')} is not")
    if giver is not None and not (first or last):
        raise ConfigError(
            f"{source.label('TIDBOK_EP_GIVER_ID')} needs {source.label('TIDBOK_EP_GIVER_FIRST_NAME')} or"
            f" {source.label('TIDBOK_EP_GIVER_LAST_NAME')}: EP shows the resident who gives the offer"
        )
    for name, value in (("TIDBOK_EP_GIVER_FIRST_NAME", first), ("TIDBOK_EP_GIVER_LAST_NAME", last)):
        if value is not None and len(value) > 100:
            raise ConfigError(f"{source.label(name)} is longer than 100 characters")
    return {"ep_giver_id": giver, "ep_giver_first_name": first, "ep_giver_last_name": last}
