"""Invitations and staff actions end to end: the `tidbok staff` command and the service layer.

A producer of its own ("staff": demo data, default settings) is changed through the real command
(``python -m producer staff …``, a subprocess) and through producer.staff with a psycopg connection,
then read back the way 1177 reads it: GetBookingDetails and GetSubjectOfCareSchedule through the
OFFICIAL WSDLs, and the engagement index through FindContent after a real publisher has drained the
outbox into the EI stub. Each test uses its own residents and slots.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support import ProducerServer
from support.calendar import STOCKHOLM, CalendarDb, Slot, insert_slot, last_sunday, today, wire
from support.ei import CORE_XSD, EiLoop, publishing_into_a_stub, settle_outbox
from support.official import Caller, Official
from support.residents import Residents, as_resident, booking_details, schedule
from support.server import PYTHON, REPO, subprocess_env

from producer.platform.settings import Settings
from producer.staff import (
    Staff,
    StaffError,
    Timeslot,
    book,
    cancel,
    day,
    history,
    invite_batch,
    invite_open,
    invite_timed,
    rebook,
)
from producer.staff.docbook import check_purpose

A100, A200 = "SE2321000016-A100", "SE2321000016-A200"
STAFF_HSA_ID = "SE2321000016-ST01"
DOCBOOK = (
    "<article><info><title>Kallelse till provtagning</title></info>"
    "<para>Du är kallad till provtagning.</para>"
    "<section><title>Inför besöket</title><para>Du behöver inte fasta.</para>"
    '<para>Läs mer på <ulink url="https://www.1177.se">1177</ulink>.</para></section>'
    "<bibliography>Personalen på Provtagningen</bibliography></article>"
)
PLAIN = "Du är välkommen att boka en tid för provtagning."
SETTLE_SECONDS = 30.0


# -- residents, the producer ------------------------------------------------------------------------

# A valid personnummer no other test of this module uses (born 1960 onwards).
new_resident = Residents(date(1960, 1, 1), "234")


class Calendar(CalendarDb):
    """The producer's database: a tuple-row connection for the service layer, a dict-row one to read."""

    def __init__(self, server: ProducerServer) -> None:
        super().__init__(server)
        self.conn = server.connect()

    def close(self) -> None:
        self.conn.close()
        super().close()

    def add_slot(self, unit: str, time_type: str, starts_at: datetime, minutes: int = 10) -> Slot:
        """A slot without performer or resource (so no overlap constraint objects), e.g. on a DST night."""
        slot_id = insert_slot(self.db, unit, starts_at, starts_at + timedelta(minutes=minutes), time_type)
        self.claim(slot_id)
        return self.slot(slot_id)

    def booking(self, booking_id: str) -> dict[str, Any]:
        row = self.one(
            "SELECT * FROM booking WHERE booking_id = %s ORDER BY status = 'active' DESC, pk DESC", booking_id
        )
        assert row is not None, booking_id
        return row

    def events(self, pk: int) -> list[tuple[str, str, str | None, str | None]]:
        rows = self.rows(
            "SELECT action, channel, actor_type, actor_id FROM booking_event WHERE booking_pk = %s ORDER BY id", pk
        )
        return [(r["action"], r["channel"], r["actor_type"], r["actor_id"]) for r in rows]

    def bookings_of(self, resident: str) -> int:
        return self.one("SELECT count(*) AS n FROM booking WHERE subject_of_care = %s", resident)["n"]


@pytest.fixture(scope="module")
def server(start_producer: Callable[..., ProducerServer]) -> ProducerServer:
    return start_producer("staff")


@pytest.fixture(scope="module")
def cal(server: ProducerServer) -> Iterator[Calendar]:
    calendar = Calendar(server)
    yield calendar
    calendar.close()


@pytest.fixture(scope="module")
def soap(official: Official, server: ProducerServer) -> Caller:
    return official.caller(server.base_url)


@pytest.fixture(scope="module")
def staff() -> Staff:
    return Staff(STAFF_HSA_ID, Settings())


# -- the command -----------------------------------------------------------------------------------


