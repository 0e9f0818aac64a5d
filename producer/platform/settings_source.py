"""Where settings come from: one TOML file (named by TIDBOK_CONFIG) with environment overrides.

Every file key maps to one environment variable, so the rest of the code reads settings by their
variable names and a bad value can always be reported by where it came from: the variable when
the environment set it, `[section] key in <file>` when the file did.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from producer.platform import text_files

CONFIG_VARIABLE = "TIDBOK_CONFIG"

# [section] key -> environment variable. tidbok.example.toml documents each of them.
FILE_KEYS: dict[str, dict[str, str]] = {
    "database": {
        "url": "DATABASE_URL",
        "pool_size": "TIDBOK_DB_POOL_SIZE",
        "timeout": "TIDBOK_DB_TIMEOUT",
        "pgdata": "TIDBOK_PGDATA",
        "replica_url": "TIDBOK_DATABASE_REPLICA_URL",
        "replica_max_lag": "TIDBOK_DATABASE_REPLICA_MAX_LAG",
        "replica_max_lag_bytes": "TIDBOK_DATABASE_REPLICA_MAX_LAG_BYTES",
    },
    "server": {
        "host": "TIDBOK_HOST",
        "port": "TIDBOK_PORT",
        "workers": "TIDBOK_WORKERS",
        "max_request_bytes": "TIDBOK_MAX_REQUEST_BYTES",
        "shutdown_timeout": "TIDBOK_SHUTDOWN_TIMEOUT",
        "body_timeout": "TIDBOK_BODY_TIMEOUT",
        "admin_tokens": "TIDBOK_ADMIN_TOKENS",
        "availability_memory": "TIDBOK_AVAILABILITY_MEMORY",
        "availability_memory_mb": "TIDBOK_AVAILABILITY_MEMORY_MB",
    },
    "staff": {"accounts": "TIDBOK_STAFF_ACCOUNTS", "session_minutes": "TIDBOK_STAFF_SESSION_MINUTES"},
    "bookings": {
        "id_policy": "TIDBOK_BOOKING_ID_POLICY",
        "max_search_days": "TIDBOK_MAX_SEARCH_DAYS",
        "platforms": "TIDBOK_PLATFORMS",
    },
    "tls": {"cert": "TIDBOK_TLS_CERT", "key": "TIDBOK_TLS_KEY", "ca": "TIDBOK_TLS_CA"},
    "proxy": {"client_cert_header": "TIDBOK_PROXY_CERT_HEADER", "trusted": "TIDBOK_TRUSTED_PROXIES"},
    "logging": {"format": "TIDBOK_LOG_FORMAT", "level": "TIDBOK_LOG_LEVEL"},
    "demo": {"date": "TIDBOK_DEMO_DATE"},
    "record": {"dir": "TIDBOK_RECORD_DIR", "mask": "TIDBOK_RECORD_MASK"},
    "readiness": {
        "publishers": "TIDBOK_READY_PUBLISHERS",
        "outbox_age": "TIDBOK_READY_OUTBOX_AGE",
        "ep_publishers": "TIDBOK_READY_EP_PUBLISHERS",
    },
    "ei": {
        "update_url": "TIDBOK_EI_UPDATE_URL",
        "logical_address": "TIDBOK_EI_LOGICAL_ADDRESS",
        "source_system": "TIDBOK_EI_SOURCE_SYSTEM",
        "data_controller": "TIDBOK_EI_DATA_CONTROLLER",
        "categorization": "TIDBOK_EI_CATEGORIZATION",
        "batch_size": "TIDBOK_EI_BATCH_SIZE",
        "timeout": "TIDBOK_EI_TIMEOUT",
        "retry_initial_ms": "TIDBOK_EI_RETRY_INITIAL_MS",
        "retry_max_ms": "TIDBOK_EI_RETRY_MAX_MS",
        "retry_max_attempts": "TIDBOK_EI_RETRY_MAX_ATTEMPTS",
        "poll_ms": "TIDBOK_EI_POLL_MS",
        "sweep_seconds": "TIDBOK_EI_SWEEP_SECONDS",
        "publisher_threads": "TIDBOK_EI_PUBLISHER_THREADS",
        "client_cert": "TIDBOK_EI_CLIENT_CERT",
        "client_key": "TIDBOK_EI_CLIENT_KEY",
        "ca_bundle": "TIDBOK_EI_CA_BUNDLE",
    },
    "ep": {
        "url": "TIDBOK_EP_URL",
        "cert": "TIDBOK_EP_CERT",
        "key": "TIDBOK_EP_KEY",
        "ca": "TIDBOK_EP_CA",
        "timeout": "TIDBOK_EP_TIMEOUT",
        "namespace": "TIDBOK_EP_NAMESPACE",
        "giver_id": "TIDBOK_EP_GIVER_ID",
        "giver_first_name": "TIDBOK_EP_GIVER_FIRST_NAME",
        "giver_last_name": "TIDBOK_EP_GIVER_LAST_NAME",
        "batch_size": "TIDBOK_EP_BATCH_SIZE",
        "publisher_threads": "TIDBOK_EP_PUBLISHER_THREADS",
        "poll_ms": "TIDBOK_EP_POLL_MS",
        "retry_initial_ms": "TIDBOK_EP_RETRY_INITIAL_MS",
        "retry_max_ms": "TIDBOK_EP_RETRY_MAX_MS",
        "retry_max_attempts": "TIDBOK_EP_RETRY_MAX_ATTEMPTS",
    },
}
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
CONSUMER_KEYS = frozenset({"hsa_id", "contracts", "units"})


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the setting."""


