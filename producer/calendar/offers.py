"""Egen provhantering (EP) offers a campaign gives residents: the outbox rows, written in the
campaign's (or the withdrawal's) own transaction, and what staff read of them.

An offer is one AddGivenOfferByExternalSystem per resident (EP takes one personnummer a call); a
withdrawal is its UndoGivenOfferByExternalSystem, with the same seven fields, since EP removes the
latest offer given with exactly that information. Each row is the call as it will be sent, so a
retry after a crash sends the same call again (at least once: EP's "identical offer within the
time limit" guard answers a repeated add with OfferAlreadyGivenWithinTimeLimitTryLater, recorded as
already given). egen_provhantering.publisher sends the rows; here: writing and reading them.

A campaign gives each resident its offer once (the ep_offer_once index decides, as 0003's does for
invitations). A withdrawal of an offer that was never sent drops it (nothing to undo); otherwise it
queues the undo behind the add. What staff see per resident is the state of its latest row
(`status`): pending, given, already_given, refused (EP's validation text), failed (gave up after
technical errors), withdrawing, withdrawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

STATUSES = ("pending", "given", "already_given", "refused", "failed", "withdrawing", "withdrawn")
_FIELDS = ("access_unit_id", "unit_offer_id", "hc_professional_id", "hc_first_name", "hc_last_name", "notify_resident")
_COLUMNS = ", ".join(_FIELDS)
_ASSIGN = ", ".join(f"{name} = %s" for name in _FIELDS)


@dataclass(frozen=True)
class OfferTerms:
    """What every resident's offer of a campaign carries besides the personnummer (the request's
    AccessUnitID, UnitOfferID, HCProfessionalID, HCProfessionalFirstName/LastName, NotifyResident)."""

    access_unit_id: str
    unit_offer_id: str
    hc_professional_id: str
    hc_first_name: str
    hc_last_name: str
    notify_resident: bool

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)


@dataclass(frozen=True)
class ResidentOffer:
    """A resident's offer in a campaign as staff see it: the state of its latest call."""

    resident: str
    status: str  # one of STATUSES
    booking_id: str | None  # the campaign's invitation, when it has one
    detail: str | None  # EP's validation texts (refused), the last technical error (pending, failed)
    attempts: int
    updated_at: datetime
    validation_errors: list[dict[str, str]]


def medical_unit(conn: psycopg.Connection, unit_hsa_id: str) -> str:
    """The care unit an offer is given from (AccessUnitID): the unit's care unit with the medical
    responsibility (vårdenhet, as EP means it), else the unit itself."""
    row = conn.execute(
        "SELECT coalesce(medical_unit_hsa_id, hsa_id) FROM care_unit WHERE hsa_id = %s", (unit_hsa_id,)
    ).fetchone()
    assert row is not None, f"no care unit {unit_hsa_id}"  # the channel checked the unit
    return row[0]


def time_type_offer(conn: psycopg.Connection, unit_hsa_id: str, code: str) -> str | None:
    """The UnitOfferID a time type names (its campaigns give that offer unless they name another)."""
    row = conn.execute(
        "SELECT ep_unit_offer_id FROM time_type WHERE unit_hsa_id = %s AND code = %s", (unit_hsa_id, code)
    ).fetchone()
    return row[0] if row else None


def campaign_terms(conn: psycopg.Connection, unit_hsa_id: str, campaign: str) -> OfferTerms | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM ep_campaign WHERE unit_hsa_id = %s AND campaign = %s",
        (unit_hsa_id, campaign),
    ).fetchone()
    return OfferTerms(*row) if row else None


def campaigns(conn: psycopg.Connection, unit_hsa_id: str) -> list[tuple[str, OfferTerms, datetime]]:
    """The unit's campaigns that give EP offers: (name, terms, when first run), newest first."""
    rows = conn.execute(
        f"SELECT campaign, {_COLUMNS}, created_at FROM ep_campaign WHERE unit_hsa_id = %s"
        " ORDER BY created_at DESC, campaign",
        (unit_hsa_id,),
    ).fetchall()
    return [(row[0], OfferTerms(*row[1:7]), row[7]) for row in rows]


def set_campaign(
    conn: psycopg.Connection, unit_hsa_id: str, campaign: str, terms: OfferTerms, created_by: str | None
) -> OfferTerms:
    """The campaign's terms: these, when it had none yet; else the ones it has (the caller compares:
    a campaign's residents all get the same offer)."""
    conn.execute(
        f"INSERT INTO ep_campaign (unit_hsa_id, campaign, {_COLUMNS}, created_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (unit_hsa_id, campaign) DO NOTHING",
        (unit_hsa_id, campaign, *terms.values(), created_by),
    )
    stored = campaign_terms(conn, unit_hsa_id, campaign)
    assert stored is not None
    return stored


