"""Egen provhantering (EP) offers of a campaign: run a campaign as EP offers (with its screening
invitations, or alone), see each resident's offer, retry what EP refused once it is fixed, and
withdraw one.

An offer carries, besides the personnummer: the care unit giving it (AccessUnitID: the unit's care
unit with the medical responsibility, else the unit), who gives it (HCProfessionalID and names: the
staff member, or a function such as "Screeningverksamheten", [ep] giver_* by default; the names are
shown to the resident), whether EP notifies the resident (NotifyResident, default yes) and which
of the unit's offers in EP it is (UnitOfferID: the campaign's, else its time type's). A campaign's
residents all get the same offer: the terms are fixed when it first gives one (a retry may correct
them). The rows go out through the outbox (producer.calendar.offers), written in the campaign's
transaction; egen_provhantering.publisher sends them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import psycopg

from producer.calendar import invitations, offers
from producer.calendar.offers import OfferTerms, ResidentOffer
from producer.staff import checks
from producer.staff.actor import Staff
from producer.staff.audit import audited
from producer.staff.errors import StaffError
from producer.staff.invitations import open_terms
from producer.staff.results import (
    AlreadyInvited,
    BatchReport,
    CampaignOffers,
    InvalidLine,
    Invited,
    Offered,
    OfferReport,
    Retried,
    Withdrawn,
)
from producer.staff.screening import read_personnummer
from producer.sweden.identifiers import is_reserve_number, is_valid_hsa_id, normalise_hsa_id

MAX_OFFER_ID = 50
MAX_NAME = 100
NOT_OFFERED = (
    "a reserve number cannot get an offer in Egen provhantering (it needs a personnummer or samordningsnummer)"
)


@dataclass(frozen=True)
class OfferChoice:
    """What staff choose for a campaign's EP offers; what they leave out comes from the campaign (if
    it has given offers already), the time type (UnitOfferID), the configuration ([ep] giver_*) or
    the staff member (HCProfessionalID)."""

    unit_offer_id: str | None = None
    notify_resident: bool | None = None  # default: yes
    giver_id: str | None = None  # HCProfessionalID
    giver_first_name: str | None = None
    giver_last_name: str | None = None

    def names_anything(self) -> bool:
        return any(value is not None for value in vars(self).values())


def _text(field_name: str, value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    if len(value) > limit:
        raise StaffError(field_name, f"is longer than {limit} characters")
    return value


def _offer_id(value: str | None) -> str | None:
    value = _text("ep.unit_offer_id", value, MAX_OFFER_ID)
    if value is None or not value.strip():
        return None
    if any(ch.isspace() for ch in value.strip()):
        raise StaffError(
            "ep.unit_offer_id", "is an id without spaces (the last number of the offer's EP Admin address)"
        )
    return value.strip()


def terms_for(
    conn: psycopg.Connection, staff: Staff, unit_hsa_id: str, time_type: str | None, choice: OfferChoice
) -> OfferTerms:
    """The terms these choices give at the unit (checked), filled in as OfferChoice says."""
    unit_offer_id = _offer_id(choice.unit_offer_id)
    if unit_offer_id is None and time_type is not None:
        unit_offer_id = offers.time_type_offer(conn, unit_hsa_id, time_type)
    if unit_offer_id is None:
        named = f" and time type {time_type} names none" if time_type else ""
        raise StaffError("ep.unit_offer_id", f"name the offer in Egen provhantering (UnitOfferID){named}")
    settings = staff.settings
    if choice.giver_id is None and choice.giver_first_name is None and choice.giver_last_name is None:
        # the configured function, else the staff member (who must then be named)
        giver = settings.ep_giver_id or staff.hsa_id
        first, last = (
            (settings.ep_giver_first_name, settings.ep_giver_last_name) if settings.ep_giver_id else (None, None)
        )
    else:
        giver = choice.giver_id or staff.hsa_id
        first, last = choice.giver_first_name, choice.giver_last_name
    giver = normalise_hsa_id(giver)
    if not is_valid_hsa_id(giver):
        raise StaffError("ep.giver_id", "must be an HSA-id, e.g. SE2321000016-RCC1 (a person or a function)")
    first = (_text("ep.giver_first_name", first, MAX_NAME) or "").strip()
    last = (_text("ep.giver_last_name", last, MAX_NAME) or "").strip()
    if not first and not last:
        raise StaffError(
            "ep.giver_first_name",
            "the resident is shown who gives the offer: give a first or last name (a person, or a function such as"
            " Screeningverksamheten), or configure [ep] giver_id, giver_first_name and giver_last_name",
        )
    notify = True if choice.notify_resident is None else bool(choice.notify_resident)
    # EP allows a single space for a name a function does not have
    return OfferTerms(offers.medical_unit(conn, unit_hsa_id), unit_offer_id, giver, first or " ", last or " ", notify)


def _campaign_terms(
    conn: psycopg.Connection, staff: Staff, unit_hsa_id: str, campaign: str, time_type: str | None, choice: OfferChoice
) -> OfferTerms:
    """The campaign's terms: those it has (a batch naming others is refused), else these choices'."""
    stored = offers.campaign_terms(conn, unit_hsa_id, campaign)
    if stored is not None and not choice.names_anything():
        return stored
    wanted = terms_for(conn, staff, unit_hsa_id, time_type, choice)
    terms = offers.set_campaign(conn, unit_hsa_id, campaign, wanted, staff.hsa_id)
    if terms != wanted:
        raise StaffError(
            "ep",
            f"campaign {campaign} gives UnitOfferID {terms.unit_offer_id} from {terms.access_unit_id} by"
            f" {terms.hc_professional_id} (notify {'yes' if terms.notify_resident else 'no'}): every resident of a"
            " campaign gets the same offer; leave the offer's fields out, or correct them with a retry",
            "conflict",
        )
    return terms


def _queue(
    conn: psycopg.Connection,
    staff: Staff,
    unit_hsa_id: str,
    campaign: str,
    terms: OfferTerms,
    residents: list[tuple[int, str]],
    bookings: dict[str, int],
) -> OfferReport:
    """An add per resident (not for a reserve number: EP knows personnummer and samordningsnummer only)."""
    usable = [(line, r) for line, r in residents if not is_reserve_number(r)]
    queued, already = offers.queue_adds(
        conn, unit_hsa_id, campaign, [(r, bookings.get(r)) for _, r in usable], staff.hsa_id
    )
    line_of = {r: line for line, r in usable}
    return OfferReport(
        unit_offer_id=terms.unit_offer_id,
        access_unit_id=terms.access_unit_id,
        queued=[Offered(line_of[r], r) for r in queued],
        already_offered=[Offered(line_of[r], r) for r in already],
        not_offered=[InvalidLine(line, NOT_OFFERED) for line, r in residents if is_reserve_number(r)],
    )


def _distinct(found: list[tuple[int, str]]) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(first line of each resident, later lines of one already listed)."""
    first: dict[str, int] = {}
    repeated = []
    for line, resident in found:
        if resident in first:
            repeated.append((line, resident))
        else:
            first[resident] = line
    return [(line, r) for r, line in first.items()], repeated


