"""A hypothesis state machine drives random book / rebook / cancel / invitation sequences through
the real SOAP interface, under both booking-id policies, and checks the calendar's invariants after
every step: no booking holds two slots, every active dated booking holds exactly one slot, nothing
cancelled holds one, and the EI outbox of every booking replays to exactly its current EI post.

Each example first gives the two time types it books random booking rules (producer.calendar.rules:
self-booking, a per-resident limit, a lead time and a horizon, some of which shut the slots out),
predicts every answer from them, and checks that no state reached breaks a rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from support.calendar import SLOT_COLUMNS, STOCKHOLM, Slot, today, weekday_on_or_after
from support.machines import run_machine

from producer.calendar.outbox import ei_post, record_change

UNIT = "SE2321000016-A100"
RESIDENTS = ("191212121212", "196408233234", "197010632391", "198112189876")
OK_TEXTS = ("OK", "ERROR", "INFO")
TYPES = ("LAK", "PROV")
# The machine's slots start 40 days ahead: a 60-day lead time or a 10-day horizon shuts them all out.
RULES = st.fixed_dictionaries(
    {
        "self_booking": st.booleans(),
        "max_active_per_resident": st.sampled_from([None, 1, 2]),
        "min_lead": st.sampled_from([timedelta(0), timedelta(hours=2), timedelta(days=60)]),
        "horizon": st.sampled_from([None, timedelta(days=10), timedelta(days=100)]),
    }
)


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
                        f"SELECT {SLOT_COLUMNS} FROM slot_named"
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

        @initialize(lak=RULES, prov=RULES)
        def set_rules(self, lak: dict[str, Any], prov: dict[str, Any]) -> None:
            """The example's booking rules, as a clinic loads them."""
            self.rules = {"LAK": lak, "PROV": prov}
            for code, rules in self.rules.items():
                self.conn.execute(
                    "UPDATE time_type SET self_booking = %(self_booking)s, min_lead = %(min_lead)s,"
                    " max_active_per_resident = %(max_active_per_resident)s, horizon = %(horizon)s"
                    " WHERE unit_hsa_id = %(unit)s AND code = %(code)s",
                    {**rules, "unit": UNIT, "code": code},
                )

        def _in_window(self, slot: Slot) -> bool:
            """The slot's start is inside its type's lead time and horizon (as a resident sees it now)."""
            rules, now = self.rules[slot.time_type], datetime.now(UTC)
            return slot.starts_at >= now + rules["min_lead"] and (
                rules["horizon"] is None or slot.starts_at <= now + rules["horizon"]
            )

        def _self_booked(self, resident: str, time_type: str) -> int:
            """The resident's upcoming bookings of the type that were booked as such (not invitations)."""
            return self.conn.execute(
                "SELECT count(*) FROM booking b JOIN slot s ON s.booking_pk = b.pk"
                " WHERE b.subject_of_care = %s AND b.time_type_code = %s AND b.status = 'active'"
                " AND b.kind = 'booking' AND s.starts_at > now()"
                " AND EXISTS (SELECT 1 FROM booking_event e WHERE e.booking_pk = b.pk AND e.action = 'book')",
                (resident, time_type),
            ).fetchone()[0]

        def _upcoming(self, resident: str, time_type: str) -> int:
            """The resident's upcoming bookings of the type, booked invitations included: what the
            per-resident limit counts ("upcoming bookings one resident may hold", README, Rules)."""
            return self.conn.execute(
                "SELECT count(*) FROM booking b JOIN slot s ON s.booking_pk = b.pk"
                " WHERE b.subject_of_care = %s AND b.time_type_code = %s AND b.status = 'active'"
                " AND b.kind = 'booking' AND s.starts_at > now()",
                (resident, time_type),
            ).fetchone()[0]

        def _may_book(self, slot: Slot, resident: str) -> bool:
            rules = self.rules[slot.time_type]
            if not rules["self_booking"] or not self._in_window(slot):
                return False
            limit = rules["max_active_per_resident"]
            return limit is None or self._upcoming(resident, slot.time_type) < limit

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
            may = holder is None and self._may_book(slot, resident)
            answer = self._make_booking(slot, resident)
            if may or (holder is not None and holder[1] == resident):  # a resend gets its booking back
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
            elif holder is None and not self._in_window(slot):
                assert answer.resultCode == "ERROR"  # moved only inside the type's lead time and horizon
            else:
                assert answer.resultCode == "OK", answer.resultText

        @rule(data=st.data())
        def cancel_booking(self, data: st.DataObject) -> None:
            ids = self.conn.execute(
                "SELECT booking_id, status, subject_of_care, kind FROM booking WHERE unit_hsa_id = %s ORDER BY pk",
                (UNIT,),
            ).fetchall()
            if not ids:
                return
            booking_id, status, resident, kind = data.draw(st.sampled_from(ids))
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
            if status == "active" and kind == "open_invitation":
                assert answer.resultCode == "ERROR"  # seed 001 §5.14.2: an open invitation is only booked
                return
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
            if slot.time_type == "PROV" and holder is None and self._in_window(slot):
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
        def no_rule_is_broken(self) -> None:
            """What residents did over SOAP meets the example's rules: no type closed to them was booked,
            no slot was booked or moved to outside its type's window, no resident holds more than the limit."""
            if not hasattr(self, "rules"):
                return
            changes = self.conn.execute(
                "SELECT e.action, b.time_type_code, s.starts_at, e.at FROM booking_event e"
                " JOIN booking b ON b.pk = e.booking_pk"
                " JOIN slot s ON s.id = coalesce(e.details->>'to_slot', e.details->>'slot')::bigint"
                " WHERE e.channel = 'soap' AND e.action IN ('book', 'book_invitation', 'rebook')"
            ).fetchall()
            for action, code, starts_at, at in changes:
                rules = self.rules[code]
                assert action != "book" or rules["self_booking"], f"{code} is not self-bookable, yet was booked"
                assert starts_at >= at + rules["min_lead"], f"{action} of {code} inside the lead time"
                assert rules["horizon"] is None or starts_at <= at + rules["horizon"], f"{action} past the horizon"
            for code, rules in self.rules.items():
                if rules["max_active_per_resident"] is not None:
                    for resident in RESIDENTS:
                        assert self._self_booked(resident, code) <= rules["max_active_per_resident"]

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
