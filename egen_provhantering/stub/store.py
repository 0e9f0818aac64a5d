"""The stub's memory: its register (residents, unit offers), the time limit, the offers given and
taken back, one log line per SOAP call, and the last raw requests. One lock guards it all: granian
runs calls on several threads, and "already given within the limit" must be decided atomically.

Identical offers (seed 000: "en identisk tilldelning"): by default those with the same AccessUnitID,
PersonalNumber and UnitOfferID, i.e. the same unit's offer to the same resident, whoever gives it and
whether the resident is notified; /_stub/config's identical_fields can name any of the seven members.
Only offers still given count: one taken back by Undo no longer blocks a new one.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from egen_provhantering.contract import REQUEST_FIELDS
from egen_provhantering.stub.config import ANY, StubSettings
from egen_provhantering.stub.rules import NAMES, Register, Request

DEFAULT_IDENTICAL = ("AccessUnitID", "PersonalNumber", "UnitOfferID")
KEPT_REQUESTS = 200
CONFIG_FIELDS = {"residents", "unit_offer_ids", "limit_seconds", "identical_fields", "nil_lists"}
_ATTRIBUTE = dict(REQUEST_FIELDS)


class ConfigError(ValueError):
    """A /_stub/config request the stub cannot use; the message names the field."""


@dataclass(frozen=True)
class StubConfig:
    """What POST /_stub/config changes (a reset returns to the start settings)."""

    residents: frozenset[str] | None
    unit_offer_ids: frozenset[str] | None
    limit_seconds: float
    identical_fields: tuple[str, ...] = DEFAULT_IDENTICAL
    nil_lists: bool = True  # empty lists written xsi:nil="true", as a WCF DataContract writes null members

    @classmethod
    def of(cls, settings: StubSettings) -> StubConfig:
        def known(values: tuple[str, ...] | None) -> frozenset[str] | None:
            return None if values is None else frozenset(values)

        return cls(known(settings.residents), known(settings.unit_offer_ids), settings.limit_seconds)

    @property
    def register(self) -> Register:
        return Register(self.residents, self.unit_offer_ids)

    def changed(self, spec: Any) -> StubConfig:
        if not isinstance(spec, dict):
            raise ConfigError("expected a JSON object")
        unknown = set(spec) - CONFIG_FIELDS
        if unknown:
            raise ConfigError(
                f"unknown fields: {', '.join(sorted(unknown))} (known: {', '.join(sorted(CONFIG_FIELDS))})"
            )
        new = self
        for name in ("residents", "unit_offer_ids"):
            if name in spec:
                new = replace(new, **{name: _known(spec[name], name)})
        if "limit_seconds" in spec:
            limit = spec["limit_seconds"]
            if isinstance(limit, bool) or not isinstance(limit, int | float) or not 0 <= limit <= 10**8:
                raise ConfigError("limit_seconds must be a number from 0 to 100000000")
            new = replace(new, limit_seconds=float(limit))
        if "identical_fields" in spec:
            names = spec["identical_fields"]
            if not isinstance(names, list) or not names or not set(names) <= set(NAMES):
                raise ConfigError(f"identical_fields must be a non-empty list of {', '.join(NAMES)}")
            new = replace(new, identical_fields=tuple(n for n in NAMES if n in names))
        if "nil_lists" in spec:
            if not isinstance(spec["nil_lists"], bool):
                raise ConfigError("nil_lists must be true or false")
            new = replace(new, nil_lists=spec["nil_lists"])
        return new

    def describe(self) -> dict[str, Any]:
        def listed(values: frozenset[str] | None) -> list[str] | str:
            return ANY if values is None else sorted(values)

        return {
            "residents": listed(self.residents),
            "unit_offer_ids": listed(self.unit_offer_ids),
            "limit_seconds": self.limit_seconds,
            "identical_fields": list(self.identical_fields),
            "nil_lists": self.nil_lists,
        }


def _known(value: Any, name: str) -> frozenset[str] | None:
    if value == ANY:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f'{name} must be a list of strings, or "*" for every valid one')
    return frozenset(v.strip() for v in value)


@dataclass
class Given:
    """One offer given (and maybe taken back)."""

    seq: int
    call: int
    request_id: str | None
    given_at: str  # ISO 8601, UTC
    access_unit_id: str
    hc_professional_id: str
    hc_first_name: str
    hc_last_name: str
    notify_resident: bool
    personal_number: str
    unit_offer_id: str
    undone_at: str | None = None
    undone_by_call: int | None = None
    monotonic: float = field(default=0.0, repr=False)

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        del out["monotonic"]
        return out


class Store:
    def __init__(self, settings: StubSettings) -> None:
        self._start = StubConfig.of(settings)
        self._lock = threading.Lock()
        self.config = self._start
        self._offers: list[Given] = []
        self._log: list[dict[str, Any]] = []
        self._calls = 0
        self._requests: deque[dict[str, Any]] = deque(maxlen=KEPT_REQUESTS)

    # -- calls -------------------------------------------------------------------------------------

    def count_call(self) -> int:
        with self._lock:
            self._calls += 1
            return self._calls

    def keep_request(self, call: int, body: bytes, headers: dict[str, str]) -> None:
        with self._lock:
            self._requests.append({"call": call, "body": body.decode("utf-8", "replace"), **headers})

    def note(self, call: int, operation: str, outcome: str, request: Request | None, request_id: str | None) -> None:
        """One log line per SOAP call: its outcome (given, already_given, undone, nothing_to_undo, refused,
        technical, down, fault)."""
        values = {} if request is None else request.values
        with self._lock:
            self._log.append(
                {
                    "seq": len(self._log) + 1,
                    "call": call,
                    "operation": operation,
                    "outcome": outcome,
                    "personal_number": values.get("PersonalNumber"),
                    "unit_offer_id": values.get("UnitOfferID"),
                    "request_id": request_id,
                    "at": _now(),
                }
            )

    # -- the two operations -------------------------------------------------------------------------

    def add(self, call: int, request: Request, request_id: str | None) -> bool:
        """Give the offer; True (and nothing given) when an identical one was given within the limit."""
        with self._lock:
            now = time.monotonic()
            latest = self._latest(request)
            if latest is not None and now - latest.monotonic < self.config.limit_seconds:
                return True
            offer = request.offer()
            self._offers.append(
                Given(
                    seq=len(self._offers) + 1,
                    call=call,
                    request_id=request_id,
                    given_at=_now(),
                    monotonic=now,
                    **offer,  # type: ignore[arg-type]  # every member present: refusals() passed
                )
            )
            return False

    def undo(self, call: int, request: Request) -> bool:
        """Take back the latest identical offer still given; False when there is none."""
        with self._lock:
            latest = self._latest(request)
            if latest is None:
                return False
            latest.undone_at = _now()
            latest.undone_by_call = call
            return True

    def _latest(self, request: Request) -> Given | None:
        wanted = {_ATTRIBUTE[name]: request.offer()[_ATTRIBUTE[name]] for name in self.config.identical_fields}
        for offer in reversed(self._offers):
            if offer.undone_at is None and all(getattr(offer, key) == value for key, value in wanted.items()):
                return offer
        return None

    # -- the test API -------------------------------------------------------------------------------

    def configure(self, spec: Any) -> dict[str, Any]:
        with self._lock:
            self.config = self.config.changed(spec)
            return self.config.describe()

    def given(self, personal_number: str | None = None) -> list[dict[str, Any]]:
        """Offers still given (not taken back), oldest first; of one resident when named."""
        with self._lock:
            return [
                o.public() for o in self._offers if o.undone_at is None and personal_number in (None, o.personal_number)
            ]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            by_resident: dict[str, list[dict[str, Any]]] = {}
            for offer in self._offers:
                if offer.undone_at is None:
                    by_resident.setdefault(offer.personal_number, []).append(offer.public())
            return {
                "given": by_resident,
                "undone": [o.public() for o in self._offers if o.undone_at is not None],
                "calls": self._calls,
                "log": list(self._log),
                "config": self.config.describe(),
            }

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        with self._lock:
            self.config = self._start
            self._offers.clear()
            self._log.clear()
            self._calls = 0
            self._requests.clear()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
