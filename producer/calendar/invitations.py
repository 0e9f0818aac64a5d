"""Invitations (kallelser) a clinic sends: timed (holding a slot), open (a time type at a unit, booked
later by the resident), or open for every resident of a screening call's list.

Invitations get the id "K" + key under both id policies. A campaign makes an invitation idempotent
per unit, campaign and resident: the 0003 unique index decides inside one INSERT … ON CONFLICT DO
NOTHING, so even two calls at once cannot invite twice. Each invitation's history row and EI
outbox row (its post created) are written in its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg

from producer.calendar import history, refusals, slots
from producer.calendar.changes import ContactColumns, Outcome, check_free
from producer.calendar.ids import INVITATION_PREFIX
from producer.calendar.outbox import ei_post
from producer.calendar.policy import Actor
from producer.calendar.refusals import Refusal
from producer.calendar.slots import SlotRow

_INVITATION_CONTACT = ("first_name", "middle_name", "last_name", "phone", "email")
# A refusal's resident text, though only staff invite (not in resident_texts: no SOAP answer says it).
_ALREADY_INVITED = "Du är redan kallad. Kontakta mottagningen."


@dataclass(frozen=True)
class OpenTerms:
    """What every open invitation of one call (a single one, or a screening batch) shares, checked
    by the channel: where, what, why (`purpose`, in `purpose_format`), from when and until when."""

    unit: str
    time_type: str
    care_type: str | None
    purpose: str
    purpose_format: str
    invitation_date: date
    valid_until: datetime

    def post(self, resident: str, booking_id: str, now: datetime) -> dict[str, Any] | None:
        """The EI post of an open invitation on these terms: its business date until it is booked."""
        return ei_post(
            status="active",
            kind="open_invitation",
            subject_of_care=resident,
            unit_hsa_id=self.unit,
            booking_id=booking_id,
            starts_at=None,
            invitation_date=self.invitation_date,
            valid_until=self.valid_until,
            now=now,
        )

    def details(self, campaign: str | None) -> dict[str, Any]:
        """What booking_event records of an open invitation's creation."""
        return {"purpose_format": self.purpose_format, "valid_until": self.valid_until, "campaign": campaign}


def _insert(conn: psycopg.Connection, values: dict[str, Any]) -> int:
    """Insert the invitation, once per unit, campaign and resident; returns its key."""
    pk = conn.execute("SELECT nextval(pg_get_serial_sequence('booking', 'pk'))").fetchone()[0]
    columns = {**{column: None for column in _INVITATION_CONTACT}, **values}
    row = conn.execute(
        "INSERT INTO booking (pk, booking_id, unit_hsa_id, kind, subject_of_care, first_name, middle_name, last_name,"
        " phone, email, purpose, time_type_code, care_type_code, invitation_date, valid_until, campaign)"
        " VALUES (%(pk)s, %(booking_id)s, %(unit)s, %(kind)s, %(resident)s, %(first_name)s, %(middle_name)s,"
        " %(last_name)s, %(phone)s, %(email)s, %(purpose)s, %(time_type)s, %(care_type)s, %(invitation_date)s,"
        " %(valid_until)s, %(campaign)s)"
        " ON CONFLICT (unit_hsa_id, campaign, subject_of_care) WHERE campaign IS NOT NULL DO NOTHING RETURNING pk",
        {**columns, "pk": pk, "booking_id": f"{INVITATION_PREFIX}{pk}"},
    ).fetchone()
    if row is None:
        existing = conn.execute(
            "SELECT booking_id FROM booking WHERE unit_hsa_id = %s AND campaign = %s AND subject_of_care = %s",
            (values["unit"], values["campaign"], values["resident"]),
        ).fetchone()
        shown = existing[0] if existing else "an earlier invitation"
        staff = f"already invited in campaign {values['campaign']} ({shown})"
        raise Refusal("resident", _ALREADY_INVITED, staff, "conflict")
    return pk


def _contact(contact: ContactColumns | None) -> dict[str, str | None]:
    given = contact or {}
    return {column: given.get(column) for column in _INVITATION_CONTACT}


