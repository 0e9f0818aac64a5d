"""Fault injection: what the next SOAP calls should suffer (POST /_stub/control).

Tests of a producer's outbox need an EI that is down, slow or refusing for a known number of calls
and then recovers; `remaining` counts those calls down and then reverts to ok by itself, so a test
need not race the producer's retry loop to switch the EI back on.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from engagement_index.stub.contract import INTERACTIONS
from engagement_index.stub.faults import CODES

MODES = ("ok", "down", "slow", "fault")
DEFAULT_DELAY_SECONDS = 3.0
MAX_DELAY_SECONDS = 600.0


class ControlError(ValueError):
    """The control request is not understood; the message says which field is wrong."""


@dataclass(frozen=True)
class Behaviour:
    mode: str = "ok"
    delay_seconds: float = 0.0
    fault_code: str | None = None
    remaining: int | None = None  # None: until changed
    operations: tuple[str, ...] = ("Update",)


OK = Behaviour()


def parse_behaviour(spec: Any) -> Behaviour:
    if not isinstance(spec, dict):
        raise ControlError("expected a JSON object")
    unknown = set(spec) - {"mode", "delay_seconds", "fault_code", "remaining", "operations"}
    if unknown:
        raise ControlError(f"unknown fields: {', '.join(sorted(unknown))}")
    mode = spec.get("mode", "ok")
    if mode not in MODES:
        raise ControlError(f"mode must be one of {', '.join(MODES)}")
    delay = spec.get("delay_seconds", DEFAULT_DELAY_SECONDS if mode == "slow" else 0.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY_SECONDS:
        raise ControlError(f"delay_seconds must be a number from 0 to {MAX_DELAY_SECONDS:.0f}")
    code = spec.get("fault_code")
    if mode == "fault" and code not in CODES:
        raise ControlError(f"mode fault needs fault_code, one of {', '.join(CODES)}")
    remaining = spec.get("remaining")
    if remaining is not None and (isinstance(remaining, bool) or not isinstance(remaining, int) or remaining < 1):
        raise ControlError("remaining must be a whole number of at least 1, or null")
    operations = spec.get("operations", ["Update"])
    if not isinstance(operations, list) or not operations or not set(operations) <= set(INTERACTIONS):
        raise ControlError(f"operations must be a non-empty list of {', '.join(INTERACTIONS)}")
    return Behaviour(
        mode=mode,
        delay_seconds=float(delay),
        fault_code=code if mode == "fault" else None,
        remaining=None if mode == "ok" else remaining,
        operations=tuple(dict.fromkeys(operations)),
    )


@dataclass
class Control:
    _current: Behaviour = OK
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._current = behaviour

    def reset(self) -> None:
        self.set(OK)

    def take(self, operation: str) -> Behaviour:
        """The behaviour for one arriving call, counting it against `remaining`."""
        with self._lock:
            current = self._current
            if current.mode == "ok" or operation not in current.operations:
                return OK
            if current.remaining is not None:
                left = current.remaining - 1
                self._current = OK if left == 0 else Behaviour(**{**asdict(current), "remaining": left})
            return current

    def describe(self) -> dict[str, Any]:
        with self._lock:
            described = asdict(self._current)
        described["operations"] = list(described["operations"])
        return described
