"""Settings, read once from the environment so every process (server, CLI, tests) agrees."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = REPO_ROOT / "contracts"

BOOKING_ID_POLICIES = ("stable", "per-slot")


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the setting."""


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the producer can be told; defaults are the documented ones in the README."""

    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    booking_id_policy: str = "stable"
    max_search_days: int = 92
    max_request_bytes: int = 1_048_576
    db_pool_size: int = 4
    db_timeout_seconds: int = 5
    pgdata: Path = field(default=REPO_ROOT / ".pgdata")
    admin_tokens: str = ""  # TIDBOK_ADMIN_TOKENS: see producer.admin_api.auth

    @classmethod
    def from_env(cls) -> Settings:
        policy = os.environ.get("TIDBOK_BOOKING_ID_POLICY", "stable")
        if policy not in BOOKING_ID_POLICIES:
            raise ConfigError(
                f"TIDBOK_BOOKING_ID_POLICY must be one of {', '.join(BOOKING_ID_POLICIES)}, got {policy!r}"
            )
        max_days = _int("TIDBOK_MAX_SEARCH_DAYS", 92, minimum=1)
        if max_days < 62:
            raise ConfigError("TIDBOK_MAX_SEARCH_DAYS must be at least 62 (1177 searches 62-day windows)")
        return cls(
            database_url=os.environ.get("DATABASE_URL") or None,
            host=os.environ.get("TIDBOK_HOST", "127.0.0.1"),
            port=_int("TIDBOK_PORT", 8080, minimum=1),
            workers=_int("TIDBOK_WORKERS", 2, minimum=1),
            booking_id_policy=policy,
            max_search_days=max_days,
            max_request_bytes=_int("TIDBOK_MAX_REQUEST_BYTES", 1_048_576, minimum=1024),
            db_pool_size=_int("TIDBOK_DB_POOL_SIZE", 4, minimum=1),
            db_timeout_seconds=_int("TIDBOK_DB_TIMEOUT", 5, minimum=1),
            pgdata=Path(os.environ.get("TIDBOK_PGDATA", str(REPO_ROOT / ".pgdata"))),
            admin_tokens=os.environ.get("TIDBOK_ADMIN_TOKENS", ""),
        )