@audited("StaffInviteBatchWithOffers")
def invite_batch_with_offers(
    conn: psycopg.Connection,
    staff: Staff,
    csv_text: str,
    *,
    unit: str,
    time_type: str,
    campaign: str,
    purpose: str,
    valid_until: date | datetime,
    ep: OfferChoice,
    invitation_date: date | None = None,
    now: datetime | None = None,
) -> BatchReport:
    """A screening batch (producer.staff.screening) whose residents also get an EP offer, in one
    transaction: the invitations, the campaign's terms and the outbox rows commit together or not at all."""
    now = now or datetime.now(UTC)
    name = checks.campaign(campaign)
    if name is None:
        raise StaffError("campaign", "a screening call needs a campaign name: it makes the batch safe to load again")
    terms = open_terms(conn, unit, time_type, purpose, valid_until, invitation_date, now)
    found, invalid = read_personnummer(csv_text)
    residents, repeated = _distinct(found)
    with conn.transaction():
        offer_terms = _campaign_terms(conn, staff, terms.unit, name, terms.time_type, ep)
        invited_ids, existing = invitations.invite_open_many(
            conn, staff.actor(), terms, [r for _, r in residents], name, now
        )
        known = {**existing, **invited_ids}
        pks = dict(
            conn.execute(
                "SELECT subject_of_care, pk FROM booking WHERE unit_hsa_id = %s AND campaign = %s"
                " AND subject_of_care = ANY(%s)",
                (terms.unit, name, list(known)),
            ).fetchall()
        )
        report = _queue(conn, staff, terms.unit, name, offer_terms, residents, pks)
    line_of = {r: line for line, r in residents}
    already = [AlreadyInvited(line_of[r], r, existing[r]) for _, r in residents if r in existing]
    already += [AlreadyInvited(line, r, known[r]) for line, r in repeated]
    return BatchReport(
        unit=terms.unit,
        campaign=name,
        invited=[Invited(line_of[r], r, invited_ids[r]) for _, r in residents if r in invited_ids],
        already_invited=sorted(already, key=lambda a: a.line),
        invalid=invalid,
        offers=report,
    )


