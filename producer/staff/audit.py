"""The audit trail of staff changes: one `tidbok.audit` line per change asked for (done or refused),
as SOAP changes have (producer.interactions.audit). The durable record stays the booking's history;
these lines give operations who acted, through which channel (web, api, cli), on what, and the result."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from producer.staff.actor import Staff
from producer.staff.errors import StaffError
from producer.staff.results import BatchReport, Change, Retried, Withdrawn

log = logging.getLogger("tidbok.audit")
P = ParamSpec("P")
R = TypeVar("R")


def audited(operation: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorates a staff change `f(conn, staff, [booking_id], ..., unit=...)`: one line after it,
    with its result (OK, UNCHANGED, or REFUSED and the field), never the resident's personnummer."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        # the third positional argument names what was acted on (a booking id, a time type's code);
        # a batch's third is its CSV, personal data that the audit line must never carry
        names_it = list(inspect.signature(function).parameters)[2:3] in (["booking_id"], ["code"])

        @functools.wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            staff = args[1] if len(args) > 1 else kwargs.get("staff")
            named = args[2] if names_it and len(args) > 2 and isinstance(args[2], str) else None
            unit = kwargs.get("unit")
            try:
                result = function(*args, **kwargs)
            except StaffError as error:
                record(staff, operation, f"REFUSED {error.field}", named, unit)
                raise
            record(staff, operation, *_outcome(result, named, unit))
            return result

        return run

    return decorate


def _outcome(result: Any, named: str | None, unit: Any) -> tuple[str, str | None, Any]:
    if isinstance(result, Change):
        return ("OK" if result.changed else "UNCHANGED"), result.booking.booking_id, result.booking.unit
    if isinstance(result, BatchReport):
        counts = f"OK invited {len(result.invited)} already {len(result.already_invited)} invalid {len(result.invalid)}"
        if result.offers is not None:
            counts += f" offers queued {len(result.offers.queued)} already {len(result.offers.already_offered)}"
        return counts, None, result.unit
    if isinstance(result, Retried):
        return f"OK campaign {result.campaign} queued {result.queued}", None, result.unit
    if isinstance(result, Withdrawn):
        return f"OK campaign {result.campaign} {result.done}", None, result.unit
    if isinstance(result, list):
        return f"OK {len(result)} booking(s)", None, unit
    return "OK", named, unit


def record(staff: Any, operation: str, result: str, booking_id: str | None, unit: Any) -> None:
    hsa_id = staff.hsa_id if isinstance(staff, Staff) else "-"
    via = staff.via if isinstance(staff, Staff) else "-"
    log.info(
        "%s %s booking %s unit %s actor staff %s via %s",
        operation,
        result,
        booking_id or "-",
        str(unit or "-").upper(),
        hsa_id,
        via,
        extra={
            "audit": {
                "operation": operation,
                "result": result,
                "booking_id": booking_id,
                "unit": str(unit).upper() if unit else None,
                "actor_type": "staff",
                "actor_id": hsa_id,
                "via": via,
                "at": datetime.now(UTC).isoformat(),
            }
        },
    )