def queue_adds(
    conn: psycopg.Connection,
    unit_hsa_id: str,
    campaign: str,
    residents: Sequence[tuple[str, int | None]],
    created_by: str | None,
) -> tuple[list[str], list[str]]:
    """An add per resident (with the booking of its invitation, if any) on the campaign's terms, in
    the caller's transaction, in the order given; those the campaign gave an offer already are left
    as they are. Returns (residents queued now, residents the campaign had already)."""
    terms = campaign_terms(conn, unit_hsa_id, campaign)
    assert terms is not None, "set_campaign first"
    queued = conn.execute(
        f"INSERT INTO ep_offer (unit_hsa_id, campaign, resident, action, booking_pk, {_COLUMNS}, created_by)"
        " SELECT %(unit)s, %(campaign)s, r.resident, 'add', r.booking_pk, c.access_unit_id, c.unit_offer_id,"
        " c.hc_professional_id, c.hc_first_name, c.hc_last_name, c.notify_resident, %(by)s"
        " FROM unnest(%(residents)s::text[], %(bookings)s::bigint[]) WITH ORDINALITY AS r(resident, booking_pk, n)"
        " JOIN ep_campaign c ON c.unit_hsa_id = %(unit)s AND c.campaign = %(campaign)s ORDER BY r.n"
        " ON CONFLICT (unit_hsa_id, campaign, resident) WHERE action = 'add' DO NOTHING RETURNING resident",
        {
            "unit": unit_hsa_id,
            "campaign": campaign,
            "by": created_by,
            "residents": [resident for resident, _ in residents],
            "bookings": [booking_pk for _, booking_pk in residents],
        },
    ).fetchall()
    now = {resident for (resident,) in queued}
    return [r for r, _ in residents if r in now], [r for r, _ in residents if r not in now]


# The add row, locked unless a publisher holds it (it may be sending it right now).
_ADD = (
    "SELECT id, state FROM ep_offer WHERE unit_hsa_id = %s AND campaign = %s AND resident = %s AND action = 'add'"
    " FOR UPDATE SKIP LOCKED"
)


def withdraw(
    conn: psycopg.Connection, unit_hsa_id: str, campaign: str, resident: str, created_by: str | None
) -> str | None:
    """Withdraw the campaign's offer to the resident, in the caller's transaction. Returns what was
    done: "dropped" (never sent: nothing will be), "undo" (the undo is queued behind the add),
    "already" (withdrawn before), or None (the campaign gave the resident no offer)."""
    exists = conn.execute(
        "SELECT 1 FROM ep_offer WHERE unit_hsa_id = %s AND campaign = %s AND resident = %s AND action = 'add'",
        (unit_hsa_id, campaign, resident),
    ).fetchone()
    if exists is None:
        return None
    latest = conn.execute(
        "SELECT action, state FROM ep_offer WHERE unit_hsa_id = %s AND campaign = %s AND resident = %s"
        " ORDER BY id DESC LIMIT 1",
        (unit_hsa_id, campaign, resident),
    ).fetchone()
    if latest[0] == "undo" or latest[1] == "dropped":
        return "already"
    add = conn.execute(_ADD, (unit_hsa_id, campaign, resident)).fetchone()
    if add is not None and (add[1] == "pending" or (add[1] == "parked" and _refused(conn, add[0]))):
        # not sent yet (and no publisher has it), or EP refused it: nothing was given
        conn.execute(
            "UPDATE ep_offer SET state = 'dropped', next_attempt_at = 'epoch' WHERE id = %s AND action = 'add'",
            (add[0],),
        )
        return "dropped"
    conn.execute(
        f"INSERT INTO ep_offer (unit_hsa_id, campaign, resident, action, booking_pk, {_COLUMNS}, created_by)"
        f" SELECT unit_hsa_id, campaign, resident, 'undo', booking_pk, {_COLUMNS}, %s FROM ep_offer"
        " WHERE unit_hsa_id = %s AND campaign = %s AND resident = %s AND action = 'add'",
        (created_by, unit_hsa_id, campaign, resident),
    )
    return "undo"


def _refused(conn: psycopg.Connection, row_id: int) -> bool:
    row = conn.execute("SELECT outcome FROM ep_offer WHERE id = %s AND state = 'parked'", (row_id,)).fetchone()
    return row is not None and row[0] == "refused"


def offer_of_booking(conn: psycopg.Connection, booking_pk: int) -> tuple[str, str, str] | None:
    """(unit, campaign, resident) of the offer a campaign's invitation came with, if it has one."""
    row = conn.execute(
        "SELECT unit_hsa_id, campaign, resident FROM ep_offer WHERE booking_pk = %s AND action = 'add'", (booking_pk,)
    ).fetchone()
    return (row[0], row[1], row[2]) if row else None


