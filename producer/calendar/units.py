"""Care units: a worker's memory of them and of the names in their catalogues, where a booking of a
time type may be made, and a unit's bookings moved or removed with the unit (the loader's).

Every call needs its unit, and availability answers carry time-type, care-type, performer and
resource names for every slot; both change seldom, so each worker keeps them for a few seconds
instead of joining them into every query. A code missing from a remembered catalogue (something
added since) reloads it at once, so only a rename can be seen late, by at most the TTL.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg

from producer.calendar.outbox import record_change
from producer.calendar.rules import TypeRules, consumer_deadlines, unit_rules
from producer.calendar.views import fetch_views

TTL_SECONDS = 5.0

_UNIT_SQL = (
    "SELECT hsa_id, name, message_allowed, extract(epoch FROM change_deadline)::float8, medical_unit_hsa_id, id"
    " FROM care_unit WHERE hsa_id = %s"
)
_NAMES_SQL = """
SELECT 'time_type', code, name, id FROM time_type WHERE unit_hsa_id = %(unit)s
UNION ALL SELECT 'care_type', code, name, NULL FROM care_type WHERE unit_hsa_id = %(unit)s
-- seed 001: title, first and last name, blank-separated ("Läkare Anna Andersson")
UNION ALL SELECT 'performer', hsa_id, concat_ws(' ', title, first_name, last_name), id
          FROM performer WHERE unit_hsa_id = %(unit)s
