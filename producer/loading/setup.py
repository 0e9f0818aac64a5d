"""The set-up document: care units with their rules, care types, time types (and which units may
replace which), performers, resources, recurring templates and single slots.

A list that is given is complete: what it does not name is removed (refused while still in use).
A list left out leaves that part of the unit as it is. Only syntax is checked here; what depends on
the database (unknown codes, times in the past, overlaps) is checked set-wise with the slots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from producer.loading.documents import Node
from producer.loading.report import Problem, Report
from producer.loading.templates import WEEKDAYS, Template, Window, resolve_wall
from producer.staff.docbook import docbook_problem, is_markup
from producer.sweden.identifiers import is_valid_hsa_id, normalise_hsa_id

_WALL = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2})?)(Z|[+-]\d{2}:?\d{2})?")
_CLOCK = re.compile(r"([01]\d|2[0-4]):([0-5]\d)")
_WINDOW = re.compile(r"\s*(\S+)\s*[-–]\s*(\S+)\s*")
_DEADLINE = re.compile(r"(\d+)\s*([mhd])")
MAX_TEXT = 200


@dataclass
class CareTypeSpec:
    code: str
    name: str
    node: Node


@dataclass(frozen=True)
class Rules:
    """The booking rules of a time type (producer.calendar applies them); unset = the default."""

    self_booking: bool = True
    min_lead: timedelta = timedelta(0)
    horizon: timedelta | None = None
    max_active_per_resident: int | None = None
    change_deadline: timedelta | None = None  # None: the unit's
    message_allowed: bool | None = None  # None: the unit's
    purpose: str | None = None
    ep_unit_offer_id: str | None = None  # the offer (UnitOfferID) in Egen provhantering its campaigns give

    def values(self) -> tuple:
        return (
            self.self_booking, self.min_lead, self.horizon, self.max_active_per_resident,
            self.change_deadline, self.message_allowed, self.purpose, self.ep_unit_offer_id,
        )  # fmt: skip


RULE_COLUMNS = (
    "self_booking", "min_lead", "horizon", "max_active_per_resident", "change_deadline", "message_allowed", "purpose",
    "ep_unit_offer_id",
)  # fmt: skip


@dataclass
class TimeTypeSpec:
    code: str
    name: str
    duration_minutes: int
    care_type: str | None
    alternatives: list[tuple[str, Node]] | None
    node: Node
    rules: Rules = field(default_factory=Rules)


@dataclass
class ConsumerSpec:
    """A consumer allowed to change bookings at the unit until another deadline than residents."""

    hsa_id: str
    change_deadline: timedelta
    node: Node
    name: str | None = None  # how staff see it named (e.g. Egen provhantering: who booked a time)


@dataclass
class PerformerSpec:
    hsa_id: str
    title: str | None
    first_name: str
    last_name: str
    node: Node


@dataclass
class ResourceSpec:
    resource_id: str
    name: str
    node: Node


@dataclass
class Owner:
    """Who a slot is with: a performer, a resource, or both; and its time and care type."""

    performer: str | None
    resource: str | None
    time_type: str
    care_type: str | None


@dataclass
class TemplateSpec:
    owner: Owner
    weekdays: frozenset[int]
    windows: tuple[Window, ...]
    slot_minutes: int | None  # None: the time type's duration
    first: date
    last: date
    excluded: frozenset[date]
    node: Node

    def template(self, minutes: int) -> Template:
        return Template(self.weekdays, self.windows, self.slot_minutes or minutes, self.first, self.last, self.excluded)


@dataclass
class SlotSpec:
    owner: Owner
    start: datetime  # UTC
    end: datetime | None  # None: start + the time type's duration
    node: Node


@dataclass
class UnitSpec:
    hsa_id: str
    name: str | None
    message_allowed: bool | None
    change_deadline_minutes: int | None
    previous_hsa_id: str | None
    remove: bool
    medical_unit: tuple[str, str | None] | None  # (HSA-id, name) of the care unit with medical responsibility
    publish_to_ei: bool | None
    consumers: list[ConsumerSpec] | None
    care_types: list[CareTypeSpec] | None
    time_types: list[TimeTypeSpec] | None
    performers: list[PerformerSpec] | None
    resources: list[ResourceSpec] | None
    templates: list[TemplateSpec] = field(default_factory=list)
    slots: list[SlotSpec] = field(default_factory=list)
    node: Node | None = None


UNIT_FIELDS = {
    "hsa_id", "name", "message_allowed", "change_deadline", "previous_hsa_id", "remove", "medical_unit",
    "publish_to_ei", "consumers", "care_types", "time_types", "performers", "resources", "templates", "slots",
}  # fmt: skip
RULE_FIELDS = {
    "self_booking", "min_lead", "horizon", "max_active_per_resident", "change_deadline", "message_allowed", "purpose",
    "ep_unit_offer",
}  # fmt: skip
MAX_TIME_TYPE_NAME = 100  # 1177 shows at most 100 characters of a time type's name (seed 003)
MAX_PURPOSE = 10_000


class Reader:
    """Converts nodes to values, reporting each problem with its source, line and path."""

    def __init__(self, source: str, report: Report) -> None:
        self.source = source
        self.report = report
        self.failed = False

    def problem(self, node: Node, message: str) -> None:
        self.failed = True
        self.report.add(Problem(self.source, node.line, node.path or None, message))

    def mapping(self, node: Node, allowed: set[str], required: tuple[str, ...] = ()) -> dict[str, Node] | None:
        if not isinstance(node.value, dict):
            self.problem(node, "expected a mapping of fields")
            return None
        for name, child in node.value.items():
            if name not in allowed:
                self.problem(child, f"unknown field (expected one of: {', '.join(sorted(allowed))})")
        for name in required:
            if name not in node.value:
                self.problem(node, f"{name} is missing")
        return node.value

    def sequence(self, node: Node) -> list[Node]:
        if node.value is None:
            return []
        if not isinstance(node.value, list):
            self.problem(node, "expected a list")
            return []
        return node.value

    def text(self, node: Node | None, optional: bool = False) -> str | None:
        if node is None or node.value is None or node.value == "":
            if not optional and node is not None:
                self.problem(node, "must not be empty")
            return None
        if not isinstance(node.value, str):
            self.problem(node, "expected text")
            return None
        value = node.value.strip()
        if len(value) > MAX_TEXT:
            self.problem(node, f"longer than {MAX_TEXT} characters")
            return None
        return value

    def code(self, node: Node | None, optional: bool = False) -> str | None:
        value = self.text(node, optional)
        if value is not None and any(ch.isspace() for ch in value):
            self.problem(node, "a code has no spaces")
            return None
        return value

    def hsa(self, node: Node | None, optional: bool = False) -> str | None:
        value = self.text(node, optional)
        if value is None:
            return None
        value = normalise_hsa_id(value)
        if not is_valid_hsa_id(value):
            self.problem(node, f"{value[:40]!r} is not an HSA-id (SE + 10-12 digits + '-' + letters/digits)")
            return None
        return value

    def integer(self, node: Node, low: int, high: int) -> int | None:
        text = node.value if isinstance(node.value, str) else None
        if text is None or not re.fullmatch(r"\d+", text.strip()):
            self.problem(node, "expected a whole number")
            return None
        value = int(text)
        if not low <= value <= high:
            self.problem(node, f"must be between {low} and {high}")
            return None
        return value

    def boolean(self, node: Node) -> bool | None:
        text = node.value.strip().lower() if isinstance(node.value, str) and not node.quoted else None
        if text in ("true", "yes"):
            return True
        if text in ("false", "no"):
            return False
        self.problem(node, "expected true or false")
        return None

    def day(self, node: Node) -> date | None:
        try:
            return date.fromisoformat(str(node.value).strip()) if isinstance(node.value, str) else None
        except ValueError:
            pass
        self.problem(node, "expected a date YYYY-MM-DD")
        return None

    def clock(self, text: str, node: Node) -> tuple[time, bool] | None:
        """HH:MM, with 24:00 meaning the end of the day (returned as 00:00 of the next day)."""
        match = _CLOCK.fullmatch(text)
        if match is None or (match.group(1) == "24" and match.group(2) != "00"):
            self.problem(node, f"{text[:20]!r} is not a time of day HH:MM")
            return None
        if match.group(1) == "24":
            return time(0), True
        return time(int(match.group(1)), int(match.group(2))), False

    def instant(self, node: Node) -> datetime | None:
        """'YYYY-MM-DD HH:MM[:SS]' in Stockholm time (first occurrence in the repeated autumn hour;
        refused in the spring gap), or with an offset (Z, +01:00) for an exact instant."""
        text = node.value.strip() if isinstance(node.value, str) else ""
        match = _WALL.fullmatch(text)
        try:
            parsed = datetime.fromisoformat(text) if match else None
        except ValueError:
            parsed = None
        if parsed is None:
            self.problem(node, f"{text[:30]!r} is not a date and time YYYY-MM-DD HH:MM (Stockholm time)")
            return None
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
        resolved = resolve_wall(parsed)
        if resolved is None:
            self.problem(node, f"{text} does not exist in Swedish time (the spring DST gap)")
        return resolved

    def minutes(self, node: Node) -> int | None:
        """A duration: whole minutes, or e.g. '90m', '24h', '2d', '1d 12h'."""
        text = node.value.strip().lower() if isinstance(node.value, str) else ""
        if text.isdigit():
            return int(text)
        parts = _DEADLINE.findall(text)
        if parts and "".join(f"{n}{u}" for n, u in parts) == text.replace(" ", ""):
            return sum(int(n) * {"m": 1, "h": 60, "d": 1440}[u] for n, u in parts)
        self.problem(node, "expected a duration: minutes, or e.g. 90m, 24h, 2d")
        return None


def parse_setup(root: Node, source: str, report: Report) -> list[UnitSpec]:
    """The units of a set-up document; problems go to the report (the specs returned are the valid ones)."""
    r = Reader(source, report)
    top = r.mapping(root, {"units"}, ("units",))
    if top is None or "units" not in top:
        return []
    units = [_unit(r, node) for node in r.sequence(top["units"])]
    seen: dict[str, Node] = {}
    for unit in units:
        if unit is None:
            continue
        if unit.hsa_id in seen:
            r.problem(unit.node, f"unit {unit.hsa_id} is also described at line {seen[unit.hsa_id].line}")
        seen[unit.hsa_id] = unit.node
    return [u for u in units if u is not None]


def _unit(r: Reader, node: Node) -> UnitSpec | None:
    f = r.mapping(node, UNIT_FIELDS, ("hsa_id",))
    if f is None or "hsa_id" not in f:
        return None
    hsa_id = r.hsa(f["hsa_id"])
    remove = r.boolean(f["remove"]) if "remove" in f else False
    if hsa_id is None:
        return None
    if not remove and "name" not in f:
        r.problem(node, "name is missing")
    unit = UnitSpec(
        hsa_id=hsa_id,
        name=r.text(f["name"]) if "name" in f else None,
        message_allowed=r.boolean(f["message_allowed"]) if "message_allowed" in f else None,
        change_deadline_minutes=r.minutes(f["change_deadline"]) if "change_deadline" in f else None,
        previous_hsa_id=r.hsa(f["previous_hsa_id"]) if "previous_hsa_id" in f else None,
        remove=bool(remove),
        medical_unit=_medical_unit(r, f["medical_unit"]) if "medical_unit" in f else None,
        publish_to_ei=r.boolean(f["publish_to_ei"]) if "publish_to_ei" in f else None,
        consumers=_list(r, f, "consumers", _consumer),
        care_types=_list(r, f, "care_types", _care_type),
        time_types=_list(r, f, "time_types", _time_type),
        performers=_list(r, f, "performers", _performer),
        resources=_list(r, f, "resources", _resource),
        node=node,
    )
    unit.templates = _list(r, f, "templates", _template) or []
    unit.slots = _list(r, f, "slots", _slot) or []
    if remove and any(k in f for k in UNIT_FIELDS - {"hsa_id", "remove", "name"}):
        r.problem(f["remove"], "a unit to remove has nothing else to set up")
    return unit


def _list(r: Reader, f: dict[str, Node], key: str, one) -> list | None:
    if key not in f:
        return None
    items = [one(r, item) for item in r.sequence(f[key])]
    keys: dict[object, Node] = {}
    for item in items:
        if item is None:
            continue
        ident = getattr(item, "code", None) or getattr(item, "hsa_id", None) or getattr(item, "resource_id", None)
        if ident is None:
            continue
        if ident in keys:
            r.problem(item.node, f"{ident} is also given at line {keys[ident].line}")
        keys[ident] = item.node
    return [item for item in items if item is not None]


def _care_type(r: Reader, node: Node) -> CareTypeSpec | None:
    f = r.mapping(node, {"code", "name"}, ("code", "name"))
    if f is None or "code" not in f or "name" not in f:
        return None
    code, name = r.code(f["code"]), r.text(f["name"])
    return CareTypeSpec(code, name, node) if code and name else None


def _medical_unit(r: Reader, node: Node) -> tuple[str, str | None] | None:
    """`medical_unit: SE…-V100`, or a mapping with hsa_id and name."""
    if isinstance(node.value, dict):
        f = r.mapping(node, {"hsa_id", "name"}, ("hsa_id",))
        if f is None or "hsa_id" not in f:
            return None
        hsa_id = r.hsa(f["hsa_id"])
        return (hsa_id, r.text(f.get("name"), optional=True)) if hsa_id else None
    hsa_id = r.hsa(node)
    return (hsa_id, None) if hsa_id else None


def _consumer(r: Reader, node: Node) -> ConsumerSpec | None:
    f = r.mapping(node, {"hsa_id", "change_deadline", "name"}, ("hsa_id", "change_deadline"))
    if f is None or not {"hsa_id", "change_deadline"} <= f.keys():
        return None
    hsa_id, minutes = r.hsa(f["hsa_id"]), r.minutes(f["change_deadline"])
    name = r.text(f.get("name"), optional=True)
    if hsa_id and minutes is not None:
        return ConsumerSpec(hsa_id, timedelta(minutes=minutes), node, name)
    return None


def _rules(r: Reader, f: dict[str, Node]) -> Rules:
    def duration(key: str) -> timedelta | None:
        minutes = r.minutes(f[key]) if key in f else None
        return None if minutes is None else timedelta(minutes=minutes)

    horizon = duration("horizon")
    if horizon is not None and not horizon:
        r.problem(f["horizon"], "a horizon must be longer than 0 (leave it out for no limit)")
    purpose = None
    if "purpose" in f:
        purpose = f["purpose"].value.strip() if isinstance(f["purpose"].value, str) else None
        problem = "expected text" if purpose is None else (docbook_problem(purpose) if is_markup(purpose) else None)
        problem = f"DocBook {problem}" if problem and purpose is not None else problem
        if problem is None and len(purpose) > MAX_PURPOSE:
            problem = f"longer than {MAX_PURPOSE} characters"
        if problem:
            r.problem(f["purpose"], problem)
        purpose = purpose or None
    return Rules(
        self_booking=r.boolean(f["self_booking"]) is not False if "self_booking" in f else True,
        min_lead=duration("min_lead") or timedelta(0),
        horizon=horizon or None,
        max_active_per_resident=(
            r.integer(f["max_active_per_resident"], 1, 1000) if "max_active_per_resident" in f else None
        ),
        change_deadline=duration("change_deadline"),
        message_allowed=r.boolean(f["message_allowed"]) if "message_allowed" in f else None,
        purpose=purpose,
        ep_unit_offer_id=r.code(f["ep_unit_offer"]) if "ep_unit_offer" in f else None,
    )


def _time_type(r: Reader, node: Node) -> TimeTypeSpec | None:
    allowed = {"code", "name", "duration_minutes", "care_type", "alternatives"} | RULE_FIELDS
    f = r.mapping(node, allowed, ("code", "name", "duration_minutes"))
    if f is None or not {"code", "name", "duration_minutes"} <= f.keys():
        return None
    code, name = r.code(f["code"]), r.text(f["name"])
    if name is not None and len(name) > MAX_TIME_TYPE_NAME:
        r.problem(f["name"], f"longer than {MAX_TIME_TYPE_NAME} characters (1177 shows no more of a time type's name)")
        name = None
    minutes = r.integer(f["duration_minutes"], 1, 1440)
    rules = _rules(r, f)
    care_type = r.code(f.get("care_type"), optional=True)
    alternatives = None
    if "alternatives" in f:
        alternatives = []
        for item in r.sequence(f["alternatives"]):
            hsa = r.hsa(item)
            if hsa:
                alternatives.append((hsa, item))
    if code is None or name is None or minutes is None:
        return None
    return TimeTypeSpec(code, name, minutes, care_type, alternatives, node, rules)


def _performer(r: Reader, node: Node) -> PerformerSpec | None:
    f = r.mapping(node, {"hsa_id", "title", "first_name", "last_name"}, ("hsa_id", "first_name", "last_name"))
    if f is None or not {"hsa_id", "first_name", "last_name"} <= f.keys():
        return None
    hsa_id, first, last = r.hsa(f["hsa_id"]), r.text(f["first_name"]), r.text(f["last_name"])
    title = r.text(f.get("title"), optional=True)
    return PerformerSpec(hsa_id, title, first, last, node) if hsa_id and first and last else None


def _resource(r: Reader, node: Node) -> ResourceSpec | None:
    f = r.mapping(node, {"id", "name"}, ("id", "name"))
    if f is None or "id" not in f or "name" not in f:
        return None
    resource_id, name = r.code(f["id"]), r.text(f["name"])
    return ResourceSpec(resource_id, name, node) if resource_id and name else None


def _owner(r: Reader, f: dict[str, Node], node: Node) -> Owner | None:
    performer = r.hsa(f.get("performer"), optional=True)
    resource = r.code(f.get("resource"), optional=True)
    time_type = r.code(f["time_type"]) if "time_type" in f else None
    care_type = r.code(f.get("care_type"), optional=True)
    if performer is None and resource is None and not r.failed:
        r.problem(node, "a slot is with a performer or a resource (or both): give performer or resource")
        return None
    if time_type is None:
        return None
    return Owner(performer, resource, time_type, care_type)


def _template(r: Reader, node: Node) -> TemplateSpec | None:
    allowed = {"performer", "resource", "time_type", "care_type", "days", "hours", "slot_minutes", "from", "to"}
    allowed.add("except")
    f = r.mapping(node, allowed, ("time_type", "hours", "from", "to"))
    if f is None or not {"time_type", "hours", "from", "to"} <= f.keys():
        return None
    failed, r.failed = r.failed, False
    owner = _owner(r, f, node)
    weekdays = frozenset(range(5))
    if "days" in f:
        names = [(r.text(item) or "").lower()[:3] for item in r.sequence(f["days"])]
        if any(name not in WEEKDAYS for name in names) or not names:
            r.problem(f["days"], f"expected a list of weekdays: {', '.join(WEEKDAYS)}")
        weekdays = frozenset(WEEKDAYS.index(n) for n in names if n in WEEKDAYS)
    windows = []
    for item in r.sequence(f["hours"]) if isinstance(f["hours"].value, list) else [f["hours"]]:
        match = _WINDOW.fullmatch(item.value) if isinstance(item.value, str) else None
        if match is None:
            r.problem(item, "expected opening hours HH:MM-HH:MM")
            continue
        opens, closes = r.clock(match.group(1), item), r.clock(match.group(2), item)
        if opens is None or closes is None:
            continue
        if opens[1] or (not closes[1] and closes[0] <= opens[0]):
            r.problem(item, "closes before it opens")
            continue
        windows.append(Window(opens[0], closes[0], closes[1]))
    minutes = r.integer(f["slot_minutes"], 1, 1440) if "slot_minutes" in f else None
    first, last = r.day(f["from"]), r.day(f["to"])
    if first and last and last < first:
        r.problem(f["to"], "ends before from")
    excluded_nodes = r.sequence(f["except"]) if "except" in f else []
    excluded = frozenset(d for d in (r.day(item) for item in excluded_nodes) if d)
    ok = not r.failed and owner is not None and first is not None and last is not None
    r.failed = failed or r.failed
    if not ok:
        return None
    return TemplateSpec(owner, weekdays, tuple(windows), minutes, first, last, excluded, node)


def _slot(r: Reader, node: Node) -> SlotSpec | None:
    allowed = {"performer", "resource", "time_type", "care_type", "start", "end"}
    f = r.mapping(node, allowed, ("time_type", "start"))
    if f is None or "start" not in f or "time_type" not in f:
        return None
    failed, r.failed = r.failed, False
    owner = _owner(r, f, node)
    start = r.instant(f["start"])
    end = r.instant(f["end"]) if "end" in f and f["end"].value else None
    ok = not r.failed and owner is not None and start is not None
    r.failed = failed or r.failed
    return SlotSpec(owner, start, end, node) if ok else None
