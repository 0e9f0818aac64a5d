"""Units and their catalogues from set-up documents, compared with the database in Python (they are
small) and written row by row.

Additions and changes are made first, so the slots of the same load can use them; removals (an
entry missing from a list that was given, or a unit marked ``remove``) are made after the slots, so
a load can drop a performer's free slots and the performer together. Removing something still in
use is refused. A unit's HSA-id change or removal is refused while it has active bookings (or EI
changes not yet published): those must be cancelled or moved first, through the outbox. The unit's
bookings move or go with it through the calendar core (producer.calendar.units).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from producer.calendar import units as calendar_units
from producer.loading.documents import Node
from producer.loading.report import Problem, Report
from producer.loading.setup import RULE_COLUMNS, UnitSpec


@dataclass
class Removal:
    kind: str
    unit: str
    key: str
    source: str
    node: Node | None


@dataclass
class Entity:
    """How one kind of catalogue entry is stored: its table, key column and value columns."""

    kind: str
    table: str
    key: str
    values: tuple[str, ...]
    in_use: str  # SQL counting what still uses (unit, key); refused while > 0


ENTITIES = {
    "care_types": Entity(
        "care_types", "care_type", "code", ("name",),
        "SELECT (SELECT count(*) FROM time_type WHERE unit_hsa_id = %(unit)s AND care_type_code = %(key)s)"
        " + (SELECT count(*) FROM slot_named WHERE unit_hsa_id = %(unit)s AND care_type_code = %(key)s)"
        " + (SELECT count(*) FROM booking WHERE unit_hsa_id = %(unit)s AND care_type_code = %(key)s)",
    ),
    "time_types": Entity(
        "time_types", "time_type", "code", ("name", "duration_minutes", "care_type_code", *RULE_COLUMNS),
        "SELECT (SELECT count(*) FROM slot_named WHERE unit_hsa_id = %(unit)s AND time_type_code = %(key)s)"
        " + (SELECT count(*) FROM booking WHERE unit_hsa_id = %(unit)s AND time_type_code = %(key)s)",
    ),
    "performers": Entity(
        "performers", "performer", "hsa_id", ("title", "first_name", "last_name"),
        "SELECT count(*) FROM slot_named WHERE unit_hsa_id = %(unit)s AND performer_hsa_id = %(key)s",
    ),
    "resources": Entity(
        "resources", "resource", "resource_id", ("name",),
        "SELECT count(*) FROM slot_named WHERE unit_hsa_id = %(unit)s AND resource_id = %(key)s",
    ),
}  # fmt: skip


class Catalogue:
    """Applies the set-up documents of one load; counts go to the report, refusals are problems."""

    def __init__(self, conn: psycopg.Connection, report: Report) -> None:
        self.conn = conn
        self.report = report
        self.removals: list[Removal] = []
        self.removed_units: list[tuple[str, UnitSpec]] = []

    def refuse(self, source: str, node: Node | None, message: str, field: str | None = None) -> None:
        line = node.line if node else None
        self.report.add(Problem(source, line, field or (node.path if node else None), message))

    def apply(self, documents: list[tuple[str, list[UnitSpec]]]) -> None:
        for source, units in documents:
            for unit in units:
                if unit.previous_hsa_id:
                    self._rename(source, unit)
        for source, units in documents:
            for unit in units:
                if unit.remove:
                    self.removed_units.append((source, unit))
                else:
                    self._unit(source, unit)
        for source, units in documents:
            for unit in units:
                if not unit.remove:
                    self._alternatives(source, unit)

    def finish(self) -> None:
        """Removals, once the slots are written."""
        for removal in self.removals:
            entity = ENTITIES[removal.kind]
            used = self.conn.execute(entity.in_use, {"unit": removal.unit, "key": removal.key}).fetchone()[0]
            if used:
                self.refuse(
                    removal.source, removal.node,
                    f"{entity.table.replace('_', ' ')} {removal.key} is not listed but still used ({used} slot(s),"
                    " bookings or time types name it); it is kept only if listed",
                )  # fmt: skip
                continue
            if entity.table == "time_type":
                gone = self.conn.execute(
                    "DELETE FROM unit_alternative WHERE unit_hsa_id = %s AND time_type_code = %s",
                    (removal.unit, removal.key),
                ).rowcount
                self.report.counts["alternatives"].removed += gone
            self.conn.execute(
                f"DELETE FROM {entity.table} WHERE unit_hsa_id = %s AND {entity.key} = %s", (removal.unit, removal.key)
            )
            self.report.counts[removal.kind].removed += 1
        for source, unit in self.removed_units:
            exists = self.conn.execute("SELECT 1 FROM care_unit WHERE hsa_id = %s", (unit.hsa_id,)).fetchone()
            if not exists or not self._not_busy(source, unit, "removed"):
                continue
            alternatives = self.conn.execute(
                "SELECT count(*) FROM unit_alternative WHERE unit_hsa_id = %(unit)s OR alternative_hsa_id = %(unit)s",
                {"unit": unit.hsa_id},
            ).fetchone()[0]
            for kind, entity in ENTITIES.items():
                self.report.counts[kind].removed += self.conn.execute(
                    f"SELECT count(*) FROM {entity.table} WHERE unit_hsa_id = %s", (unit.hsa_id,)
                ).fetchone()[0]
            self.report.counts["slots"].removed += self.conn.execute(
                "SELECT count(*) FROM slot_named WHERE unit_hsa_id = %s", (unit.hsa_id,)
            ).fetchone()[0]
            calendar_units.remove(self.conn, unit.hsa_id)
            self.report.counts["alternatives"].removed += alternatives
            self.report.counts["units"].removed += 1

    def _not_busy(self, source: str, unit: UnitSpec, what: str, hsa_id: str | None = None) -> bool:
        active, pending = calendar_units.busy(self.conn, hsa_id or unit.hsa_id)
        if active:
            message = f"unit {hsa_id or unit.hsa_id} has {active} active booking(s) or invitation(s)"
            self.refuse(
                source, unit.node, f"{message}: it cannot be {what} until they are cancelled or moved", "hsa_id"
            )
            return False
        if pending:
            message = f"unit {hsa_id or unit.hsa_id} has {pending} change(s) not yet published to the engagement index"
            self.refuse(source, unit.node, f"{message}: it can be {what} once the publisher has sent them", "hsa_id")
            return False
        return True

    def _rename(self, source: str, unit: UnitSpec) -> None:
        old, new = unit.previous_hsa_id, unit.hsa_id
        found = {
            row[0] for row in self.conn.execute("SELECT hsa_id FROM care_unit WHERE hsa_id IN (%s, %s)", (old, new))
        }
        if new in found and old not in found:
            return  # renamed by an earlier load
        if new in found:
            self.refuse(
                source, unit.node, f"both {old} and {new} exist: the HSA-id cannot be changed", "previous_hsa_id"
            )
            return
        if old not in found:
            self.refuse(source, unit.node, f"no unit {old} to change the HSA-id of", "previous_hsa_id")
            return
        if not self._not_busy(source, unit, "given a new HSA-id", old):
            return
        calendar_units.rename(self.conn, old, new)
        self.report.counts["units"].changed += 1

    def _unit(self, source: str, unit: UnitSpec) -> None:
        row = self.conn.execute(
            "SELECT name, message_allowed, (extract(epoch FROM change_deadline) / 60)::int, medical_unit_hsa_id,"
            " medical_unit_name, publish_to_ei FROM care_unit WHERE hsa_id = %s",
            (unit.hsa_id,),
        ).fetchone()
        medical = unit.medical_unit or (None, None)
        if row is None:
            if unit.name is None:
                return  # reported by the parser
            self.conn.execute(
                "INSERT INTO care_unit (hsa_id, name, message_allowed, change_deadline, medical_unit_hsa_id,"
                " medical_unit_name, publish_to_ei) VALUES (%s, %s, %s, make_interval(mins => %s), %s, %s, %s)",
                (
                    unit.hsa_id, unit.name, bool(unit.message_allowed), unit.change_deadline_minutes or 24 * 60,
                    *medical, unit.publish_to_ei is not False,
                ),
            )  # fmt: skip
            self._consumers(unit)
            self.report.counts["units"].created += 1
        else:
            wanted = (
                unit.name or row[0],
                row[1] if unit.message_allowed is None else unit.message_allowed,
                row[2] if unit.change_deadline_minutes is None else unit.change_deadline_minutes,
                *(row[3:5] if unit.medical_unit is None else medical),
                row[5] if unit.publish_to_ei is None else unit.publish_to_ei,
            )
            consumers_changed = self._consumers(unit)
            if wanted[:5] != tuple(row[:5]):
                self.conn.execute(
                    "UPDATE care_unit SET name = %s, message_allowed = %s, change_deadline = make_interval(mins => %s),"
                    " medical_unit_hsa_id = %s, medical_unit_name = %s WHERE hsa_id = %s",
                    (*wanted[:5], unit.hsa_id),
                )
            if wanted[5] != row[5]:  # going live in 1177 publishes the unit's posts; going dark deletes them
                calendar_units.set_publishing(self.conn, unit.hsa_id, wanted[5], datetime.now(UTC))
            if wanted != tuple(row) or consumers_changed:
                self.report.counts["units"].changed += 1
            else:
                self.report.counts["units"].unchanged += 1
        # care types before time types (a time type names its care type)
        self._sync(source, unit, "care_types", unit.care_types, lambda s: (s.code, (s.name,), s.node))
        self._sync(
            source, unit, "time_types", unit.time_types,
            lambda s: (s.code, (s.name, s.duration_minutes, s.care_type, *s.rules.values()), s.node),
        )  # fmt: skip
        self._sync(
            source, unit, "performers", unit.performers,
            lambda s: (s.hsa_id, (s.title, s.first_name, s.last_name), s.node),
        )  # fmt: skip
        self._sync(source, unit, "resources", unit.resources, lambda s: (s.resource_id, (s.name,), s.node))

    def _sync(self, source: str, unit: UnitSpec, kind: str, specs: list | None, fields: Callable) -> None:
        if specs is None:
            return
        entity = ENTITIES[kind]
        columns = ", ".join(entity.values)
        existing = {
            row[0]: tuple(row[1:])
            for row in self.conn.execute(
                f"SELECT {entity.key}, {columns} FROM {entity.table} WHERE unit_hsa_id = %s", (unit.hsa_id,)
            ).fetchall()
        }
        listed = set()
        for spec in specs:
            key, values, node = fields(spec)
            listed.add(key)
            if kind == "time_types" and values[2] is not None and not self._care_type_exists(unit.hsa_id, values[2]):
                self.refuse(source, node, f"no care type {values[2]} at {unit.hsa_id}", f"{node.path}.care_type")
                continue
            if key not in existing:
                placeholders = ", ".join(["%s"] * (len(values) + 2))
                self.conn.execute(
                    f"INSERT INTO {entity.table} (unit_hsa_id, {entity.key}, {columns}) VALUES ({placeholders})",
                    (unit.hsa_id, key, *values),
                )
                self.report.counts[kind].created += 1
            elif existing[key] != values:
                assignments = ", ".join(f"{column} = %s" for column in entity.values)
                self.conn.execute(
                    f"UPDATE {entity.table} SET {assignments} WHERE unit_hsa_id = %s AND {entity.key} = %s",
                    (*values, unit.hsa_id, key),
                )
                self.report.counts[kind].changed += 1
            else:
                self.report.counts[kind].unchanged += 1
        for key in sorted(existing.keys() - listed):
            self.removals.append(Removal(kind, unit.hsa_id, key, source, unit.node))

    def _consumers(self, unit: UnitSpec) -> bool:
        """A given consumers list is complete: it replaces the unit's consumer rules. True if changed."""
        if unit.consumers is None:
            return False
        existing = {
            hsa_id: (deadline, name)
            for hsa_id, deadline, name in self.conn.execute(
                "SELECT consumer_hsa_id, change_deadline, name FROM consumer_rule WHERE unit_hsa_id = %s",
                (unit.hsa_id,),
            ).fetchall()
        }
        wanted = {spec.hsa_id: (spec.change_deadline, spec.name) for spec in unit.consumers}
        if wanted == existing:
            return False
        self.conn.execute("DELETE FROM consumer_rule WHERE unit_hsa_id = %s", (unit.hsa_id,))
        for hsa_id, (deadline, name) in wanted.items():
            self.conn.execute(
                "INSERT INTO consumer_rule (unit_hsa_id, consumer_hsa_id, change_deadline, name)"
                " VALUES (%s, %s, %s, %s)",
                (unit.hsa_id, hsa_id, deadline, name),
            )
        return True

    def _care_type_exists(self, unit: str, code: str) -> bool:
        return bool(
            self.conn.execute("SELECT 1 FROM care_type WHERE unit_hsa_id = %s AND code = %s", (unit, code)).fetchone()
        )

    def _alternatives(self, source: str, unit: UnitSpec) -> None:
        for spec in unit.time_types or []:
            if spec.alternatives is None:
                continue
            existing = {
                row[0]
                for row in self.conn.execute(
                    "SELECT alternative_hsa_id FROM unit_alternative WHERE unit_hsa_id = %s AND time_type_code = %s",
                    (unit.hsa_id, spec.code),
                ).fetchall()
            }
            wanted = set()
            for hsa_id, node in spec.alternatives:
                if hsa_id == unit.hsa_id:
                    self.refuse(source, node, "the unit itself is always an alternative; list other units")
                elif not self.conn.execute("SELECT 1 FROM care_unit WHERE hsa_id = %s", (hsa_id,)).fetchone():
                    self.refuse(source, node, f"no care unit {hsa_id}")
                else:
                    wanted.add(hsa_id)
            if not self.conn.execute(
                "SELECT 1 FROM time_type WHERE unit_hsa_id = %s AND code = %s", (unit.hsa_id, spec.code)
            ).fetchone():
                continue  # refused above
            for hsa_id in sorted(wanted - existing):
                self.conn.execute(
                    "INSERT INTO unit_alternative (unit_hsa_id, time_type_code, alternative_hsa_id)"
                    " VALUES (%s, %s, %s)",
                    (unit.hsa_id, spec.code, hsa_id),
                )
            for hsa_id in sorted(existing - wanted):
                self.conn.execute(
                    "DELETE FROM unit_alternative WHERE unit_hsa_id = %s AND time_type_code = %s"
                    " AND alternative_hsa_id = %s",
                    (unit.hsa_id, spec.code, hsa_id),
                )
            counts = self.report.counts["alternatives"]
            counts.created += len(wanted - existing)
            counts.removed += len(existing - wanted)
            counts.unchanged += len(wanted & existing)
