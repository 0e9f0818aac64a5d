"""The audit trail of resident-facing changes: who did what to which booking, through which
consumer, when. The durable record is the booking's history (booking_event, written in the
change's own transaction, with the same fields); these log lines give operations the same facts,
refusals included, on the `tidbok.audit` logger (the resident's number masked like every line)."""

from __future__ import annotations

import logging

from producer.call import Call
from producer.codec import Decoded

log = logging.getLogger("tidbok.audit")
CHANGES = frozenset({"MakeBooking", "UpdateBooking", "CancelBooking"})


def record_call(call: Call, request: Decoded, result: Decoded) -> None:
    """One line per booking change asked for through SOAP, whatever its result."""
    if call.interaction not in CHANGES:
        return
    slot = request.get("requestedTimeslot") or {}
    booking = result.get("bookingId") or request.get("bookingId") or slot.get("bookingId") or "-"
    log.info(
        "%s %s booking %s unit %s actor %s %s caller %s original consumer %s correlation %s",
        call.interaction,
        result.get("resultCode", "-"),
        booking,
        call.unit.hsa_id,
        call.actor_type or "-",
        call.actor_id or "-",
        call.caller or "-",
        call.consumer_hsa_id or "-",
        call.correlation_id or "-",
        extra={
            "audit": {
                "operation": call.interaction,
                "result": result.get("resultCode"),
                "booking_id": booking,
                "unit": call.unit.hsa_id,
                "actor_type": call.actor_type,
                "actor_id": call.actor_id,
                "caller": call.caller,
                "original_consumer": call.consumer_hsa_id,
                "correlation_id": call.correlation_id,
                "at": call.now.isoformat(),
            }
        },
    )
