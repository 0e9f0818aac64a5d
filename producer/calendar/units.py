"""Per-worker memory of care units and the names in their catalogues.

Every call needs its unit, and availability answers carry time-type, care-type, performer and
resource names for every slot; both change seldom, so each worker keeps them for a few seconds
instead of joining them into every query. A code missing from a remembered catalogue (something
added since) reloads it at once, so only a rename can be seen late, by at most the TTL.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psycopg

TTL_SECONDS = 5.0

_UNIT_SQL = (
    "SELECT hsa_id, name, message_allowed, extract(epoch FROM change_deadline)::float8 FROM care_unit WHERE hsa_id = %s"
)
_NAMES_SQL = """
SELECT 'time_type', code, name FROM time_type WHERE unit_hsa_id = %(unit)s
UNION ALL SELECT 'care_type', code, name FROM care_type WHERE unit_hsa_id = %(unit)s
UNION ALL SELECT 'performer', hsa_id, concat_ws(' ', first_name, last_name) FROM performer WHERE unit_hsa_id = %(unit)s
UNION ALL SELECT 'resource', resource_id, name FROM resource WHERE unit_hsa_id = %(unit)s
"""


@dataclass(frozen=True)
class Unit:
    """A care unit (a SOAP call's LogicalAddress) and its rules."""

    hsa_id: str
    name: str
    message_allowed: bool
    change_deadline_seconds: float


@dataclass(frozen=True)
class Names:
    """Display names of one unit's codes, by kind: time_type, care_type, performer, resource."""

    by_kind: dict[str, dict[str, str]]

    def get(self, kind: str, code: str | None) -> str | None:
        return self.by_kind.get(kind, {}).get(code) if code else None

    def knows(self, kind: str, code: str | None) -> bool:
        return code is None or code in self.by_kind.get(kind, {})


class UnitCache:
    def __init__(self, ttl: float = TTL_SECONDS) -> None:
        self._ttl = ttl
        self._units: dict[str, tuple[Unit, float]] = {}
        self._names: dict[str, tuple[Names, float]] = {}
        self._lock = threading.Lock()

    def unit(self, conn: psycopg.Connection, hsa_id: str) -> Unit | None:
        """The unit with this (upper-case) HSA-id, or None; unknown ids are never remembered."""
        cached = self._units.get(hsa_id)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        row = conn.execute(_UNIT_SQL, (hsa_id,)).fetchone()
        if row is None:
            return None
        unit = Unit(*row)
        with self._lock:
            self._units[hsa_id] = (unit, now + self._ttl)
        return unit

    def names(self, conn: psycopg.Connection, hsa_id: str, reload: bool = False) -> Names:
        cached = self._names.get(hsa_id)
        now = time.monotonic()
        if cached is not None and cached[1] > now and not reload:
            return cached[0]
        by_kind: dict[str, dict[str, str]] = {}
        for kind, code, name in conn.execute(_NAMES_SQL, {"unit": hsa_id}).fetchall():
            by_kind.setdefault(kind, {})[code] = name
        names = Names(by_kind)
        with self._lock:
            self._names[hsa_id] = (names, now + self._ttl)
        return names
