"""Fault injection: what the next SOAP calls suffer (POST /_stub/control).

down: HTTP 503 with an empty body, what IIS answers for a stopped WCF application (a refused
connection is a stopped stub or a closed port). slow: the call is handled, then the answer waits
(a caller that timed out has still given the offer). technical: a TechnicalErrorList, nothing given.
`remaining` counts affected calls down and then reverts to ok by itself; `fraction` affects each
call with that probability (seeded by `seed` when given, so a test can count on it).
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from egen_provhantering.contract import OPERATIONS

MODES = ("ok", "down", "slow", "technical")
DEFAULT_DELAY_SECONDS = 3.0
MAX_DELAY_SECONDS = 600.0
FIELDS = {"mode", "delay_seconds", "remaining", "fraction", "seed", "operations"}


class ControlError(ValueError):
    """The control request is not understood; the message names the field."""


@dataclass(frozen=True)
class Behaviour:
    mode: str = "ok"
    delay_seconds: float = 0.0
    remaining: int | None = None  # None: until changed
    fraction: float = 1.0
    seed: int | None = None
    operations: tuple[str, ...] = tuple(OPERATIONS)


OK = Behaviour()


def _number(spec: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = spec.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ControlError(f"{name} must be a number from {low:g} to {high:g}")
    return float(value)


def parse_behaviour(spec: Any) -> Behaviour:
    if not isinstance(spec, dict):
        raise ControlError("expected a JSON object")
    unknown = set(spec) - FIELDS
    if unknown:
        raise ControlError(f"unknown fields: {', '.join(sorted(unknown))} (known: {', '.join(sorted(FIELDS))})")
    mode = spec.get("mode", "ok")
    if mode not in MODES:
        raise ControlError(f"mode must be one of {', '.join(MODES)}")
    delay = _number(spec, "delay_seconds", DEFAULT_DELAY_SECONDS if mode == "slow" else 0.0, 0, MAX_DELAY_SECONDS)
    fraction = _number(spec, "fraction", 1.0, 0, 1)
    remaining = spec.get("remaining")
    if remaining is not None and (isinstance(remaining, bool) or not isinstance(remaining, int) or remaining < 1):
        raise ControlError("remaining must be a whole number of at least 1, or null")
    seed = spec.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ControlError("seed must be a whole number, or null")
    operations = spec.get("operations", list(OPERATIONS))
    if not isinstance(operations, list) or not operations or not set(operations) <= set(OPERATIONS):
        raise ControlError(f"operations must be a non-empty list of {', '.join(OPERATIONS)}")
    return Behaviour(
        mode=mode,
        delay_seconds=delay,
        remaining=None if mode == "ok" else remaining,
        fraction=fraction,
        seed=seed,
        operations=tuple(dict.fromkeys(operations)),
    )


@dataclass
class Control:
    _current: Behaviour = OK
    _random: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._current = behaviour
            self._random = random.Random(behaviour.seed)

    def reset(self) -> None:
        self.set(OK)

    def take(self, operation: str) -> Behaviour:
        """The behaviour for one arriving call, counting it against `remaining` when it is affected."""
        with self._lock:
            current = self._current
            if current.mode == "ok" or operation not in current.operations:
                return OK
            if current.fraction < 1.0 and self._random.random() >= current.fraction:
                return OK
            if current.remaining is not None:
                left = current.remaining - 1
                self._current = OK if left == 0 else replace(current, remaining=left)
            return current

    def describe(self) -> dict[str, Any]:
        with self._lock:
            described = asdict(self._current)
        described["operations"] = list(described["operations"])
        return described