def retry(
    conn: psycopg.Connection,
    unit_hsa_id: str,
    campaign: str,
    residents: Sequence[str] | None,
    terms: OfferTerms | None,
) -> int:
    """Queue the campaign's parked rows again (all, or those of these residents), after staff fixed
    what EP refused: `terms`, when given, become the campaign's and its parked adds' (an undo keeps
    its add's fields: it must name the offer that was given). Returns how many rows were queued."""
    if terms is not None:
        conn.execute(
            f"UPDATE ep_campaign SET {_ASSIGN} WHERE unit_hsa_id = %s AND campaign = %s",
            (*terms.values(), unit_hsa_id, campaign),
        )
        conn.execute(
            f"UPDATE ep_offer SET {_ASSIGN}"
            " WHERE unit_hsa_id = %s AND campaign = %s AND state = 'parked' AND action = 'add'"
            " AND (%s::text[] IS NULL OR resident = ANY(%s))",
            (*terms.values(), unit_hsa_id, campaign, residents, residents),
        )
    # an add withdrawn since it was parked is not sent (its undo went, or goes, without it)
    conn.execute(
        "UPDATE ep_offer a SET state = 'dropped' WHERE a.unit_hsa_id = %s AND a.campaign = %s AND a.state = 'parked'"
        " AND a.action = 'add' AND (%s::text[] IS NULL OR a.resident = ANY(%s)) AND EXISTS (SELECT 1 FROM ep_offer u"
        " WHERE u.unit_hsa_id = a.unit_hsa_id AND u.campaign = a.campaign AND u.resident = a.resident AND u.id > a.id)",
        (unit_hsa_id, campaign, residents, residents),
    )
    rows = conn.execute(
        "UPDATE ep_offer SET state = 'pending', outcome = NULL, attempts = 0, next_attempt_at = 'epoch',"
        " parked_at = NULL WHERE unit_hsa_id = %s AND campaign = %s AND state = 'parked'"
        " AND (%s::text[] IS NULL OR resident = ANY(%s)) RETURNING id",
        (unit_hsa_id, campaign, residents, residents),
    ).fetchall()
    return len(rows)


def statuses(
    conn: psycopg.Connection, unit_hsa_id: str, campaign: str, residents: Sequence[str] | None = None
) -> list[ResidentOffer]:
    """Every resident's offer in the campaign (or these residents'), in the order they were queued."""
    rows = conn.execute(
        "SELECT DISTINCT ON (o.resident) o.resident, o.action, o.state, o.outcome, o.last_error, o.attempts,"
        " coalesce(o.sent_at, o.parked_at, o.created_at), o.validation_errors, b.booking_id,"
        " (SELECT a.id FROM ep_offer a WHERE a.unit_hsa_id = o.unit_hsa_id AND a.campaign = o.campaign"
        "  AND a.resident = o.resident AND a.action = 'add')"
        " FROM ep_offer o LEFT JOIN booking b ON b.pk = o.booking_pk"
        " WHERE o.unit_hsa_id = %s AND o.campaign = %s AND (%s::text[] IS NULL OR o.resident = ANY(%s))"
        " ORDER BY o.resident, o.id DESC",
        (unit_hsa_id, campaign, residents, residents),
    ).fetchall()
    found = [
        (
            add_id,
            ResidentOffer(
                resident,
                _status(action, state, outcome),
                booking_id,
                _detail(state, last_error, errors),
                attempts,
                at,
                list(errors or []),
            ),
        )
        for resident, action, state, outcome, last_error, attempts, at, errors, booking_id, add_id in rows
    ]
    return [offer for _, offer in sorted(found, key=lambda pair: pair[0])]


def _status(action: str, state: str, outcome: str | None) -> str:
    if state == "dropped":
        return "withdrawn"
    if state == "parked":
        return "refused" if outcome == "refused" else "failed"
    if action == "undo":
        return "withdrawing" if state == "pending" else "withdrawn"
    if state == "pending":
        return "pending"
    return "already_given" if outcome == "already_given" else "given"


def _detail(state: str, last_error: str | None, errors: list[dict[str, str]] | None) -> str | None:
    if state == "parked" and errors:
        return "; ".join(e.get("text") or e.get("element") or "" for e in errors)
    return last_error if state in ("pending", "parked") else None


def counts(conn: psycopg.Connection, unit_hsa_id: str, campaign: str) -> dict[str, int]:
    """How many of the campaign's residents are in each status (every status named, 0 or more)."""
    found = dict.fromkeys(STATUSES, 0)
    for offer in statuses(conn, unit_hsa_id, campaign):
        found[offer.status] += 1
    return found
