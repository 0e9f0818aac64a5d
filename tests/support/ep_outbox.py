"""Egen provhantering's outbox in tests: publisher processes (`python -m producer ep publish`) sending
a producer's ep_offer rows to the EP stub (support.ep), and what the outbox holds.

    publisher = start_ep_publisher(server.database_url, stub, log_dir / "ep.log")
    wait_until_sent(db, publisher)          # no row pending (parked ones stay parked)
    publisher.stop()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row, tuple_row

from support.ep import EpStub
from support.processes import LoggedProcess, start_logged
from support.server import subprocess_env


class EpPublisher(LoggedProcess):
    """One `tidbok ep publish` process."""


def publisher_env(database_url: str, stub: EpStub, **extra: str) -> dict[str, str]:
    """A publisher's settings for this stub (its client certificate under TLS); fast retries, so
    fault tests finish quickly."""
    env = {
        "DATABASE_URL": database_url,
        "TIDBOK_EP_URL": stub.url,
        "TIDBOK_EP_TIMEOUT": "5",
        "TIDBOK_EP_RETRY_INITIAL_MS": "50",
        "TIDBOK_EP_RETRY_MAX_MS": "200",
        "TIDBOK_EP_RETRY_MAX_ATTEMPTS": "1000",
        "TIDBOK_EP_POLL_MS": "50",
    }
    if stub.pki is not None:
        env |= {
            "TIDBOK_EP_CERT": str(stub.pki.client.cert),
            "TIDBOK_EP_KEY": str(stub.pki.client.key),
            "TIDBOK_EP_CA": str(stub.pki.authority.bundle),
        }
    return env | extra


def start_ep_publisher(
    database_url: str, stub: EpStub, log_path: Path, extra_env: Mapping[str, str] | None = None
) -> EpPublisher:
    command = [sys.executable, "-m", "producer", "ep", "publish"]
    env = subprocess_env(publisher_env(database_url, stub, **dict(extra_env or {})))
    return EpPublisher(start_logged(command, env, log_path), log_path)


def pending(conn: psycopg.Connection) -> int:
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute("SELECT count(*) FROM ep_offer WHERE state = 'pending'").fetchone()[0]


def wait_until_sent(conn: psycopg.Connection, publishers: EpPublisher | list[EpPublisher], seconds: float = 30) -> None:
    """Wait (bounded) until no offer row is pending; fail with the publishers' logs."""
    running = publishers if isinstance(publishers, list) else [publishers]
    deadline = time.monotonic() + seconds
    while (left := pending(conn)) > 0:
        for publisher in running:
            if publisher.process.poll() is not None:
                pytest.fail(f"an EP publisher exited\n{publisher.output()}", pytrace=False)
        if time.monotonic() > deadline:
            logs = "\n".join(p.output()[-4000:] for p in running)
            pytest.fail(f"{left} offer row(s) still pending after {seconds} s\n{logs}", pytrace=False)
        time.sleep(0.05)


def offer_rows(conn: psycopg.Connection, campaign: str) -> list[dict[str, Any]]:
    """The campaign's rows in the order they were queued."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM ep_offer WHERE campaign = %s ORDER BY id", (campaign,)).fetchall()
