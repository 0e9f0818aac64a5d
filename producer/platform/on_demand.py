"""A pool connection taken only when a call first needs it, so a call answered from a worker's
memory takes none; and, on a server's event loop, a call that would need it is stopped before it
waits (WouldWait), to be run again in a thread."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool


class WouldWait(Exception):
    """The call needs the database, and must not wait for it where it runs (an event loop)."""


class OnDemand:
    """Stands in for a psycopg connection: the first attribute asked for takes one from the pool
    (or raises WouldWait when `never_wait`); leaving the `with` returns it as the pool's own
    context manager would, rolling back what an exception interrupted."""

    def __init__(self, pool: Callable[[], ConnectionPool], never_wait: bool = False) -> None:
        self._pool = pool
        self._never_wait = never_wait
        self._taken: AbstractContextManager[psycopg.Connection] | None = None
        self._conn: psycopg.Connection | None = None

    @property
    def used(self) -> bool:
        return self._conn is not None

    @property
    def never_wait(self) -> bool:
        """True where the call must not wait for any database (the primary, a replica)."""
        return self._never_wait

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection(), name)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None:
            if self._never_wait:
                raise WouldWait
            taken = self._pool().connection()
            self._conn = taken.__enter__()
            self._taken = taken
        return self._conn

    def __enter__(self) -> OnDemand:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        taken, self._taken, self._conn = self._taken, None, None
        if taken is not None:
            taken.__exit__(kind, error, trace)
