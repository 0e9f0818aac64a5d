"""The two small TOML files replay takes: the variables file (--vars) and the rules file (--rules).

Variables file::

    patientId1 = "191212121212"          # ${patientId1} anywhere in a fixture
    logicalAddress = "SE2321000016-A100"

    [substitutions]                      # optional: replay's automatic substitutions
    logical_address = "SE2321000016-A100"  # for LogicalAddress and facility elements naming another unit
    units = ["SE2321000016-A100", "SE2321000016-A200"]  # the units served: left as they are
    resident = "191212121212"            # for an Actor whose actorId is no personnummer

Rules file::

    # values that may differ between the recorded answer and the new one: an element's local name
    # (anywhere) or a path of local names ending at it, from the Body's element
    ignore = ["MakeBookingResponse/bookingId"]

    [[expect]]                  # instead of the default (paired: "same"; unpaired: "answer")
    fixtures = "GetSubjectOfCareSchedule/*VP004*"   # a glob on the path below DIR
    outcome = "fault"           # "same", "answer" (any answer without a fault) or "fault"
    fault_contains = "subject_of_care"              # optional: text the faultstring must hold
    # result_code = "ERROR"     # optional, with "answer": the resultCode it must have
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from producer.testkit.facts import DemoFacts

OUTCOMES = ("same", "answer", "fault")


class KitFileError(ValueError):
    """A variables or rules file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Substitutions:
    placeholders: dict[str, str] = field(default_factory=dict)
    logical_address: str = ""
    units: tuple[str, ...] = ()
    resident: str = ""


@dataclass(frozen=True)
class Expectation:
    fixtures: str  # glob
    outcome: str
    fault_contains: str | None = None
    result_code: str | None = None

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.fixtures)


@dataclass(frozen=True)
class Rules:
    ignore: tuple[str, ...] = ()
    expect: tuple[Expectation, ...] = ()

    def expectation(self, name: str, paired: bool) -> Expectation:
        """The first [[expect]] that matches the fixture, else the default."""
        for expectation in self.expect:
            if expectation.matches(name):
                return expectation
        return Expectation("*", "same" if paired else "answer")


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise KitFileError(f"{path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise KitFileError(f"{path} is not valid TOML: {exc}") from None


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise KitFileError(f"{where} must be a string")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise KitFileError(f"{where} must be a list of strings")
    return tuple(value)


def read_vars(path: Path | None, facts: DemoFacts) -> Substitutions:
    """The placeholders and substitutions; the demo's values where the file says nothing."""
    document = _load(path) if path else {}
    placeholders: dict[str, str] = {}
    table: dict[str, Any] = {}
    for key, value in document.items():
        if key == "substitutions":
            if not isinstance(value, dict):
                raise KitFileError(f"{path}: substitutions must be a [substitutions] table")
            table = value
        else:
            placeholders[key] = _string(value, f"{path}: {key}")
    unknown = set(table) - {"logical_address", "units", "resident"}
    if unknown:
        raise KitFileError(
            f"{path}: unknown setting [substitutions] {sorted(unknown)[0]} (known: logical_address, units, resident)"
        )
    where = f"{path}: [substitutions]"
    return Substitutions(
        placeholders=placeholders,
        logical_address=_string(table.get("logical_address", facts.unit), f"{where} logical_address"),
        units=_strings(table.get("units", list(facts.units)), f"{where} units"),
        resident=_string(table.get("resident", facts.resident), f"{where} resident"),
    )


def read_rules(path: Path | None) -> Rules:
    if path is None:
        return Rules()
    document = _load(path)
    unknown = set(document) - {"ignore", "expect"}
    if unknown:
        raise KitFileError(f"{path}: unknown setting {sorted(unknown)[0]} (known: ignore, [[expect]])")
    ignore = _strings(document.get("ignore", []), f"{path}: ignore")
    tables = document.get("expect", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise KitFileError(f"{path}: expectations are written as [[expect]] tables")
    expect = []
    for number, table in enumerate(tables, start=1):
        where = f"{path}: [[expect]] number {number}"
        unknown = set(table) - {"fixtures", "outcome", "fault_contains", "result_code"}
        if unknown:
            raise KitFileError(f"{where}: unknown setting {sorted(unknown)[0]}")
        outcome = _string(table.get("outcome"), f"{where} outcome")
        if outcome not in OUTCOMES:
            raise KitFileError(f"{where}: outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
        fault_contains = table.get("fault_contains")
        result_code = table.get("result_code")
        if fault_contains is not None and outcome != "fault":
            raise KitFileError(f'{where}: fault_contains goes with outcome = "fault"')
        if result_code is not None and outcome != "answer":
            raise KitFileError(f'{where}: result_code goes with outcome = "answer"')
        expect.append(
            Expectation(
                fixtures=_string(table.get("fixtures"), f"{where} fixtures"),
                outcome=outcome,
                fault_contains=None if fault_contains is None else _string(fault_contains, f"{where} fault_contains"),
                result_code=None if result_code is None else _string(result_code, f"{where} result_code"),
            )
        )
    return Rules(ignore, tuple(expect))
