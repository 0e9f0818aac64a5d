"""Row locks held by a test, and the producer's backend found waiting for one."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.rows import tuple_row


@contextlib.contextmanager
def holding(url: str, statement: str, *params: Any) -> Iterator[None]:
    """Run a locking statement in an open transaction of the test's own, until the block ends."""
    with psycopg.connect(url) as locker:
        locker.execute(statement, params)
        try:
            yield
        finally:
            locker.rollback()


def waiting_backend(db: psycopg.Connection[Any], statement: str, seconds: float = 10) -> int:
    """The pid of the backend of this database that waits for a lock in a query containing
    ``statement`` (the changes write several tables in one statement through CTEs)."""
    deadline = time.monotonic() + seconds
    while True:
        row = (
            db.cursor(row_factory=tuple_row)
            .execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND wait_event_type = 'Lock' AND query LIKE %s",
                ("%" + statement + "%",),
            )
            .fetchone()
        )
        if row:
            return row[0]
        assert time.monotonic() < deadline, f"no backend waited for a lock in {statement!r} within {seconds} s"
        time.sleep(0.02)