def invite_timed(
    conn: psycopg.Connection,
    actor: Actor,
    slot: SlotRow,
    *,
    resident: str,
    purpose: str,
    purpose_format: str,
    valid_until: datetime | None,
    campaign: str | None,
    now: datetime,
    contact: ContactColumns | None = None,
) -> Outcome:
    """A timed invitation holding a free slot (taken as bookings take theirs: never twice); its post
    leaves EI at the start or at `valid_until`, whichever is first."""
    check_free(conn, actor, slot, now, None)
    values = {
        **_contact(contact),
        "unit": slot.unit_hsa_id,
        "kind": "timed_invitation",
        "resident": resident,
        "purpose": purpose,
        "time_type": slot.time_type_code,
        "care_type": slot.care_type_code,
        "invitation_date": None,
        "valid_until": valid_until,
        "campaign": campaign,
    }
    pk = _insert(conn, values)
    if not slots.take(conn, slot.id, pk):
        raise refusals.slot_taken(slot.id)
    booking_id = f"{INVITATION_PREFIX}{pk}"
    after = ei_post(
        status="active",
        kind="timed_invitation",
        subject_of_care=resident,
        unit_hsa_id=slot.unit_hsa_id,
        booking_id=booking_id,
        starts_at=slot.starts_at,
        invitation_date=None,
        valid_until=valid_until,
        now=now,
    )
    details = {
        "booking_id": booking_id,
        "slot": slot.id,
        "purpose_format": purpose_format,
        "valid_until": valid_until,
        "campaign": campaign,
    }
    history.write(conn, actor, pk, "invite", details, None, after)
    return Outcome(pk, booking_id, True)


def invite_open(
    conn: psycopg.Connection,
    actor: Actor,
    terms: OpenTerms,
    *,
    resident: str,
    campaign: str | None,
    now: datetime,
    contact: ContactColumns | None = None,
) -> Outcome:
    """An open invitation: a time type at a unit, valid until the terms' end, with no slot; the
    resident books it with MakeBooking quoting its id, or staff give it a time (changes.rebook)."""
    values = {
        **_contact(contact),
        "unit": terms.unit,
        "kind": "open_invitation",
        "resident": resident,
        "purpose": terms.purpose,
        "time_type": terms.time_type,
        "care_type": terms.care_type,
        "invitation_date": terms.invitation_date,
        "valid_until": terms.valid_until,
        "campaign": campaign,
    }
    pk = _insert(conn, values)
    booking_id = f"{INVITATION_PREFIX}{pk}"
    details = {"booking_id": booking_id, **terms.details(campaign)}
    history.write(conn, actor, pk, "invite", details, None, terms.post(resident, booking_id, now))
    return Outcome(pk, booking_id, True)


def invite_open_many(
    conn: psycopg.Connection, actor: Actor, terms: OpenTerms, residents: list[str], campaign: str, now: datetime
) -> tuple[dict[str, str], dict[str, str]]:
    """Open invitations on the same terms for every resident of a screening call, in one transaction;
    those the campaign had invited already are left as they are. Returns (resident -> id) of those
    invited now and of those invited before."""
    with conn.transaction():
        created = conn.execute(
            "WITH input AS (SELECT nextval(pg_get_serial_sequence('booking', 'pk')) AS pk, r.resident, r.n"
            " FROM unnest(%(residents)s::text[]) WITH ORDINALITY AS r(resident, n))"
            " INSERT INTO booking (pk, booking_id, unit_hsa_id, kind, subject_of_care, purpose, time_type_code,"
            " care_type_code, invitation_date, valid_until, campaign)"
            " SELECT pk, %(prefix)s || pk, %(unit)s, 'open_invitation', resident, %(purpose)s, %(time_type)s,"
            " %(care_type)s, %(invitation_date)s, %(valid_until)s, %(campaign)s FROM input ORDER BY n"
            " ON CONFLICT (unit_hsa_id, campaign, subject_of_care) WHERE campaign IS NOT NULL DO NOTHING"
            " RETURNING pk, booking_id, subject_of_care",
            {
                "residents": residents,
                "prefix": INVITATION_PREFIX,
                "unit": terms.unit,
                "purpose": terms.purpose,
                "time_type": terms.time_type,
                "care_type": terms.care_type,
                "invitation_date": terms.invitation_date,
                "valid_until": terms.valid_until,
                "campaign": campaign,
            },
        ).fetchall()
        details = terms.details(campaign)
        with conn.pipeline():
            for pk, booking_id, resident in created:
                post = terms.post(resident, booking_id, now)
                history.write(conn, actor, pk, "invite", {"booking_id": booking_id, **details}, None, post)
        invited = {resident: booking_id for _pk, booking_id, resident in created}
        existing = dict(
            conn.execute(
                "SELECT subject_of_care, booking_id FROM booking"
                " WHERE unit_hsa_id = %s AND campaign = %s AND subject_of_care = ANY(%s)",
                (terms.unit, campaign, [r for r in residents if r not in invited]),
            ).fetchall()
        )
    return invited, existing
