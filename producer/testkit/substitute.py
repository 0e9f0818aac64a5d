"""Replay's substitutions: what turns a fixture recorded elsewhere (or last month) into a request the
demo producer can act on. In this order:

1. ``${…}`` placeholders: ``${monday}``, ``${monday+N}`` (the demo week's Monday, N days on, as
   YYYYMMDD), ``${monday+NTHH:MM}`` (that day at that Stockholm time, as YYYYMMDDhhmmss), the same
   with ``today``; every other name from the variables file. A name without a value stops the
   fixture (it is listed, not sent).
2. Logical address: a LogicalAddress header naming a unit not served here (not in ``units``) gets
   ``logical_address``; a missing one is added. The same for every ``healthcare_facility`` and
   ``healthcare_facility_med`` element.
3. Actor: an actorType outside the contract's two (an OID, ``?``) becomes ``subject_of_care``; a
   resident's actorId that is no valid personnummer becomes ``resident``. The body's
   ``subject_of_care`` is never changed (negative tests stay negative).
4. Dates: a fixture of ours names the demo week it was recorded against; its dates and times
   (startDateInclusive, endDateInclusive, date, startTimeInclusive, endTimeExclusive) move by the
   whole weeks between that week and the demo week now, in Stockholm wall time. Its recorded answer
   moves the same way before the comparison.

A fixture that needs none of these is sent byte for byte as it is in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from lxml import etree

from producer.soap.scheduling import ACTOR, HEADERS_NS, LOGICAL_ADDRESS
from producer.sweden.identifiers import check_subject_of_care_id
from producer.testkit.files import ENVELOPE, PARSER, SOAP_ENV
from producer.testkit.kitfiles import Substitutions

HEADER = f"{{{SOAP_ENV}}}Header"
FACILITY_ELEMENTS = frozenset({"healthcare_facility", "healthcare_facility_med"})
ACTOR_TYPES = ("subject_of_care", "subject_of_care_agent")
DATE_ELEMENTS = frozenset({"startDateInclusive", "endDateInclusive", "date"})
TIME_ELEMENTS = frozenset({"startTimeInclusive", "endTimeExclusive"})
_PLACEHOLDER = re.compile(rb"\$\{([^{}]*)\}")
_RELATIVE = re.compile(r"(monday|today)(?:([+-][0-9]{1,3}))?(?:T([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?)?")


class Unresolved(Exception):
    """Placeholders without a value: the fixture cannot be sent."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join("${" + n + "}" for n in names))
        self.names = names


@dataclass
class Prepared:
    body: bytes
    changes: list[str] = field(default_factory=list)  # what was substituted, for --verbose


def relative_value(name: str, monday: date, today: date) -> str | None:
    """The value of a date placeholder (``monday+7T09:00``), or None if `name` is not one."""
    found = _RELATIVE.fullmatch(name)
    if not found:
        return None
    anchor, offset, hour, minute, second = found.groups()
    day = (monday if anchor == "monday" else today) + timedelta(days=int(offset or 0))
    if hour is None:
        return day.strftime("%Y%m%d")
    moment = datetime(day.year, day.month, day.day, int(hour), int(minute), int(second or 0))
    return moment.strftime("%Y%m%d%H%M%S")


def expand_placeholders(data: bytes, subs: Substitutions, monday: date, today: date) -> tuple[bytes, list[str]]:
    """``${…}`` replaced (the values XML-escaped); raises Unresolved naming those without a value."""
    missing: list[str] = []
    used: list[str] = []

    def value(match: re.Match[bytes]) -> bytes:
        name = match.group(1).decode("utf-8", "replace")
        found = subs.placeholders.get(name)
        if found is None:
            found = relative_value(name, monday, today)
        if found is None:
            if name not in missing:
                missing.append(name)
            return match.group(0)
        if f"${{{name}}} → {found}" not in used:
            used.append(f"${{{name}}} → {found}")
        return found.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").encode()

    expanded = _PLACEHOLDER.sub(value, data)
    if missing:
        raise Unresolved(missing)
    return expanded, used


def shift_dates(element: etree._Element, days: int) -> int:
    """Move every date and time element below `element` by `days` (wall time); returns how many moved."""
    moved = 0
    if days == 0:
        return 0
    for node in element.iter():
        if not isinstance(node.tag, str) or node.text is None:
            continue
        local = etree.QName(node).localname
        text = node.text.strip()
        try:
            if local in DATE_ELEMENTS and len(text) == 8 and text.isdigit():
                node.text = (datetime.strptime(text, "%Y%m%d") + timedelta(days=days)).strftime("%Y%m%d")
            elif local in TIME_ELEMENTS and len(text) == 14 and text.isdigit():
                node.text = (datetime.strptime(text, "%Y%m%d%H%M%S") + timedelta(days=days)).strftime("%Y%m%d%H%M%S")
            else:
                continue
        except ValueError:
            continue
        moved += 1
    return moved


def prepare(raw: bytes, subs: Substitutions, monday: date, today: date, recorded_week: date | None) -> Prepared:
    """The request to send for a fixture's bytes (see the module's docstring); raises Unresolved."""
    data, changes = expand_placeholders(raw, subs, monday, today)
    root = etree.fromstring(data, PARSER)
    if root.tag != ENVELOPE:
        raise ValueError("the root element is no longer a SOAP 1.1 Envelope")
    served = {unit.upper() for unit in subs.units}
    edits: list[str] = []

    header = root.find(HEADER)
    if header is None:
        header = etree.Element(HEADER)
        root.insert(0, header)
    address = header.find(LOGICAL_ADDRESS)
    if address is None:
        address = etree.SubElement(header, LOGICAL_ADDRESS)
        address.text = subs.logical_address
        edits.append(f"LogicalAddress added: {subs.logical_address}")
    elif (address.text or "").strip().upper() not in served:
        edits.append(f"LogicalAddress {(address.text or '').strip() or '(empty)'} → {subs.logical_address}")
        address.text = subs.logical_address

    body = root.find(f"{{{SOAP_ENV}}}Body")
    for node in body.iter() if body is not None else ():
        if not isinstance(node.tag, str) or etree.QName(node).localname not in FACILITY_ELEMENTS:
            continue
        value = (node.text or "").strip()
        if value.upper() not in served:
            edits.append(f"{etree.QName(node).localname} {value or '(empty)'} → {subs.logical_address}")
            node.text = subs.logical_address

    actor = header.find(ACTOR)
    if actor is not None:
        kind = actor.find(f"{{{HEADERS_NS}}}actorType")
        if kind is not None and (kind.text or "").strip() not in ACTOR_TYPES:
            edits.append(f"actorType {(kind.text or '').strip() or '(empty)'} → subject_of_care")
            kind.text = "subject_of_care"
        who = actor.find(f"{{{HEADERS_NS}}}actorId")
        resident = kind is None or (kind.text or "").strip() == "subject_of_care"
        if who is not None and resident and check_subject_of_care_id((who.text or "").strip()) is not None:
            edits.append("actorId (no valid personnummer) → the demo resident")
            who.text = subs.resident

    if recorded_week is not None and body is not None:
        days = (monday - recorded_week).days
        moved = shift_dates(body, days)
        if moved:
            edits.append(f"{moved} date(s) moved {days:+d} days (recorded in the week of {recorded_week})")

    if not edits:
        return Prepared(data, changes)
    return Prepared(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), changes + edits)
