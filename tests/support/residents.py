"""Residents in tests: fresh personnummer, and what a resident sees of their bookings over SOAP."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any


def luhn(nine_digits: str) -> int:
    """The personnummer check digit over YYMMDDNNN (written here, not imported: tests judge the producer)."""
    total = 0
    for index, char in enumerate(nine_digits):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10


class Residents:
    """``new_resident()``: a valid personnummer not handed out before, one birth date each.

    Each test module counts from a birth date of its own (and a serial number of its own), so
    modules that share a producer never meet in a resident."""

    def __init__(self, first_born: date, serial: str) -> None:
        self.first_born = first_born
        self.serial = serial
        self._days = itertools.count(1)

    def __call__(self, bad_check_digit: bool = False) -> str:
        born = self.first_born + timedelta(days=next(self._days))
        body = f"{born:%Y%m%d}{self.serial}"
        digit = luhn(body[2:])
        return body + str((digit + 1) % 10 if bad_check_digit else digit)


def as_resident(resident: str) -> tuple[str, str]:
    """The Actor header of a resident acting for themselves."""
    return (resident, "subject_of_care")


# ``call(op, logical_address, actor, **body)``: a support.Caller, or a test's own client with that signature.
Call = Callable[..., Any]


def booking_details(call: Call, unit: str, resident: str, booking_id: str) -> Any:
    """GetBookingDetails' timeslotDetail (raises zeep Fault for an unknown bookingId)."""
    response = call("GetBookingDetails", unit, as_resident(resident), healthcare_facility=unit, bookingId=booking_id)
    return response.timeslotDetail


def schedule(call: Call, unit: str, resident: str) -> list[Any]:
    """GetSubjectOfCareSchedule: the resident's bookings and invitations at the unit."""
    response = call(
        "GetSubjectOfCareSchedule", unit, as_resident(resident), healthcare_facility=unit, subject_of_care=resident
    )
    return list(response.timeslotDetail or [])