@dataclass(frozen=True)
class ConsumerEntry:
    """One `[[consumer]]` of the file, as written (checked by producer.platform.consumers)."""

    hsa_id: str
    contracts: tuple[str, ...] | None
    units: tuple[str, ...] | None
    label: str


@dataclass(frozen=True)
class Source:
    """The merged settings: values by environment-variable name, and where each came from."""

    values: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    consumers: tuple[ConsumerEntry, ...] | None = None  # None: the file has no [[consumer]]
    path: Path | None = None

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name)
        return default if value is None else value

    def label(self, name: str) -> str:
        """How to name a setting in an error: the variable, or the file key it was read from."""
        return self.labels.get(name, name)

    def integer(self, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        """A whole-number setting (unset or empty: the default), within its range: a value a library
        would only refuse later (a port of 70000) is named here, before anything starts."""
        raw = self.get(name)
        if not raw:
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{self.label(name)} must be a whole number, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{self.label(name)} must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{self.label(name)} must be at most {maximum}, got {value}")
        return value

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        """A decimal setting (`0.5`, `2`; unset or empty: the default), within its range."""
        raw = self.get(name)
        if not raw:
            return default
        try:
            value = float(raw.strip())
        except ValueError:
            raise ConfigError(f"{self.label(name)} must be a number, got {raw!r}") from None
        if not minimum <= value <= maximum:  # also refuses nan
            raise ConfigError(f"{self.label(name)} must be from {minimum:g} to {maximum:g}, got {raw.strip()}")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        """A yes/no setting: true/false, yes/no, on/off or 1/0 (unset or empty: the default)."""
        raw = (self.get(name) or "").strip().lower()
        if not raw:
            return default
        if raw in ("true", "yes", "on", "1"):
            return True
        if raw in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"{self.label(name)} must be true or false, got {raw!r}")

    def date(self, name: str) -> date | None:
        """A calendar date written YYYY-MM-DD (unset or empty: None)."""
        raw = (self.get(name) or "").strip()
        if not raw:
            return None
        try:
            if _ISO_DATE.fullmatch(raw):
                return date.fromisoformat(raw)
        except ValueError:
            pass
        raise ConfigError(f"{self.label(name)} must be a date written YYYY-MM-DD, got {raw!r}")

    def file(self, name: str) -> Path | None:
        """A setting naming a file that must exist and be readable by this process (unset or empty: None)."""
        raw = self.get(name)
        if not raw:
            return None
        path = Path(raw)
        if not path.is_file():
            raise ConfigError(f"{self.label(name)} names {raw!r}, which is not a readable file")
        try:
            with path.open("rb") as handle:
                handle.read(1)
        except OSError as exc:
            raise ConfigError(f"{self.label(name)} names {raw!r}, which cannot be read: {exc.strerror}") from None
        return path

    def url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        """A setting naming a URL with one of these schemes and a host (unset or empty: None)."""
        raw = (self.get(name) or "").strip()
        if not raw:
            return None
        try:
            parts = urlsplit(raw)
            parts.port  # noqa: B018 (raises ValueError for a port out of range)
        except ValueError as exc:
            raise ConfigError(f"{self.label(name)} is not a URL: {raw!r} ({exc})") from None
        if parts.scheme not in schemes or not parts.hostname:
            wanted = " or ".join(f"{s}://" for s in schemes)
            raise ConfigError(f"{self.label(name)} must be a {wanted}host/… URL, got {raw!r}")
        return raw