UNION ALL SELECT 'resource', resource_id, name, NULL FROM resource WHERE unit_hsa_id = %(unit)s
"""


@dataclass(frozen=True)
class Unit:
    """A care unit (a SOAP call's LogicalAddress) and its rules."""

    hsa_id: str
    name: str
    message_allowed: bool
    change_deadline_seconds: float
    medical_unit_hsa_id: str | None  # the care unit (vårdenhet) with medical responsibility, if named
    id: int  # the slot table's key for the unit (migration 0009)


@dataclass(frozen=True)
class Names:
    """Display names of one unit's codes, by kind: time_type, care_type, performer, resource; and
    its time types' booking rules (which types a resident is offered, from when and until when)."""

    by_kind: dict[str, dict[str, str]]
    rules: dict[str, TypeRules] = field(default_factory=dict)
    consumer_deadlines: dict[str, timedelta] = field(default_factory=dict)  # by consumer HSA-id
    # the slot table's integer keys (migration 0009): time_type and performer, id -> code and back
    codes_by_id: dict[str, dict[int, str]] = field(default_factory=dict)
    ids_by_code: dict[str, dict[str, int]] = field(default_factory=dict)

    def get(self, kind: str, code: str | None) -> str | None:
        return self.by_kind.get(kind, {}).get(code) if code else None

    def knows(self, kind: str, code: str | None) -> bool:
        return code is None or code in self.by_kind.get(kind, {})

    def ids(self, kind: str, codes: list[str] | None) -> list[int] | None:
        """The integer keys of codes (None: no filter); codes unknown here select nothing."""
        if codes is None:
            return None
        known = self.ids_by_code.get(kind, {})
        return [known[c] for c in codes if c in known]


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
        codes_by_id: dict[str, dict[int, str]] = {}
        ids_by_code: dict[str, dict[str, int]] = {}
        for kind, code, name, key in conn.execute(_NAMES_SQL, {"unit": hsa_id}).fetchall():
            by_kind.setdefault(kind, {})[code] = name
            if key is not None:
                codes_by_id.setdefault(kind, {})[key] = code
                ids_by_code.setdefault(kind, {})[code] = key
        names = Names(by_kind, unit_rules(conn, hsa_id), consumer_deadlines(conn, hsa_id), codes_by_id, ids_by_code)
        if cached is not None and cached[0] == names:
            names = cached[0]  # unchanged: the same object, so what was derived from it stays good
        with self._lock:
            self._names[hsa_id] = (names, now + self._ttl)
        return names


ALTERNATIVES_SQL = """
SELECT u.hsa_id, u.name FROM care_unit u
WHERE (u.hsa_id = %(unit)s AND EXISTS (
          SELECT 1 FROM slot s JOIN time_type t ON t.id = s.time_type_id
          WHERE s.unit_id = u.id AND t.unit_hsa_id = u.hsa_id AND t.code = %(tt)s))
   OR u.hsa_id IN (
          SELECT a.alternative_hsa_id FROM unit_alternative a
          JOIN time_type t ON t.unit_hsa_id = a.alternative_hsa_id AND t.code = a.time_type_code
          WHERE a.unit_hsa_id = %(unit)s AND a.time_type_code = %(tt)s)
ORDER BY u.hsa_id = %(unit)s DESC, u.hsa_id
"""


def units_for_time_type(conn: psycopg.Connection, unit_hsa_id: str, time_type: str) -> list[tuple[str, str]]:
    """Where a booking of this time type at this unit may be booked: the unit itself if it offers
    the time type (a sender-only unit with no slots of it does not), and its configured alternatives."""
    return conn.execute(ALTERNATIVES_SQL, {"unit": unit_hsa_id, "tt": time_type}).fetchall()


# -- a unit's HSA-id changed, or the unit removed (the loader) -------------------------------------

_BUSY = """
SELECT (SELECT count(*) FROM booking WHERE unit_hsa_id = %(unit)s AND status = 'active'),
       (SELECT count(*) FROM ei_outbox o JOIN booking b ON b.pk = o.booking_pk
        WHERE b.unit_hsa_id = %(unit)s AND o.published_at IS NULL)
       + (SELECT count(*) FROM ep_offer WHERE unit_hsa_id = %(unit)s AND state = 'pending')
"""

_RENAME = """
INSERT INTO care_unit (hsa_id, name, message_allowed, change_deadline, created_at, medical_unit_hsa_id,
                       medical_unit_name, publish_to_ei)
    SELECT %(new)s, name, message_allowed, change_deadline, created_at, medical_unit_hsa_id, medical_unit_name,
           publish_to_ei
    FROM care_unit WHERE hsa_id = %(old)s;
INSERT INTO consumer_rule (unit_hsa_id, consumer_hsa_id, change_deadline, name)
    SELECT %(new)s, consumer_hsa_id, change_deadline, name FROM consumer_rule WHERE unit_hsa_id = %(old)s;
INSERT INTO care_type (unit_hsa_id, code, name) SELECT %(new)s, code, name FROM care_type WHERE unit_hsa_id = %(old)s;
INSERT INTO time_type (unit_hsa_id, code, name, duration_minutes, care_type_code, self_booking, min_lead, horizon,
                       max_active_per_resident, change_deadline, message_allowed, purpose, ep_unit_offer_id)
    SELECT %(new)s, code, name, duration_minutes, care_type_code, self_booking, min_lead, horizon,
           max_active_per_resident, change_deadline, message_allowed, purpose, ep_unit_offer_id
    FROM time_type WHERE unit_hsa_id = %(old)s;
INSERT INTO performer (unit_hsa_id, hsa_id, title, first_name, last_name)
    SELECT %(new)s, hsa_id, title, first_name, last_name FROM performer WHERE unit_hsa_id = %(old)s;
INSERT INTO resource (unit_hsa_id, resource_id, name)
    SELECT %(new)s, resource_id, name FROM resource WHERE unit_hsa_id = %(old)s;
INSERT INTO unit_alternative (unit_hsa_id, time_type_code, alternative_hsa_id)
    SELECT %(new)s, time_type_code, alternative_hsa_id FROM unit_alternative WHERE unit_hsa_id = %(old)s;
UPDATE unit_alternative SET alternative_hsa_id = %(new)s WHERE alternative_hsa_id = %(old)s;
UPDATE slot s SET unit_id = nu.id, time_type_id = nt.id,
                  performer_id = (SELECT np.id FROM performer op JOIN performer np ON np.hsa_id = op.hsa_id
                                  WHERE op.id = s.performer_id AND np.unit_hsa_id = %(new)s)
    FROM care_unit ou, care_unit nu, time_type ot, time_type nt
    WHERE ou.hsa_id = %(old)s AND nu.hsa_id = %(new)s AND s.unit_id = ou.id
      AND ot.id = s.time_type_id AND nt.unit_hsa_id = nu.hsa_id AND nt.code = ot.code;
UPDATE booking SET unit_hsa_id = %(new)s WHERE unit_hsa_id = %(old)s;
INSERT INTO ep_campaign (unit_hsa_id, campaign, access_unit_id, unit_offer_id, hc_professional_id, hc_first_name,
                         hc_last_name, notify_resident, created_at, created_by)
    SELECT %(new)s, campaign, access_unit_id, unit_offer_id, hc_professional_id, hc_first_name, hc_last_name,
           notify_resident, created_at, created_by
    FROM ep_campaign WHERE unit_hsa_id = %(old)s;
UPDATE ep_offer SET unit_hsa_id = %(new)s WHERE unit_hsa_id = %(old)s;
DELETE FROM unit_alternative WHERE unit_hsa_id = %(old)s;
DELETE FROM care_unit WHERE hsa_id = %(old)s;
"""

# History first (inactive bookings, their events and published outbox rows), then the unit: its
# slots go with it (trigger), its catalogue and the alternatives naming it by cascade.
_REMOVE = """
DELETE FROM slot WHERE unit_id = (SELECT id FROM care_unit WHERE hsa_id = %(unit)s);
DELETE FROM booking_event WHERE booking_pk IN (SELECT pk FROM booking WHERE unit_hsa_id = %(unit)s);
DELETE FROM ei_outbox WHERE booking_pk IN (SELECT pk FROM booking WHERE unit_hsa_id = %(unit)s);
DELETE FROM booking WHERE unit_hsa_id = %(unit)s;
DELETE FROM unit_alternative WHERE unit_hsa_id = %(unit)s OR alternative_hsa_id = %(unit)s;
DELETE FROM care_unit WHERE hsa_id = %(unit)s;
"""


def busy(conn: psycopg.Connection, unit_hsa_id: str) -> tuple[int, int]:
    """(active bookings and invitations, outbox rows not yet published) of a unit: while either is
    not 0 the unit may be neither renamed nor removed (the engagement index must hear of each first)."""
    active, pending = conn.execute(_BUSY, {"unit": unit_hsa_id}).fetchone()
    return active, pending


def rename(conn: psycopg.Connection, old: str, new: str) -> None:
    """Give a unit (one that is not busy) a new HSA-id: its catalogue, slots and past bookings go along."""
    for statement in _RENAME.strip().split(";\n"):
        conn.execute(statement, {"old": old, "new": new})


def remove(conn: psycopg.Connection, unit_hsa_id: str) -> None:
    """Delete a unit (one that is not busy) with its slots, catalogue and history."""
    for statement in _REMOVE.strip().split(";\n"):
        conn.execute(statement, {"unit": unit_hsa_id})


def set_publishing(conn: psycopg.Connection, unit_hsa_id: str, publish: bool, now: datetime) -> int:
    """Switch a unit's EI publishing on (its bookings' and invitations' current posts are queued: the
    unit goes live in 1177) or off (the posts it has are deleted from EI). Returns the rows queued."""
    conn.execute("UPDATE care_unit SET publish_to_ei = %s WHERE hsa_id = %s", (publish, unit_hsa_id))
    queued = 0
    reason = "publishing on" if publish else "publishing off"
    for view in fetch_views(conn, "b.unit_hsa_id = %s AND b.status = 'active' ORDER BY b.pk", (unit_hsa_id,)):
        queued += record_change(conn, view.pk, reason, view.ei_post, view.post(now) if publish else None)
    return queued
