"""The resident's booking flows as the tests drive them: one producer's zeep clients (the official
WSDLs, the consumer header sent) and its database (support.calendar.CalendarDb). Used by the flow
tests (interactions/test_booking_flows.py) and the EI publishing tests."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

from lxml import etree

from support import OfficialClient, ProducerServer, soap_post, validate_response
from support.calendar import CalendarDb, Slot, insert_slot, past_start, staff_invitation, wire_date
from support.official import zeep_client
from support.residents import Residents, as_resident, booking_details, schedule

A100, A200 = "SE2321000016-A100", "SE2321000016-A200"
CONSUMER_HEADER = "x-rivta-original-serviceconsumer-hsaid"
CONSUMER_HSA_ID = "SE2321000016-1177"
PLAIN_PURPOSE = "Du är välkommen att boka en tid för provtagning."


# One birth date per resident, from 1950 on: only the flow and EI publishing tests use them (test_races: 1990 on).
new_resident = Residents(date(1950, 1, 1), "123")


# -- the producer under test ---------------------------------------------------------------------


class Api(CalendarDb):
    """One producer: zeep clients (official WSDL, consumer header sent) and its database."""

    def __init__(self, server: ProducerServer, policy: str) -> None:
        super().__init__(server)
        self.policy = policy
        self._clients: dict[str, OfficialClient] = {}
        self._moves = itertools.count()

    # SOAP

    def client(self, op: str) -> OfficialClient:
        if op not in self._clients:
            self._clients[op] = zeep_client(op, self.server.base_url, http_headers={CONSUMER_HEADER: CONSUMER_HSA_ID})
        return self._clients[op]

    def call(self, op: str, unit: str, actor: tuple[str, str] | None, **body: Any) -> Any:
        return self.client(op).call(unit, actor, **body)

    def raw(self, op: str, unit: str, actor: tuple[str, str] | None, **body: Any) -> tuple[bytes, etree._Element]:
        """The response bytes as sent (zeep would unescape them), validated against the official schema."""
        message = self.client(op).create_message(unit, actor, **body)
        status, _, data = soap_post(
            self.server.base_url, op, etree.tostring(message), headers={CONSUMER_HEADER: CONSUMER_HSA_ID}
        )
        assert status == 200, data
        return data, validate_response(op, data)

    def make_booking(
        self,
        timeslot: dict[str, Any],
        unit: str = A100,
        actor: tuple[str, str] | None = None,
        med: str | None = None,
    ) -> Any:
        """MakeBooking addressed to `unit`; the actor defaults to the timeslot's resident."""
        resident = timeslot.get("subject_of_care")
        return self.call(
            "MakeBooking",
            unit,
            actor if actor is not None else as_resident(resident),
            healthcare_facility_med=med or unit,
            requestedTimeslot=timeslot,
            subject_of_care_info={"firstName": "Testa", "lastName": "Testsson", "phone": "070-0000000"},
        )

    def book(self, resident: str, slot: Slot, unit: str | None = None) -> str:
        """A booking that must succeed; returns its bookingId."""
        response = self.make_booking(slot.timeslot(resident), unit=unit or slot.unit)
        assert response.resultCode == "OK", response.resultText
        return response.bookingId

    def update_booking(
        self, booking_id: str | None, resident: str, slot: Slot, unit: str, actor: tuple[str, str] | None = None
    ) -> Any:
        """UpdateBooking addressed to `unit`, moving `booking_id` to `slot` (named by its times)."""
        return self.call(
            "UpdateBooking",
            unit,
            actor or as_resident(resident),
            requestedTimeslot=slot.timeslot(resident, bookingId=booking_id),
        )

    def cancel(
        self, booking_id: str, resident: str, unit: str, message: str | None = None, facility: str | None = None
    ) -> Any:
        return self.call(
            "CancelBooking",
            unit,
            as_resident(resident),
            healthcare_facility=facility or unit,
            bookingId=booking_id,
            message=message,
        )

    def details(self, booking_id: str, resident: str, unit: str) -> Any:
        """GetBookingDetails' timeslotDetail (raises zeep Fault for an unknown bookingId)."""
        return booking_details(self.call, unit, resident, booking_id)

    def schedule(self, resident: str, unit: str) -> list[Any]:
        return schedule(self.call, unit, resident)

    def available(
        self, resident: str, unit: str, day: datetime, time_type: str | None = None, booking_id: str | None = None
    ) -> list[Any]:
        """GetAvailableTimeslots for the Stockholm day of `day`."""
        response = self.call(
            "GetAvailableTimeslots",
            unit,
            as_resident(resident),
            healthcare_facility=unit,
            bookingId=booking_id,
            startDateInclusive=wire_date(day),
            endDateInclusive=wire_date(day),
            timeTypeID=time_type,
            subject_of_care=resident,
        )
        return list(response.timeslotDetail or [])

    # database

    def booking(self, booking_id: str) -> dict[str, Any] | None:
        """The active booking or invitation with this id."""
        return self.one("SELECT * FROM booking WHERE booking_id = %s AND status = 'active'", booking_id)

    def booking_by_pk(self, pk: int) -> dict[str, Any]:
        row = self.one("SELECT * FROM booking WHERE pk = %s", pk)
        assert row is not None
        return row

    def events(self, pk: int) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT action, channel, actor_type, actor_id, details FROM booking_event"
            " WHERE booking_pk = %s ORDER BY id",
            pk,
        )

    def state(self) -> dict[str, Any]:
        """Row counts and a fingerprint of every booking and slot holding: to show nothing was written."""
        return self.one(
            "SELECT (SELECT count(*) FROM booking) AS bookings,"
            " (SELECT count(*) FROM slot WHERE booking_pk IS NOT NULL) AS taken_slots,"
            " (SELECT count(*) FROM ei_outbox) AS outbox,"
            " (SELECT count(*) FROM booking_event) AS events,"
            " (SELECT md5(coalesce(string_agg(concat_ws('|', pk, booking_id, unit_hsa_id, kind, status,"
            "   cancel_message, updated_at), ',' ORDER BY pk), '')) FROM booking) AS booking_rows,"
            " (SELECT md5(coalesce(string_agg(concat_ws('|', id, booking_pk), ',' ORDER BY id), ''))"
            "   FROM slot WHERE booking_pk IS NOT NULL) AS holdings"
        )

    def move_to_past(self, slot_id: int) -> None:
        """Into the past, where no other slot is (support.calendar.past_start)."""
        starts = past_start(self.db, next(self._moves))
        self.db.execute(
            "UPDATE slot SET ends_at = %s + (ends_at - starts_at), starts_at = %s WHERE id = %s",
            (starts, starts, slot_id),
        )

    def move_near(self, slot_id: int) -> None:
        """Two hours from now: inside the units' 24-hour change deadline. Only for slots without a
        performer (PROV at A100); the slot leaves its room, so no overlap check can object."""
        starts = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
        self.db.execute(
            "UPDATE slot SET ends_at = %s + (ends_at - starts_at), starts_at = %s, resource_id = NULL WHERE id = %s",
            (starts, starts, slot_id),
        )

    def create_invitation(self, resident: str, unit: str, slot: Slot | None, purpose: str = PLAIN_PURPOSE) -> str:
        """A clinic's invitation, as staff would write it: timed when given a slot, open otherwise."""
        return staff_invitation(self.db, resident, slot, unit, purpose=purpose, names=("Testa", "Testsson"))

    def lak_slot_at_a200(self) -> Slot:
        """A LAK slot at A200, which A100's LAK bookings may NOT move to (no unit_alternative row).

        The demo has no LAK at A200, so without this the unit rule could never be what refuses."""
        self.db.execute(
            "INSERT INTO time_type (unit_hsa_id, code, name, duration_minutes) VALUES (%s, 'LAK', 'Läkarbesök', 20)"
            " ON CONFLICT DO NOTHING",
            (A200,),
        )
        starts = datetime.now(UTC).replace(microsecond=0) + timedelta(days=40, hours=next(self._moves))
        slot_id = insert_slot(self.db, A200, starts, starts + timedelta(minutes=20), "LAK")
        self.claim(slot_id)
        return self.slot(slot_id)

    def current_id(self, pk: int) -> str:
        return self.booking_by_pk(pk)["booking_id"]