@audited("StaffOfferBatch")
def offer_batch(
    conn: psycopg.Connection,
    staff: Staff,
    csv_text: str,
    *,
    unit: str,
    campaign: str,
    ep: OfferChoice,
    time_type: str | None = None,
) -> BatchReport:
    """A campaign of EP offers alone (no invitation): an offer per resident of the list, once per
    campaign; `time_type` only names the UnitOfferID when the choice does not."""
    unit_hsa_id = checks.unit(conn, unit)
    name = checks.campaign(campaign)
    if name is None:
        raise StaffError("campaign", "a campaign needs a name: it makes the list safe to load again")
    code = checks.time_type(conn, unit_hsa_id, time_type)[0] if time_type else None
    found, invalid = read_personnummer(csv_text)
    residents, repeated = _distinct(found)
    with conn.transaction():
        terms = _campaign_terms(conn, staff, unit_hsa_id, name, code, ep)
        report = _queue(conn, staff, unit_hsa_id, name, terms, residents, {})
    report.already_offered.extend(Offered(line, r) for line, r in repeated)
    report.already_offered.sort(key=lambda o: o.line)
    return BatchReport(unit=unit_hsa_id, campaign=name, invited=[], already_invited=[], invalid=invalid, offers=report)


def _campaign(conn: psycopg.Connection, unit: str, campaign: str | None) -> tuple[str, str, OfferTerms]:
    unit_hsa_id = checks.unit(conn, unit)
    name = checks.campaign(campaign)
    if name is None:
        raise StaffError("campaign", "name the campaign")
    terms = offers.campaign_terms(conn, unit_hsa_id, name)
    if terms is None:
        raise StaffError(
            "campaign", f"campaign {name} at {unit_hsa_id} gives no offers in Egen provhantering", "not_found"
        )
    return unit_hsa_id, name, terms


def campaign_offers(
    conn: psycopg.Connection, unit: str, campaign: str, *, residents: Sequence[str] | None = None
) -> CampaignOffers:
    """The campaign's offers per resident (or these residents'), with the counts by status."""
    unit_hsa_id, name, terms = _campaign(conn, unit, campaign)
    wanted = [checks.resident(r) for r in residents] if residents else None
    found = offers.statuses(conn, unit_hsa_id, name, wanted)
    counts = offers.counts(conn, unit_hsa_id, name) if wanted else _count(found)
    return CampaignOffers(unit_hsa_id, name, terms, counts, found)


def _count(found: list[ResidentOffer]) -> dict[str, int]:
    counted = dict.fromkeys(offers.STATUSES, 0)
    for offer in found:
        counted[offer.status] += 1
    return counted


def offer_campaigns(conn: psycopg.Connection, unit: str) -> list[CampaignOffers]:
    """The unit's campaigns that give EP offers, newest first, with their counts (no residents)."""
    unit_hsa_id = checks.unit(conn, unit)
    return [
        CampaignOffers(unit_hsa_id, name, terms, offers.counts(conn, unit_hsa_id, name))
        for name, terms, _ in offers.campaigns(conn, unit_hsa_id)
    ]


@audited("StaffOfferRetry")
def retry_offers(
    conn: psycopg.Connection,
    staff: Staff,
    *,
    unit: str,
    campaign: str,
    residents: Sequence[str] | None = None,
    ep: OfferChoice | None = None,
) -> Retried:
    """Send the campaign's parked offers again (EP refused them, or they failed too often), all or
    these residents'; `ep` corrects the campaign's terms first (e.g. a wrong UnitOfferID)."""
    unit_hsa_id, name, terms = _campaign(conn, unit, campaign)
    wanted = [checks.resident(r) for r in residents] if residents else None
    with conn.transaction():
        corrected = None
        if ep is not None and ep.names_anything():
            choice = OfferChoice(
                ep.unit_offer_id or terms.unit_offer_id,
                terms.notify_resident if ep.notify_resident is None else ep.notify_resident,
                ep.giver_id or terms.hc_professional_id,
                terms.hc_first_name if ep.giver_first_name is None else ep.giver_first_name,
                terms.hc_last_name if ep.giver_last_name is None else ep.giver_last_name,
            )
            corrected = terms_for(conn, staff, unit_hsa_id, None, choice)
        queued = offers.retry(conn, unit_hsa_id, name, wanted, corrected)
    return Retried(unit_hsa_id, name, queued, corrected or terms)


@audited("StaffOfferWithdraw")
def withdraw_offer(conn: psycopg.Connection, staff: Staff, *, unit: str, campaign: str, resident: str) -> Withdrawn:
    """Withdraw the campaign's offer to the resident: dropped if it was never sent, else undone in EP
    (UndoGivenOfferByExternalSystem, behind the add). Withdrawing again changes nothing."""
    unit_hsa_id, name, _ = _campaign(conn, unit, campaign)
    who = checks.resident(resident)
    with conn.transaction():
        done = offers.withdraw(conn, unit_hsa_id, name, who, staff.hsa_id)
    if done is None:
        raise StaffError("resident", f"campaign {name} gave this resident no offer", "not_found")
    (offer,) = offers.statuses(conn, unit_hsa_id, name, [who])
    return Withdrawn(unit_hsa_id, name, done, offer)
