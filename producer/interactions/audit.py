"""The audit trail of resident-facing changes: who did what to which booking, through which
consumer, when. The durable record is the booking's history (booking_event, written in the
change's own transaction, with the same fields); these log lines give operations the same facts,
refusals included, on the `tidbok.audit` logger (the resident's number masked like every line)."""

from __future__ import annotations

import logging
import re

from producer.interactions.call import Call
from producer.soap.codec import Decoded

log = logging.getLogger("tidbok.audit")
CHANGES = frozenset({"MakeBooking", "UpdateBooking", "CancelBooking"})
_NOT_ID = re.compile(r"[^A-Za-z0-9._:@/+=-]")


def _field(value: str | None) -> str | None:
    """Headers and request values are the caller's own text: in the line each keeps the characters
    ids are made of (others become "?") and 128 of them, so it stays one field and cannot forge
    the others. The booking's history keeps them as sent."""
    return None if value is None else _NOT_ID.sub("?", value[:128])


def record_call(call: Call, request: Decoded, result: Decoded) -> None:
    """One line per booking change asked for through SOAP, whatever its result."""
    if call.interaction not in CHANGES:
        return
    slot = request.get("requestedTimeslot") or {}
    booking = _field(result.get("bookingId") or request.get("bookingId") or slot.get("bookingId")) or "-"
    actor_id, consumer, correlation = _field(call.actor_id), _field(call.consumer_hsa_id), _field(call.correlation_id)
    log.info(
        "%s %s booking %s unit %s actor %s %s caller %s original consumer %s correlation %s",
        call.interaction,
        result.get("resultCode", "-"),
        booking,
        call.unit.hsa_id,
        call.actor_type or "-",
        actor_id or "-",
        call.caller or "-",
        consumer or "-",
        correlation or "-",
        extra={
            "audit": {
                "operation": call.interaction,
                "result": result.get("resultCode"),
                "booking_id": booking,
                "unit": call.unit.hsa_id,
                "actor_type": call.actor_type,
                "actor_id": actor_id,
                "caller": call.caller,
                "original_consumer": consumer,
                "correlation_id": correlation,
                "at": call.now.isoformat(),
            }
        },
    )