def run_staff(
    server: ProducerServer, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m producer staff <args>`` against the producer's database, whatever its exit status."""
    return subprocess.run(
        [PYTHON, "-m", "producer", "staff", *args],
        cwd=REPO,
        env=subprocess_env({"DATABASE_URL": server.database_url, **(env or {})}),
        capture_output=True,
        text=True,
        timeout=120,
    )


def staff_json(server: ProducerServer, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run a staff command that must succeed; its --json output."""
    result = run_staff(server, *args, "--json", env=env)
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return json.loads(result.stdout)


def refused(server: ProducerServer, *args: str) -> str:
    """Run a staff command that must be refused (exit 1); its error line."""
    result = run_staff(server, *args)
    assert result.returncode == 1, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.stdout == ""
    return result.stderr.strip().splitlines()[-1]


def acting(*args: str) -> list[str]:
    return [*args, "--staff", STAFF_HSA_ID]


# -- invitations -----------------------------------------------------------------------------------


def test_timed_invitation_through_the_command(server: ProducerServer, cal: Calendar, soap: Caller) -> None:
    resident = new_resident()
    slot = cal.free_slot(A200, "PROV")
    valid_until = today() + timedelta(days=40)
    out = staff_json(
        server,
        *acting("invite", "--resident", resident, "--slot", slot.ref),
        *("--purpose", DOCBOOK, "--valid-until", valid_until.isoformat(), "--first-name", "Testa"),
    )
    invitation = out["booking"]
    assert out["changed"] is True
    assert (invitation["kind"], invitation["status"], invitation["unit"], invitation["slot"]) == (
        "timed_invitation",
        "active",
        A200,
        slot.ref,
    )
    booking_id = invitation["booking_id"]
    assert booking_id.startswith("K")

    detail = booking_details(soap, A200, resident, booking_id)
    assert detail.isInvitation is True
    assert detail.purpose == DOCBOOK  # stored and answered as given (entity-encoded on the wire)
    assert detail.timeTypeID == "PROV"
    assert (detail.startTimeInclusive, detail.endTimeExclusive) == (wire(slot.starts_at), wire(slot.ends_at))
    assert [t.bookingId for t in schedule(soap, A200, resident)] == [booking_id]

    row = cal.booking(booking_id)
    assert cal.holder(slot.id) == row["pk"]
    assert row["valid_until"] == datetime.combine(valid_until + timedelta(days=1), datetime.min.time(), STOCKHOLM)
    assert cal.events(row["pk"]) == [("invite", "staff", "staff", STAFF_HSA_ID)]
    (change,) = cal.outbox(row["pk"])
    assert change["before"] is None
    assert change["after"]["kind"] == "invitation" and change["after"]["most_recent_content"] == wire(slot.starts_at)


def test_open_invitation_and_staff_giving_it_a_time(cal: Calendar, soap: Caller, staff: Staff) -> None:
    resident = new_resident()
    made = invite_open(
        cal.conn,
        staff,
        resident=resident,
        unit=A100,
        time_type="PROV",
        purpose=PLAIN,
        valid_until=today() + timedelta(days=30),
    )
    invitation = made.booking
    assert (invitation.kind, invitation.slot, invitation.invitation_date) == ("open_invitation", None, today())
    detail = booking_details(soap, A100, resident, invitation.booking_id)
    assert detail.isInvitation is True and detail.purpose == PLAIN and detail.timeTypeID == "PROV"
    assert detail.startTimeInclusive is None and detail.endTimeExclusive is None
    assert schedule(soap, A100, resident) == []  # open invitations have no time (TKB §3.6)
    (change,) = cal.outbox(cal.booking(invitation.booking_id)["pk"])
    assert change["after"]["most_recent_content"] == f"{today():%Y%m%d}000000"

    # the resident phones the clinic: staff book the invitation at A200 (PROV may be booked there)
    slot = cal.free_slot(A200, "PROV")
    booked = rebook(cal.conn, staff, invitation.booking_id, slot=slot.ref).booking
    assert (booked.kind, booked.unit, booked.slot, booked.booking_id) == (
        "booking",
        A200,
        slot.ref,
        invitation.booking_id,
    )
    detail = booking_details(soap, A200, resident, booked.booking_id)
    assert detail.isInvitation is False and detail.startTimeInclusive == wire(slot.starts_at)
    pk = cal.booking(booked.booking_id)["pk"]
    assert [e[0] for e in cal.events(pk)] == ["invite", "book_invitation"]
    change = cal.outbox(pk)[-1]
    assert (change["before"]["kind"], change["after"]["kind"]) == ("invitation", "booking")
    assert change["after"]["unit"] == A200


def test_timed_invitation_by_times_takes_exactly_that_slot(cal: Calendar, staff: Staff) -> None:
    slot = cal.free_slot(A100, "SSK")
    made = invite_timed(
        cal.conn,
        staff,
        resident=new_resident(),
        slot=Timeslot(A100, slot.starts_at, slot.ends_at, "SSK"),
        purpose=PLAIN,
    )
    assert made.booking.slot == slot.ref and made.booking.valid_until is None
    assert cal.holder(slot.id) == cal.booking(made.booking.booking_id)["pk"]


def test_a_timed_invitation_moved_by_staff_stays_an_invitation(cal: Calendar, soap: Caller, staff: Staff) -> None:
    """The clinic moved its own call: still an invitation with the same id (UpdateBooking by the
    resident would make it a booking)."""
    resident = new_resident()
    slot, later = cal.free_slot(A200, "PROV"), cal.free_slot(A200, "PROV")
    made = invite_timed(cal.conn, staff, resident=resident, slot=slot.ref, purpose=DOCBOOK).booking
    moved = rebook(cal.conn, staff, made.booking_id, slot=later.ref, note="mottagningen flyttade tiden").booking
    assert (moved.booking_id, moved.kind, moved.slot) == (made.booking_id, "timed_invitation", later.ref)
    detail = booking_details(soap, A200, resident, made.booking_id)
    assert detail.isInvitation is True and detail.startTimeInclusive == wire(later.starts_at)
    assert detail.purpose == DOCBOOK
    change = cal.outbox(cal.booking(made.booking_id)["pk"])[-1]
    assert (change["before"]["kind"], change["after"]["kind"]) == ("invitation", "invitation")
    assert change["after"]["most_recent_content"] == wire(later.starts_at)


# -- DocBook in purpose ----------------------------------------------------------------------------

VALID_PURPOSES = [
    pytest.param(DOCBOOK, id="the-whole-subset"),
    pytest.param(
        '<?xml version="1.0"?>\n<article>\n <para>Med deklaration &amp; radbrytningar</para>\n</article>\n',
        id="declaration",
    ),
    pytest.param(
        '<article xmlns="http://docbook.org/ns/docbook" version="5.0"><para>DocBook 5</para></article>', id="namespace"
    ),
    pytest.param("  <para>Bara ett stycke, med &#233; och &lt;tecken&gt;</para>", id="para-alone"),
    pytest.param(
        "<article><!-- anteckning --><title>Titel</title><section><section><para/></section></section></article>",
        id="comment",
    ),
    pytest.param("<3 Välkommen till oss!", id="plain-heart"),
    pytest.param("Ta med 2 < 3 prover & legitimation <b>", id="plain-with-brackets"),
]


@pytest.mark.parametrize("purpose", VALID_PURPOSES)
def test_valid_purpose_is_stored_as_is(cal: Calendar, soap: Caller, staff: Staff, purpose: str) -> None:
    resident = new_resident()
    made = invite_open(
        cal.conn, staff, resident=resident, unit=A100, time_type="PROV", purpose=purpose, valid_until=today()
    )
    assert cal.booking(made.booking.booking_id)["purpose"] == purpose
    assert booking_details(soap, A100, resident, made.booking.booking_id).purpose == purpose


DISALLOWED = [
    ("<article><para>Hej <emphasis>du</emphasis></para></article>", "emphasis"),
    ("<article><title>x</title><script>alert(1)</script></article>", "script"),
    ("<html><body><p>x</p></body></html>", "html"),
    ("<article><section><itemizedlist><listitem/></itemizedlist></section><table/></article>", "itemizedlist"),
    ('<article xmlns:h="http://www.w3.org/1999/xhtml"><para><h:b>fet</h:b></para></article>', "h:b"),
    ('<article><para><link xlink:href="x" xmlns:xlink="http://www.w3.org/1999/xlink"/></para></article>', "link"),
]


@pytest.mark.parametrize(("purpose", "element"), DISALLOWED, ids=[e for _, e in DISALLOWED])
def test_each_disallowed_element_is_named(cal: Calendar, staff: Staff, purpose: str, element: str) -> None:
    resident = new_resident()
    with pytest.raises(StaffError) as refusal:
        invite_open(
            cal.conn, staff, resident=resident, unit=A100, time_type="PROV", purpose=purpose, valid_until=today()
        )
    assert refusal.value.field == "purpose" and refusal.value.code == "invalid"
    assert f"element <{element}> is not allowed" in refusal.value.message
    assert cal.bookings_of(resident) == 0


@pytest.mark.parametrize(
    "purpose",
    [
        "<article><para>ej stängd</article>",
        "<article>",
        "<article><para>a</para></article><article/>",
        "<article>&nbsp;</article>",
        '<article><para a="1" a="2"/></article>',
    ],
)
def test_malformed_docbook_is_refused(purpose: str) -> None:
    with pytest.raises(StaffError) as refusal:
        check_purpose(purpose)
    assert refusal.value.field == "purpose"
    assert "not well-formed XML" in refusal.value.message and "line 1" in refusal.value.message


HOSTILE = [
    pytest.param(
        '<!DOCTYPE article [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><article><para>&c;</para></article>',
        id="laughs",
    ),
    pytest.param(
        '<!DOCTYPE article [<!ENTITY x SYSTEM "file:///etc/passwd">]><article><para>&x;</para></article>', id="external"
    ),
    pytest.param('<!DOCTYPE article SYSTEM "http://127.0.0.1:9/docbook.dtd"><article/>', id="external-dtd"),
    pytest.param('<!DOCTYPE article [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><article/>', id="parameter"),
    pytest.param('<?xml version="1.0"?>\n<!DOCTYPE article><article/>', id="doctype"),
]


@pytest.mark.parametrize("purpose", HOSTILE)
def test_dtd_and_entities_are_refused(purpose: str) -> None:
    with pytest.raises(StaffError) as refusal:
        check_purpose(purpose)
    assert refusal.value.field == "purpose"
    assert refusal.value.message == "DocBook DTD and entity declarations are not allowed"


def test_the_command_names_the_disallowed_element(server: ProducerServer, cal: Calendar) -> None:
    resident = new_resident()
    slot = cal.free_slot(A100, "PROV")
    purpose = "<article><para>Välkommen</para><para><emphasis>Obs!</emphasis></para><table/></article>"
    line = refused(server, *acting("invite", "--resident", resident, "--slot", slot.ref, "--purpose", purpose))
    assert line == (
        "tidbok staff: purpose: DocBook element <emphasis> is not allowed"
        " (only article, bibliography, info, para, section, title, ulink)"
    )
    assert cal.bookings_of(resident) == 0 and cal.holder(slot.id) is None
    empty = refused(server, *acting("invite", "--resident", resident, "--slot", slot.ref, "--purpose", "  "))
    assert empty.startswith("tidbok staff: purpose: an invitation needs a purpose")


# -- a screening call from a CSV -----------------------------------------------------------------------


def test_screening_batch_from_csv(server: ProducerServer, cal: Calendar, soap: Caller, tmp_path: Path) -> None:
    first, second, third = new_resident(), new_resident(), new_resident()
    wrong_digit = second[:11] + str((int(second[11]) + 1) % 10)
    lines = [
        "personnummer;namn",  # 1: header
        f"{first[:8]}-{first[8:]};Första",  # 2
        f"{second};Andra",  # 3
        "19991332" + "1234;Fel datum",  # 4: month 13
        f"{wrong_digit};Fel kontrollsiffra",  # 5
        "12345;Kort",  # 6
        "",  # 7: blank
        f"{first};Dubblett",  # 8: listed twice
        f" {third} ;Tredje",  # 9
    ]
    path = tmp_path / "lista.csv"
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    options = [
        *acting("invite-batch", "--unit", A100.lower(), "--time-type", "PROV"),
        *("--purpose", DOCBOOK, "--valid-until", (today() + timedelta(days=60)).isoformat()),
    ]

    report = staff_json(server, *options, "--campaign", "screening-1", str(path))
    assert (report["unit"], report["campaign"]) == (A100, "screening-1")
    assert [(i["line"], i["resident"]) for i in report["invited"]] == [(2, first), (3, second), (9, third)]
    ids = {i["resident"]: i["booking_id"] for i in report["invited"]}
    assert [(a["line"], a["resident"], a["booking_id"]) for a in report["already_invited"]] == [(8, first, ids[first])]
    invalid = {i["line"]: i["reason"] for i in report["invalid"]}
    assert list(invalid) == [4, 5, 6]
    assert "date" in invalid[4] and "check digit" in invalid[5] and "12 characters" in invalid[6]
    assert all(r not in json.dumps(report["invalid"]) for r in (wrong_digit, "199913321234"))

    for resident, booking_id in ids.items():
        detail = booking_details(soap, A100, resident, booking_id)
        assert detail.isInvitation is True and detail.purpose == DOCBOOK and detail.timeTypeID == "PROV"
        pk = cal.booking(booking_id)["pk"]
        assert cal.events(pk) == [("invite", "staff", "staff", STAFF_HSA_ID)] and len(cal.outbox(pk)) == 1

    again = staff_json(server, *options, "--campaign", "screening-1", str(path))
    assert again["invited"] == []
    assert [(a["line"], a["booking_id"]) for a in again["already_invited"]] == [
        (2, ids[first]),
        (3, ids[second]),
        (8, ids[first]),
        (9, ids[third]),
    ]
    assert again["invalid"] == report["invalid"]

    other = staff_json(server, *options, "--campaign", "screening-2", str(path))
    assert [i["resident"] for i in other["invited"]] == [first, second, third]
    assert not {i["booking_id"] for i in other["invited"]} & set(ids.values())
    counts = cal.rows(
        "SELECT campaign, count(*) AS n FROM booking WHERE subject_of_care = ANY(%s)"
        " GROUP BY campaign ORDER BY campaign",
        [first, second, third],
    )
    assert [(c["campaign"], c["n"]) for c in counts] == [("screening-1", 3), ("screening-2", 3)]

    text = run_staff(server, *options, "--campaign", "screening-1", str(path))
    assert text.returncode == 0
    assert text.stdout.splitlines()[0] == f"campaign screening-1 at {A100}: 0 invited, 4 already invited, 3 invalid"


def test_single_invitation_in_a_campaign_is_idempotent(cal: Calendar, staff: Staff) -> None:
    resident = new_resident()
    terms = {"unit": A100, "time_type": "PROV", "purpose": PLAIN, "valid_until": today(), "campaign": "recall-7"}
    first = invite_open(cal.conn, staff, resident=resident, **terms)
    with pytest.raises(StaffError) as refusal:
        invite_open(cal.conn, staff, resident=resident, **terms)
    assert (refusal.value.field, refusal.value.code) == ("resident", "conflict")
    assert first.booking.booking_id in refusal.value.message
    assert cal.bookings_of(resident) == 1


# -- book, rebook, cancel on the resident's behalf -----------------------------------------------------


def test_book_rebook_cancel_through_the_command(server: ProducerServer, cal: Calendar, soap: Caller) -> None:
    resident = new_resident()
    first, second = cal.free_slot(A100, "LAK"), cal.free_slot(A100, "LAK")

    made = staff_json(
        server,
        *acting("book", "--resident", resident, "--slot", first.ref, "--reason", "Ont i knät", "--note", "per telefon"),
    )["booking"]
    booking_id = made["booking_id"]
    assert (made["kind"], made["slot"], made["reason"]) == ("booking", first.ref, "Ont i knät")
    (seen,) = schedule(soap, A100, resident)
    assert (seen.bookingId, seen.startTimeInclusive, seen.isInvitation) == (booking_id, wire(first.starts_at), False)

    moved = staff_json(server, *acting("rebook", booking_id, "--slot", str(second.id)))["booking"]
    assert (moved["booking_id"], moved["slot"]) == (booking_id, second.ref)  # stable ids
    (seen,) = schedule(soap, A100, resident)
    assert seen.startTimeInclusive == wire(second.starts_at)
    assert cal.holder(first.id) is None

    out = run_staff(server, *acting("cancel", booking_id, "--note", "Patienten ringde"))
    assert out.returncode == 0 and out.stdout.startswith(f"{booking_id}  booking  cancelled  {A100}")
    assert schedule(soap, A100, resident) == []
    assert cal.holder(second.id) is None
    again = run_staff(server, *acting("cancel", booking_id))
    assert again.returncode == 0 and again.stdout.startswith(f"unchanged: {booking_id}  booking  cancelled")

    record = staff_json(server, "history", booking_id)
    assert record["booking"]["status"] == "cancelled"
    events = record["events"]
    assert [(e["action"], e["channel"], e["actor_type"], e["actor_id"]) for e in events] == [
        ("book", "staff", "staff", STAFF_HSA_ID),
        ("rebook", "staff", "staff", STAFF_HSA_ID),
        ("cancel", "staff", "staff", STAFF_HSA_ID),
    ]
    assert events[0]["details"]["note"] == "per telefon" and events[2]["details"]["note"] == "Patienten ringde"
    assert (events[1]["details"]["from_slot"], events[1]["details"]["to_slot"]) == (first.id, second.id)
    times = [datetime.fromisoformat(e["at"]) for e in events]
    assert times == sorted(times) and all(t.utcoffset() is not None for t in times)
    assert [c["after"] is None for c in cal.outbox(cal.booking(booking_id)["pk"])] == [False, False, True]


def test_staff_are_not_bound_by_the_change_deadline(cal: Calendar, soap: Caller, staff: Staff) -> None:
    """A resident may not cancel or rebook within 24 hours of the start; staff may, until the start."""
    resident = new_resident()
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    slot, later = cal.add_slot(A100, "PROV", soon), cal.add_slot(A100, "PROV", soon + timedelta(hours=1))
    booking_id = book(cal.conn, staff, resident=resident, slot=slot.ref).booking.booking_id
    response = soap(
        "CancelBooking", A100, as_resident(resident), healthcare_facility=A100, bookingId=booking_id, message=None
    )
    assert response.resultCode == "ERROR"  # the resident is too late

    moved = rebook(cal.conn, staff, booking_id, slot=later.ref)
    assert moved.changed and moved.booking.slot == later.ref
    cancelled = cancel(cal.conn, staff, booking_id, note="akut förhinder")
    assert cancelled.changed and cancelled.booking.status == "cancelled"
    assert cal.holder(later.id) is None


def test_history_shows_every_channel(cal: Calendar, soap: Caller, staff: Staff) -> None:
    resident = new_resident()
    slot = cal.free_slot(A100, "SSK")
    booking_id = book(cal.conn, staff, resident=resident, slot=slot.ref).booking.booking_id
    response = soap(
        "CancelBooking", A100, as_resident(resident), healthcare_facility=A100, bookingId=booking_id, message="Förkyld"
    )
    assert response.resultCode == "OK", response.resultText
    record = history(cal.conn, booking_id)
    assert [(e.action, e.channel, e.actor_type, e.actor_id) for e in record.events] == [
        ("book", "staff", "staff", STAFF_HSA_ID),
        ("cancel", "soap", "subject_of_care", resident),
    ]
    assert record.booking.status == "cancelled"
    with pytest.raises(StaffError) as refusal:
        history(cal.conn, booking_id, unit=A200)
    assert (refusal.value.field, refusal.value.code) == ("booking_id", "not_found")


def test_per_slot_ids_for_staff_bookings(server: ProducerServer, cal: Calendar) -> None:
    """Under TIDBOK_BOOKING_ID_POLICY=per-slot a staff booking's id is its slot's, as over SOAP."""
    env = {"TIDBOK_BOOKING_ID_POLICY": "per-slot"}
    first, second = cal.free_slot(A100, "SSK"), cal.free_slot(A100, "SSK")
    made = staff_json(server, *acting("book", "--resident", new_resident(), "--slot", first.ref), env=env)
    assert made["booking"]["booking_id"] == first.ref
    moved = staff_json(server, *acting("rebook", first.ref, "--slot", second.ref), env=env)
    assert moved["booking"]["booking_id"] == second.ref
    found = staff_json(server, "history", first.ref)  # the id it had before still finds it
    assert found["booking"]["booking_id"] == second.ref
    assert [e["details"].get("from_booking_id") for e in found["events"]] == [None, first.ref]


# -- never double-booked, never another time type ------------------------------------------------------


def test_a_taken_slot_is_refused(server: ProducerServer, cal: Calendar, staff: Staff) -> None:
    holder, other = new_resident(), new_resident()
    slot = cal.free_slot(A100, "LAK")
    held = book(cal.conn, staff, resident=holder, slot=slot.ref).booking
    line = refused(server, *acting("book", "--resident", other, "--slot", slot.ref))
    assert line == f"tidbok staff: slot: {slot.ref} is already taken: choose a free slot (never double-booked)"
    for attempt in (
        lambda: book(cal.conn, staff, resident=other, slot=slot.ref),
        lambda: invite_timed(cal.conn, staff, resident=other, slot=slot.ref, purpose=PLAIN),
    ):
        with pytest.raises(StaffError) as refusal:
            attempt()
        assert (refusal.value.field, refusal.value.code) == ("slot", "conflict")
    assert cal.bookings_of(other) == 0

    # moving another booking onto it is refused too, and leaves that booking where it was
    mover = book(cal.conn, staff, resident=other, slot=cal.free_slot(A100, "LAK").ref).booking
    pk = cal.booking(mover.booking_id)["pk"]
    before = (cal.events(pk), cal.outbox(pk))
    with pytest.raises(StaffError) as refusal:
        rebook(cal.conn, staff, mover.booking_id, slot=slot.ref)
    assert (refusal.value.field, refusal.value.code) == ("slot", "conflict")
    assert cal.holder(slot.id) == cal.booking(held.booking_id)["pk"]
    assert cal.holder(int(mover.slot[1:])) == pk and (cal.events(pk), cal.outbox(pk)) == before


def test_concurrent_staff_bookings_of_one_slot(server: ProducerServer, cal: Calendar, staff: Staff) -> None:
    slot = cal.free_slot(A100, "SSK")
    residents = [new_resident() for _ in range(6)]
    barrier = threading.Barrier(len(residents))
    outcomes: dict[str, str] = {}

    def attempt(resident: str) -> None:
        with server.connect() as conn:
            barrier.wait()
            try:
                outcomes[resident] = book(conn, staff, resident=resident, slot=slot.ref).booking.booking_id
            except StaffError as error:
                outcomes[resident] = f"{error.field}:{error.code}"

    threads = [threading.Thread(target=attempt, args=(r,)) for r in residents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    winners = [r for r, outcome in outcomes.items() if not outcome.startswith("slot:")]
    assert len(outcomes) == len(residents) and len(winners) == 1, outcomes
    assert {outcomes[r] for r in residents if r not in winners} == {"slot:conflict"}
    assert cal.holder(slot.id) == cal.booking(outcomes[winners[0]])["pk"]
    assert sum(cal.bookings_of(r) for r in residents) == 1


def test_never_moved_to_another_time_type_or_unit(cal: Calendar, staff: Staff) -> None:
    lak = book(cal.conn, staff, resident=new_resident(), slot=cal.free_slot(A100, "LAK").ref).booking
    ssk = cal.free_slot(A100, "SSK")
    with pytest.raises(StaffError) as refusal:
        rebook(cal.conn, staff, lak.booking_id, slot=ssk.ref)
    assert (
        refusal.value.field == "slot" and refusal.value.message == f"{ssk.ref} is a SSK time; {lak.booking_id} is LAK"
    )
    prov_a200 = cal.free_slot(A200, "PROV")
    with pytest.raises(StaffError) as refusal:
        rebook(cal.conn, staff, lak.booking_id, slot=prov_a200.ref)
    assert refusal.value.field == "slot" and "is a PROV time" in refusal.value.message
    assert cal.booking(lak.booking_id)["pk"] == cal.holder(int(lak.slot[1:]))

    # PROV may move between A100 and A200 (unit_alternative), as over SOAP
    prov = book(cal.conn, staff, resident=new_resident(), slot=cal.free_slot(A100, "PROV").ref).booking
    moved = rebook(cal.conn, staff, prov.booking_id, slot=prov_a200.ref).booking
    assert (moved.unit, moved.slot) == (A200, prov_a200.ref)
    unchanged = rebook(cal.conn, staff, prov.booking_id, slot=prov_a200.ref)
    assert unchanged.changed is False


# -- bad input: one exception type naming the field ----------------------------------------------------


def test_bad_input_names_the_field(cal: Calendar, staff: Staff) -> None:
    resident = new_resident()
    bad_digit = resident[:11] + str((int(resident[11]) + 1) % 10)
    slot = cal.free_slot(A100, "SSK")
    open_terms = {"unit": A100, "time_type": "PROV", "purpose": PLAIN, "valid_until": today()}
    cases: list[tuple[Callable[[], Any], str, str]] = [
        (lambda: Staff("not-an-hsa-id"), "staff", "invalid"),
        (lambda: book(cal.conn, staff, resident=bad_digit, slot=slot.ref), "resident", "invalid"),
        (lambda: book(cal.conn, staff, resident="19991340" + "1234", slot=slot.ref), "resident", "invalid"),
        (lambda: book(cal.conn, staff, resident=resident, slot="T999999999"), "slot", "not_found"),
        (lambda: book(cal.conn, staff, resident=resident, slot="banan"), "slot", "not_found"),
        (lambda: book(cal.conn, staff, resident=resident, slot=""), "slot", "invalid"),
        (lambda: book(cal.conn, staff, resident=resident, slot=slot.ref, unit=A200), "slot", "not_found"),
        (
            lambda: invite_timed(cal.conn, staff, resident=resident, slot=slot.ref, unit=A200, purpose=PLAIN),
            "slot",
            "not_found",
        ),
        (lambda: cancel(cal.conn, staff, "B1", unit=A200), "booking_id", "not_found"),
        (lambda: book(cal.conn, staff, resident=resident, slot=slot.ref, reason="x" * 5000), "reason", "invalid"),
        (
            lambda: invite_open(cal.conn, staff, resident=resident, **{**open_terms, "unit": "SE2321000016-NONE"}),
            "unit",
            "not_found",
        ),
        (
            lambda: invite_open(cal.conn, staff, resident=resident, **{**open_terms, "time_type": "LAK9"}),
            "time_type",
            "not_found",
        ),
        (
            lambda: invite_open(
                cal.conn, staff, resident=resident, **{**open_terms, "valid_until": today() - timedelta(days=1)}
            ),
            "valid_until",
            "invalid",
        ),
        (
            lambda: invite_open(
                cal.conn, staff, resident=resident, **{**open_terms, "valid_until": datetime(2030, 1, 1)}
            ),
            "valid_until",
            "invalid",
        ),
        (
            lambda: invite_open(cal.conn, staff, resident=resident, **{**open_terms, "purpose": ""}),
            "purpose",
            "invalid",
        ),
        (
            lambda: invite_open(
                cal.conn, staff, resident=resident, **{**open_terms, "invitation_date": today() + timedelta(days=9)}
            ),
            "invitation_date",
            "invalid",
        ),
        (
            lambda: invite_timed(
                cal.conn,
                staff,
                resident=resident,
                slot=slot.ref,
                purpose=PLAIN,
                valid_until=today() - timedelta(days=1),
            ),
            "valid_until",
            "invalid",
        ),
        (lambda: invite_batch(cal.conn, staff, "", **{**open_terms, "campaign": " "}), "campaign", "invalid"),
        (lambda: cancel(cal.conn, staff, "B999999999"), "booking_id", "not_found"),
        (lambda: rebook(cal.conn, staff, "B999999999", slot=slot.ref), "booking_id", "not_found"),
        (lambda: day(cal.conn, "SE2321000016-NONE", today()), "unit", "not_found"),
    ]
    for attempt, field, code in cases:
        with pytest.raises(StaffError) as refusal:
            attempt()
        assert (refusal.value.field, refusal.value.code) == (field, code), refusal.value
        assert refusal.value.as_dict() == {"field": field, "message": refusal.value.message, "code": code}
        assert refusal.value.status == {"invalid": 400, "not_found": 404, "conflict": 409}[code]
        assert resident not in refusal.value.message and bad_digit not in refusal.value.message
    assert cal.bookings_of(resident) == 0 and cal.holder(slot.id) is None


def test_the_command_reports_bad_times(server: ProducerServer) -> None:
    line = refused(
        server, *acting("book", "--resident", new_resident(), "--unit", A100, "--start", "igår", "--end", "x")
    )
    assert line == "tidbok staff: start: must be a time like 2026-12-01T09:00 (Stockholm) or 20261201090000"
    assert refused(server, "day", A100, "2026-13-01") == "tidbok staff: day: must be a date like 2026-12-01"
    usage = run_staff(server, "book", "--resident", new_resident())
    assert usage.returncode == 2 and "--staff" in usage.stderr


# -- a unit's day ----------------------------------------------------------------------------------


def next_dst_days() -> tuple[date, date]:
    """The next spring-forward (23 h) and fall-back (25 h) days in Stockholm, after tomorrow."""
    found: dict[int, date] = {}
    for year in (today().year, today().year + 1):
        for month in (3, 10):
            day_ = last_sunday(year, month)
            if day_ > today() + timedelta(days=1) and month not in found:
                found[month] = day_
    return found[3], found[10]


def utc(on: date, hour: int, minute: int) -> datetime:
    return datetime(on.year, on.month, on.day, hour, minute, tzinfo=UTC)


def test_day_list_follows_the_stockholm_day_across_dst(server: ProducerServer, cal: Calendar, staff: Staff) -> None:
    spring, autumn = next_dst_days()
    eve_of_spring, eve_of_autumn = spring - timedelta(days=1), autumn - timedelta(days=1)
    # day: (UTC starts inside the Stockholm day, their local times, UTC starts just outside it)
    cases = {
        # 25 hours, from 22:00 UTC the evening before to 23:00 UTC; 02:30 happens twice
        autumn: (
            [utc(eve_of_autumn, 22, 30), utc(autumn, 0, 30), utc(autumn, 1, 30), utc(autumn, 22, 30)],
            ["00:30:00+02:00", "02:30:00+02:00", "02:30:00+01:00", "23:30:00+01:00"],
            [utc(eve_of_autumn, 21, 30), utc(autumn, 23, 10)],
        ),
        # 23 hours, from 23:00 UTC the evening before to 22:00 UTC; 02:00-03:00 does not exist
        spring: (
            [utc(eve_of_spring, 23, 30), utc(spring, 1, 30), utc(spring, 21, 30)],
            ["00:30:00+01:00", "03:30:00+02:00", "23:30:00+02:00"],
            [utc(eve_of_spring, 22, 30), utc(spring, 22, 30)],
        ),
    }
    for on, (inside, local_times, outside) in cases.items():
        inside_slots = [cal.add_slot(A100, "PROV", t) for t in inside]
        outside_slots = [cal.add_slot(A100, "PROV", t) for t in outside]
        ids = {
            s.ref: book(cal.conn, staff, resident=new_resident(), slot=s.ref).booking.booking_id
            for s in inside_slots + outside_slots
        }
        free = cal.add_slot(A100, "PROV", inside[0] + timedelta(minutes=10))

        listed = [
            s for s in staff_json(server, "day", A100, on.isoformat()) if s["slot"] in ids or s["slot"] == free.ref
        ]
        assert [s["slot"] for s in listed] == [s.ref for s in inside_slots]
        assert [s["starts_at"] for s in listed] == [f"{on.isoformat()}T{t}" for t in local_times]
        assert [s["booking"]["booking_id"] for s in listed] == [ids[s.ref] for s in inside_slots]
        with_free = [s["slot"] for s in staff_json(server, "day", A100, on.isoformat(), "--free")]
        assert with_free.index(free.ref) == with_free.index(inside_slots[0].ref) + 1
        service = [s.slot for s in day(cal.conn, A100.lower(), on) if s.slot in ids]
        assert service == [s.ref for s in inside_slots]

    text = run_staff(server, "day", A100, autumn.isoformat())
    assert text.returncode == 0
    for offset in ("+0200", "+0100"):  # both 02:30s, told apart
        assert f"{autumn:%Y-%m-%d} 02:30–02:40 {offset}" in text.stdout


def test_day_list_of_an_ordinary_day(cal: Calendar, staff: Staff) -> None:
    slot = cal.free_slot(A200, "PROV")
    resident = new_resident()
    made = invite_timed(cal.conn, staff, resident=resident, slot=slot.ref, purpose=PLAIN).booking
    on = slot.starts_at.astimezone(STOCKHOLM).date()
    listed = {s.slot: s for s in day(cal.conn, A200, on)}
    entry = listed[slot.ref]
    assert entry.booking is not None and (entry.booking.booking_id, entry.booking.kind) == (
        made.booking_id,
        "timed_invitation",
    )
    assert entry.booking.resident == resident and entry.starts_at == slot.starts_at
    assert all(s.booking is not None for s in listed.values())
    assert all(s.starts_at.astimezone(STOCKHOLM).date() == on for s in listed.values())


# -- every staff action reaches the engagement index ---------------------------------------------------


@pytest.fixture(scope="module")
def ei_loop(server: ProducerServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EiLoop]:
    if not CORE_XSD.is_file():
        pytest.skip("official EI contract not found")
    with publishing_into_a_stub(server.database_url, tmp_path_factory.mktemp("staff-ei")) as loop:
        yield loop


def settle(cal: Calendar, loop: EiLoop) -> None:
    """Wait (bounded) until the publisher has sent every pending outbox row; none may be parked."""
    settle_outbox(cal.db, loop.publisher, SETTLE_SECONDS)


def in_ei(loop: EiLoop, resident: str) -> dict[tuple[str, str, str], str]:
    """FindContent: (categorization, unit, bookingId) -> mostRecentContent of the resident's posts."""
    return {
        (p.categorization, p.logicalAddress, p.businessObjectInstanceIdentifier): p.mostRecentContent
        for p in loop.ei.find(registeredResidentIdentification=resident)
    }


def test_every_staff_action_reaches_ei(
    server: ProducerServer, cal: Calendar, staff: Staff, ei_loop: EiLoop, tmp_path: Path
) -> None:
    later = today() + timedelta(days=30)
    valid_until = later.isoformat()
    dated = f"{today():%Y%m%d}000000"
    # a timed invitation (the command) and an open one (the service)
    timed_resident, timed_slot = new_resident(), cal.free_slot(A200, "PROV")
    timed = staff_json(
        server, *acting("invite", "--resident", timed_resident, "--slot", timed_slot.ref, "--purpose", DOCBOOK)
    )
    open_resident = new_resident()
    opened = invite_open(
        cal.conn, staff, resident=open_resident, unit=A100, time_type="PROV", purpose=PLAIN, valid_until=later
    )
    # a screening call
    screened = [new_resident(), new_resident()]
    path = tmp_path / "screening.csv"
    path.write_text("\n".join(screened) + "\n", encoding="utf-8")
    report = staff_json(
        server,
        *acting("invite-batch", "--unit", A100, "--time-type", "PROV", "--campaign", "ei-check"),
        *("--purpose", PLAIN, "--valid-until", valid_until, str(path)),
    )
    # booked, then moved to another unit; booked, then cancelled; an open invitation given a time
    moved_resident, first, second = new_resident(), cal.free_slot(A100, "PROV"), cal.free_slot(A200, "PROV")
    moved = staff_json(server, *acting("book", "--resident", moved_resident, "--slot", first.ref))["booking"][
        "booking_id"
    ]
    staff_json(server, *acting("rebook", moved, "--slot", second.ref))
    cancelled_resident = new_resident()
    cancelled = book(cal.conn, staff, resident=cancelled_resident, slot=cal.free_slot(A100, "LAK").ref).booking
    given_resident, given_slot = new_resident(), cal.free_slot(A100, "PROV")
    given = invite_open(
        cal.conn, staff, resident=given_resident, unit=A100, time_type="PROV", purpose=PLAIN, valid_until=later
    ).booking
    settle(cal, ei_loop)
    assert in_ei(ei_loop, given_resident) == {("Invitation", A100, given.booking_id): dated}
    assert in_ei(ei_loop, cancelled_resident) == {("Booking", A100, cancelled.booking_id): wire(cancelled.starts_at)}
    assert in_ei(ei_loop, timed_resident) == {
        ("Invitation", A200, timed["booking"]["booking_id"]): wire(timed_slot.starts_at)
    }
    # cancelled; given a time (Invitation -> Booking); a timed invitation moved to A100 (a new key)
    cancel(cal.conn, staff, cancelled.booking_id)
    rebook(cal.conn, staff, given.booking_id, slot=given_slot.ref)
    timed_moved_to = cal.free_slot(A100, "PROV")
    rebook(cal.conn, staff, timed["booking"]["booking_id"], slot=timed_moved_to.ref)
    settle(cal, ei_loop)

    assert in_ei(ei_loop, timed_resident) == {
        ("Invitation", A100, timed["booking"]["booking_id"]): wire(timed_moved_to.starts_at)
    }
    assert in_ei(ei_loop, open_resident) == {("Invitation", A100, opened.booking.booking_id): dated}
    for invited in report["invited"]:
        assert in_ei(ei_loop, invited["resident"]) == {("Invitation", A100, invited["booking_id"]): dated}
    assert [i["resident"] for i in report["invited"]] == screened
    assert in_ei(ei_loop, moved_resident) == {("Booking", A200, moved): wire(second.starts_at)}
    assert in_ei(ei_loop, cancelled_resident) == {}
    assert in_ei(ei_loop, given_resident) == {("Booking", A100, given.booking_id): wire(given_slot.starts_at)}


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_a_batch_file_from_excel_in_windows_1252_is_refused_clearly(
    server: ProducerServer, cal: Calendar, tmp_path: Path, encoding: str
) -> None:
    """Swedish Excel's plain "CSV" is Windows-1252: refused by line, with what to do, never a codec
    message; nobody is invited (the file is read before anything is written)."""
    resident = new_resident()
    path = tmp_path / "lista.csv"
    path.write_bytes(f"personnummer;namn\n{resident};Åsa Öberg\n".encode(encoding))
    before = cal.conn.execute("SELECT count(*) FROM booking").fetchone()[0]
    result = run_staff(
        server,
        *acting("invite-batch", "--unit", A100, "--time-type", "PROV", "--campaign", f"latin-{encoding}"),
        *("--purpose", "Välkommen", "--valid-until", (today() + timedelta(days=60)).isoformat(), str(path)),
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        f"tidbok staff: csv: {path} line 2: not UTF-8 text (Windows-1252 or Latin-1, as Excel's plain CSV?):"
        " save it as 'CSV UTF-8' / inte UTF-8: spara filen som 'CSV UTF-8 (kommaavgränsad)'"
    )
    assert "codec" not in result.stderr
    assert cal.conn.execute("SELECT count(*) FROM booking").fetchone()[0] == before