def load(environ: Mapping[str, str] | None = None) -> Source:
    """The file named by TIDBOK_CONFIG (if any) overlaid by the environment."""
    env = os.environ if environ is None else environ
    path_text = env.get(CONFIG_VARIABLE, "")
    values: dict[str, str] = {}
    labels: dict[str, str] = {}
    consumers = None
    path = None
    if path_text:
        path = Path(path_text)
        document = _read(path)
        values, labels, consumers = _flatten(document, path)
    for name in _known_variables():
        if name in env:
            values[name] = env[name]
            labels.pop(name, None)
    if "TIDBOK_CONSUMERS" in env:
        values["TIDBOK_CONSUMERS"] = env["TIDBOK_CONSUMERS"]
        consumers = None  # the environment's list replaces the file's
    return Source(values, labels, consumers, path)


def _known_variables() -> set[str]:
    return {name for keys in FILE_KEYS.values() for name in keys.values()}


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text_files.utf8(path.read_bytes()))
    except text_files.NotUtf8 as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except FileNotFoundError:
        raise ConfigError(f"{CONFIG_VARIABLE} names {str(path)!r}, which does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{CONFIG_VARIABLE} names {str(path)!r}, which cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def _flatten(
    document: dict[str, Any], path: Path
) -> tuple[dict[str, str], dict[str, str], tuple[ConsumerEntry, ...] | None]:
    values: dict[str, str] = {}
    labels: dict[str, str] = {}
    consumers = None
    for section, content in document.items():
        if section == "consumer":
            consumers = _consumers(content, path)
            continue
        keys = FILE_KEYS.get(section)
        if keys is None:
            known = ", ".join([*FILE_KEYS, "consumer"])
            raise ConfigError(f"{path}: unknown section [{section}] (known: {known})")
        if not isinstance(content, dict):
            raise ConfigError(f"{path}: {section} must be a [{section}] table")
        for key, value in content.items():
            name = keys.get(key)
            if name is None:
                raise ConfigError(f"{path}: unknown setting [{section}] {key} (known: {', '.join(keys)})")
            separator = ";" if name == "TIDBOK_ADMIN_TOKENS" else ","  # a token's units are comma-separated
            values[name] = _text(value, f"[{section}] {key} in {path}", separator)
            labels[name] = f"[{section}] {key} in {path}"
    return values, labels, consumers


def _text(value: Any, label: str, separator: str) -> str:
    """File values as the environment would spell them; lists become comma-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):  # a TOML date (2027-01-04 without quotes)
        return value.isoformat()
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return separator.join(value)
    raise ConfigError(f"{label} must be a string, a number or a list of strings")


def _consumers(content: Any, path: Path) -> tuple[ConsumerEntry, ...]:
    if not isinstance(content, list) or not all(isinstance(table, dict) for table in content):
        raise ConfigError(f"{path}: consumers are written as [[consumer]] tables")
    entries = []
    for number, table in enumerate(content, start=1):
        label = f"[[consumer]] number {number} in {path}"
        unknown = set(table) - CONSUMER_KEYS
        if unknown:
            raise ConfigError(f"{label}: unknown setting {sorted(unknown)[0]} (known: hsa_id, contracts, units)")
        hsa_id = table.get("hsa_id")
        if not isinstance(hsa_id, str) or not hsa_id.strip():
            raise ConfigError(f"{label}: hsa_id is required")
        entries.append(ConsumerEntry(hsa_id, _names(table, "contracts", label), _names(table, "units", label), label))
    return tuple(entries)


def _names(table: dict[str, Any], key: str, label: str) -> tuple[str, ...] | None:
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{label}: {key} must be a non-empty list of strings (leave it out to allow all)")
    return tuple(value)
