"""A hypothesis state machine drives random book / rebook / cancel / invitation sequences through
the real SOAP interface, under both booking-id policies, and checks the calendar's invariants after
every step: no booking holds two slots, every active dated booking holds exactly one slot, nothing
cancelled holds one, and the EI outbox of every booking replays to exactly its current EI post."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from support.calendar import SLOT_COLUMNS, STOCKHOLM, Slot, today, weekday_on_or_after
from support.machines import run_machine

from producer.calendar.outbox import ei_post, record_change

UNIT = "SE2321000016-A100"
RESIDENTS = ("191212121212", "196408233234", "197010632391", "198112189876")
OK_TEXTS = ("OK", "ERROR", "INFO")


def _day_far_ahead() -> date:
    """A weekday well past the 24-hour deadline and the demo bookings, inside the 90 demo days."""
    return weekday_on_or_after(today() + timedelta(days=40))


def _machine(server: Any, call: Any, policy: str) -> type[RuleBasedStateMachine]:
    day = _day_far_ahead()

    class Lifecycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.conn = server.connect(utc=True)
            # every example starts from the same calendar: this producer's database is the machine's own
            with self.conn.transaction():
                self.conn.execute("UPDATE slot SET booking_pk = NULL WHERE booking_pk IS NOT NULL")
                self.conn.execute("DELETE FROM ei_outbox; DELETE FROM booking_event; DELETE FROM booking")
            self.slots = [
                slot
                for slot in (
                    Slot(*row)
                    for row in self.conn.execute(
                        f"SELECT {SLOT_COLUMNS} FROM slot"
                        " WHERE unit_hsa_id = %s AND starts_at >= %s AND starts_at < %s ORDER BY starts_at, id",
                        (
                            UNIT,
                            datetime.combine(day, time(8), tzinfo=STOCKHOLM),
                            datetime.combine(day, time(9), tzinfo=STOCKHOLM),
                        ),
                    ).fetchall()
                )
                if slot.time_type in ("LAK", "PROV")
            ][:8]
            self.now = datetime.now(UTC)

        def teardown(self) -> None:
            self.conn.close()

        # -- helpers ------------------------------------------------------------------------------

        def _make_booking(self, slot: Slot, resident: str, booking_id: str | None = None) -> Any:
            """MakeBooking of the slot (or of an open invitation quoting its id), as the resident."""
            return call(
                "MakeBooking",
                UNIT,
                actor=(resident, "subject_of_care"),
                healthcare_facility_med=UNIT,
                requestedTimeslot=slot.timeslot(resident, booking_id),
                subject_of_care_info={"firstName": "Test", "lastName": "Testsson"},
            )

        def _holder(self, slot_id: int) -> tuple[str, str] | None:
            row = self.conn.execute(
                "SELECT b.booking_id, b.subject_of_care FROM slot s JOIN booking b ON b.pk = s.booking_pk"
                " WHERE s.id = %s",
                (slot_id,),
            ).fetchone()
            return (row[0], row[1]) if row else None

        def _active_ids(self, kind: str | None = None) -> list[str]:
            rows = self.conn.execute(
                "SELECT booking_id FROM booking WHERE status = 'active' AND unit_hsa_id = %s"
                " AND (%s::text IS NULL OR kind = %s) ORDER BY pk",
                (UNIT, kind, kind),
            ).fetchall()
            return [r[0] for r in rows]

        # -- rules --------------------------------------------------------------------------------

        @rule(resident=st.sampled_from(RESIDENTS), index=st.integers(0, 7))
        def make_booking(self, resident: str, index: int) -> None:
            slot = self.slots[index % len(self.slots)]
            holder = self._holder(slot.id)
            answer = self._make_booking(slot, resident)
            if holder is None or holder[1] == resident:
                assert answer.resultCode == "OK", answer.resultText
                assert answer.bookingId
            else:
                assert answer.resultCode == "ERROR"
                assert answer.bookingId is None

        @rule(index=st.integers(0, 7), data=st.data())
        def update_booking(self, index: int, data: st.DataObject) -> None:
            active = self.conn.execute(
                "SELECT b.booking_id, b.subject_of_care, b.time_type_code, b.kind FROM booking b"
                " WHERE b.status = 'active' AND b.unit_hsa_id = %s AND b.kind <> 'open_invitation' ORDER BY pk",
                (UNIT,),
            ).fetchall()
            if not active:
                return
            booking_id, resident, time_type, _kind = data.draw(st.sampled_from(active))
            slot = self.slots[index % len(self.slots)]
            holder = self._holder(slot.id)
            answer = call(
                "UpdateBooking",
                UNIT,
                actor=(resident, "subject_of_care"),
                requestedTimeslot=slot.timeslot(resident, booking_id),
            )
            if slot.time_type != time_type or (holder is not None and holder[0] != booking_id):
                assert answer.resultCode == "ERROR"
            else:
                assert answer.resultCode == "OK", answer.resultText

        @rule(data=st.data())
        def cancel_booking(self, data: st.DataObject) -> None:
            ids = self.conn.execute(
                "SELECT booking_id, status, subject_of_care FROM booking WHERE unit_hsa_id = %s ORDER BY pk", (UNIT,)
            ).fetchall()
            if not ids:
                return
            booking_id, status, resident = data.draw(st.sampled_from(ids))
            answer = call(
                "CancelBooking",
                UNIT,
                actor=(resident, "subject_of_care"),
                healthcare_facility=UNIT,
                bookingId=booking_id,
            )
            active_now = self.conn.execute(
                "SELECT count(*) FROM booking WHERE booking_id = %s AND status = 'active'", (booking_id,)
            ).fetchone()[0]
            if status == "active":
                assert answer.resultCode == "OK", answer.resultText
            else:
                assert answer.resultCode in ("INFO", "OK")  # an id reused by a newer booking may be cancelled
            assert answer.resultCode in OK_TEXTS
            assert active_now == 0 or answer.resultCode == "INFO"

        @rule(resident=st.sampled_from(RESIDENTS))
        def create_open_invitation(self, resident: str) -> None:
            """Staff create an open PROV invitation, with its outbox row (as the demo loader does)."""
            with self.conn.transaction():
                pk = self.conn.execute("SELECT nextval(pg_get_serial_sequence('booking', 'pk'))").fetchone()[0]
                self.conn.execute(
                    "INSERT INTO booking (pk, booking_id, unit_hsa_id, kind, subject_of_care, purpose,"
                    " time_type_code, care_type_code, invitation_date, valid_until)"
                    " VALUES (%s, %s, %s, 'open_invitation', %s, 'Kallelse', 'PROV', 'LAB', %s, %s)",
                    (pk, f"K{pk}", UNIT, resident, self.now.date(), self.now + timedelta(days=30)),
                )
                after = ei_post(
                    status="active",
                    kind="open_invitation",
                    subject_of_care=resident,
                    unit_hsa_id=UNIT,
                    booking_id=f"K{pk}",
                    starts_at=None,
                    invitation_date=self.now.date(),
                    valid_until=self.now + timedelta(days=30),
                    now=self.now,
                )
                record_change(self.conn, pk, "test", None, after)

        @precondition(lambda self: bool(self._active_ids("open_invitation")))
        @rule(index=st.integers(0, 7), data=st.data())
        def book_open_invitation(self, index: int, data: st.DataObject) -> None:
            booking_id = data.draw(st.sampled_from(self._active_ids("open_invitation")))
            resident = self.conn.execute(
                "SELECT subject_of_care FROM booking WHERE booking_id = %s AND status = 'active'", (booking_id,)
            ).fetchone()[0]
            slot = self.slots[index % len(self.slots)]
            holder = self._holder(slot.id)
            answer = self._make_booking(slot, resident, booking_id)
            if slot.time_type == "PROV" and holder is None:
                assert answer.resultCode == "OK", answer.resultText
            else:
                assert answer.resultCode == "ERROR"

        # -- invariants ---------------------------------------------------------------------------

        @invariant()
        def slots_and_bookings_agree(self) -> None:
            bad = self.conn.execute(
                """
                SELECT b.pk, b.status, b.kind, count(s.id) FROM booking b
                LEFT JOIN slot s ON s.booking_pk = b.pk
                GROUP BY b.pk
                HAVING (b.status = 'active' AND b.kind <> 'open_invitation' AND count(s.id) <> 1)
                    OR (b.kind = 'open_invitation' AND count(s.id) <> 0)
                    OR (b.status <> 'active' AND count(s.id) <> 0)
                """
            ).fetchall()
            assert bad == []
            if policy == "per-slot":
                mismatched = self.conn.execute(
                    "SELECT b.booking_id, s.id FROM booking b JOIN slot s ON s.booking_pk = b.pk"
                    " WHERE b.kind = 'booking' AND b.booking_id <> 'T' || s.id"
                ).fetchall()
                assert mismatched == []

        @invariant()
        def outbox_replays_to_the_current_post(self) -> None:
            from producer.calendar.views import fetch_views

            now = datetime.now(UTC)
            rows = self.conn.execute("SELECT booking_pk, before, after FROM ei_outbox ORDER BY id").fetchall()
            last: dict[int, Any] = {}
            for pk, before, after in rows:
                assert before == last.get(pk), f"outbox row of booking {pk} does not continue its previous one"
                last[pk] = after
            for view in fetch_views(self.conn, "b.unit_hsa_id = %s", (UNIT,)):
                assert last.get(view.pk) == view.post(now), f"booking {view.booking_id}: outbox != current post"
                assert view.ei_post == last.get(view.pk), f"booking {view.booking_id}: ei_post != last outbox row"

    return Lifecycle


@pytest.mark.parametrize("policy", ["stable", "per-slot"])
def test_booking_lifecycle(policy: str, start_producer: Any, official: Any) -> None:
    server = start_producer(f"lifecycle_{policy.replace('-', '')}", {"TIDBOK_BOOKING_ID_POLICY": policy})
    machine = _machine(server, official.caller(server.base_url), policy)
    run_machine(machine, examples=15, steps=12)
