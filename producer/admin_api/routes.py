"""The /admin endpoints: thin adapters over producer.staff and producer.loading. Each declares its
models (request parts, and the response of every status it answers), which flask-openapi3 uses
both to validate the request and to write the OpenAPI description."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from flask import Response, current_app, g, request
from flask_openapi3 import APIBlueprint, RawModel
from psycopg_pool import PoolTimeout
from pydantic import ValidationError

from producer.admin_api.auth import Grant
from producer.admin_api.errors import ApiError, invalid, json_response
from producer.admin_api.models import (
    BatchIn,
    BatchOut,
    BookIn,
    BookingOut,
    BookingPath,
    CampaignListOut,
    CampaignOffersOut,
    CancelIn,
    CancelQuery,
    ChangeOut,
    ContactIn,
    DayOut,
    DayQuery,
    ErrorOut,
    HistoryOut,
    InvitationIn,
    LoadQuery,
    LoadReportOut,
    OfferBatchIn,
    OfferChoiceIn,
    OfferRetryIn,
    OffersQuery,
    OfferWithdrawIn,
    RebookIn,
    RetriedOut,
    SlotIn,
    SlotTimes,
    UnitPath,
    WithdrawnOut,
)
from producer.loading import Options, Source, load
from producer.staff import Contact, Staff, StaffError, actions, invitations, listing, offers, screening
from producer.staff import checks as parse
from producer.staff.results import jsonable
from producer.staff.slots import SlotChoice, Timeslot
from producer.sweden.identifiers import normalise_hsa_id

T = TypeVar("T")
MEDIA = {
    "application/json": "json",
    "application/yaml": "yaml",
    "application/x-yaml": "yaml",
    "text/yaml": "yaml",
    "text/csv": "csv",
}
# what every operation may answer besides its success (400: a field is wrong; 401: no valid token;
# 403: the token does not cover the unit, or names another staff member; 503: the database is away)
COMMON = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 500: ErrorOut, 503: ErrorOut}
CHANGES = {404: ErrorOut, 409: ErrorOut}


class LoadBody(RawModel):
    mimetypes = list(MEDIA)


def _context() -> Any:
    return current_app.extensions["tidbok.admin"]


def authenticate() -> None:
    """Every /admin operation: a valid bearer token (401), covering the path's unit (403)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    grant = _context().tokens.grant(token.strip() if scheme.lower() == "bearer" else None)
    if grant is None:
        raise ApiError(401, "A valid API token is required (Authorization: Bearer <token>)")
    g.grant = grant
    unit = (request.view_args or {}).get("unit")
    if unit is not None and not grant.covers(unit):
        raise ApiError(403, f"This token does not cover care unit {unit}", "unit")


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    try:
        with _context().pool().connection() as conn:
            yield conn
    except (PoolTimeout, psycopg.OperationalError):
        current_app.logger.warning("database unavailable", exc_info=True)
        raise ApiError(503, "The database is temporarily unavailable; try again later") from None


def _call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return function(*args, **kwargs)
    except StaffError as error:
        if error.field == "ep" or error.field.startswith("ep."):  # the body's ep_offer object
            raise ApiError(error.status, error.message, "ep_offer" + error.field[2:]) from None
        raise ApiError.of(error) from None


def _choice(value: OfferChoiceIn | None) -> offers.OfferChoice | None:
    return None if value is None else offers.OfferChoice(**value.model_dump())


def _staff(named: str | None) -> Staff:
    """The acting staff member: the token's, never the body's; a body naming another is refused."""
    grant: Grant = g.grant
    if grant.staff is None:
        raise ApiError(
            403, "This token acts for no staff member (TOKEN=UNITS@HSA-ID, or a staff account's token)", "staff"
        )
    if named and normalise_hsa_id(named) != grant.staff:
        raise ApiError(403, f"This token acts for {grant.staff}; a request cannot name another staff member", "staff")
    return Staff(grant.staff, _context().settings, via="api")


def _slot(unit: str, value: SlotIn | None) -> SlotChoice:
    if isinstance(value, SlotTimes):
        return Timeslot(
            unit,
            _call(parse.moment, "slot.start", value.start),
            _call(parse.moment, "slot.end", value.end),
            value.time_type,
            value.performer,
        )
    if value is None or value == "":
        raise ApiError(400, 'give the slot as its id ("T123") or as {"start", "end"}', "slot")
    return value


def _contact(value: ContactIn | None) -> Contact | None:
    return None if value is None else Contact(**value.model_dump())


def blueprint() -> APIBlueprint:
    api = APIBlueprint("admin", __name__, url_prefix="/admin", abp_security=[{"bearer": []}], abp_responses=COMMON)
    api.before_request(authenticate)
    unit_path = "/units/<unit>"

    @api.post(f"{unit_path}/invitations", summary="Invite a resident: timed (with a slot) or open (with a time "
              "type and a validity end)", responses={201: ChangeOut, **CHANGES})  # fmt: skip
    def create_invitation(path: UnitPath, body: InvitationIn) -> Response:
        staff = _staff(body.staff)
        common: dict[str, Any] = {
            "resident": body.resident,
            "purpose": body.purpose,
            "valid_until": _call(parse.moment_or_date, "valid_until", body.valid_until),
            "contact": _contact(body.contact),
            "campaign": body.campaign,
        }
        with connection() as conn:
            if body.slot is not None:
                slot = _slot(path.unit, body.slot)
                change = _call(invitations.invite_timed, conn, staff, slot=slot, unit=path.unit, **common)
            else:
                change = _call(
                    invitations.invite_open,
                    conn,
                    staff,
                    unit=path.unit,
                    time_type=body.time_type,
                    invitation_date=_call(parse.calendar_date, "invitation_date", body.invitation_date),
                    **common,
                )
        return json_response(201, jsonable(change))

    @api.post(f"{unit_path}/invitation-batches", summary="Invite every resident of a CSV of personnummer (a "
              "screening call), once per campaign", responses={200: BatchOut, 404: ErrorOut})  # fmt: skip
    def invitation_batch(path: UnitPath, body: BatchIn) -> Response:
        staff = _staff(body.staff)
        terms: dict[str, Any] = {
            "unit": path.unit,
            "time_type": body.time_type,
            "campaign": body.campaign,
            "purpose": body.purpose,
            "valid_until": _call(parse.moment_or_date, "valid_until", body.valid_until),
            "invitation_date": _call(parse.calendar_date, "invitation_date", body.invitation_date),
        }
        with connection() as conn:
            if body.ep_offer is not None:
                choice = _choice(body.ep_offer)
                report = _call(offers.invite_batch_with_offers, conn, staff, body.csv, ep=choice, **terms)
            else:
                report = _call(screening.invite_batch, conn, staff, body.csv, **terms)
        return json_response(200, jsonable(report))

    @api.post(f"{unit_path}/ep-offers", summary="Give every resident of a CSV of personnummer an offer in Egen "
              "provhantering (no invitation), once per campaign", responses={200: BatchOut, **CHANGES})  # fmt: skip
    def offer_batch(path: UnitPath, body: OfferBatchIn) -> Response:
        staff = _staff(body.staff)
        with connection() as conn:
            report = _call(
                offers.offer_batch, conn, staff, body.csv, unit=path.unit, campaign=body.campaign,
                ep=_choice(body.ep_offer), time_type=body.time_type,
            )  # fmt: skip
        return json_response(200, jsonable(report))

    @api.get(f"{unit_path}/ep-campaigns", summary="The unit's campaigns that give offers in Egen provhantering, "
             "newest first, with how many residents are in each status",
             responses={200: CampaignListOut, 404: ErrorOut})  # fmt: skip
    def offer_campaigns(path: UnitPath) -> Response:
        with connection() as conn:
            return json_response(200, jsonable(_call(offers.offer_campaigns, conn, path.unit)))

    @api.get(f"{unit_path}/ep-offers", summary="A campaign's EP offers per resident: pending, given, already_given, "
             "refused (with EP's text), failed, withdrawing, withdrawn",
             responses={200: CampaignOffersOut, 404: ErrorOut})  # fmt: skip
    def offer_status(path: UnitPath, query: OffersQuery) -> Response:
        with connection() as conn:
            found = _call(offers.campaign_offers, conn, path.unit, query.campaign)
        if query.status is not None:
            found.residents[:] = [r for r in found.residents if r.status == query.status]
        return json_response(200, jsonable(found))

    @api.post(f"{unit_path}/ep-offers/retry", summary="Send a campaign's parked EP offers again (all, or these "
              "residents'), after correcting the campaign's terms if given",
              responses={200: RetriedOut, **CHANGES})  # fmt: skip
    def offer_retry(path: UnitPath, body: OfferRetryIn) -> Response:
        staff = _staff(body.staff)
        with connection() as conn:
            retried = _call(
                offers.retry_offers, conn, staff, unit=path.unit, campaign=body.campaign, residents=body.residents,
                ep=_choice(body.ep_offer),
            )  # fmt: skip
        return json_response(200, jsonable(retried))

    @api.post(f"{unit_path}/ep-offers/withdrawals", summary="Withdraw a resident's EP offer of a campaign (undone "
              "in EP; dropped if it was never sent)", responses={200: WithdrawnOut, **CHANGES})  # fmt: skip
    def offer_withdraw(path: UnitPath, body: OfferWithdrawIn) -> Response:
        staff = _staff(body.staff)
        with connection() as conn:
            done = _call(
                offers.withdraw_offer, conn, staff, unit=path.unit, campaign=body.campaign, resident=body.resident
            )
        return json_response(200, jsonable(done))

    @api.post(f"{unit_path}/bookings", summary="Book a free slot on a resident's behalf",
              responses={201: ChangeOut, **CHANGES})  # fmt: skip
    def book(path: UnitPath, body: BookIn) -> Response:
        staff = _staff(body.staff)
        with connection() as conn:
            change = _call(
                actions.book,
                conn,
                staff,
                resident=body.resident,
                slot=_slot(path.unit, body.slot),
                unit=path.unit,
                contact=_contact(body.contact),
                reason=body.reason,
                note=body.note,
            )
        return json_response(201, jsonable(change))

    @api.get(f"{unit_path}/bookings", summary="The unit's slots of a day, with who holds them",
             responses={200: DayOut, 404: ErrorOut})  # fmt: skip
    def day(path: UnitPath, query: DayQuery) -> Response:
        with connection() as conn:
            found = _call(listing.day, conn, path.unit, query.date, free=query.free)
        return json_response(200, jsonable(found))

    @api.get(f"{unit_path}/bookings/<booking_id>", summary="A booking or invitation",
             responses={200: BookingOut, 404: ErrorOut})  # fmt: skip
    def booking(path: BookingPath) -> Response:
        with connection() as conn:
            found = _call(listing.booking, conn, path.booking_id, unit=path.unit)
        return json_response(200, jsonable(found))

    @api.put(f"{unit_path}/bookings/<booking_id>", summary="Move a booking or invitation to another slot on the "
             "resident's behalf", responses={200: ChangeOut, **CHANGES})  # fmt: skip
    def rebook(path: BookingPath, body: RebookIn) -> Response:
        staff = _staff(body.staff)
        with connection() as conn:
            change = _call(
                actions.rebook,
                conn,
                staff,
                path.booking_id,
                slot=_slot(path.unit, body.slot),
                unit=path.unit,
                note=body.note,
            )
        return json_response(200, jsonable(change))

    @api.delete(f"{unit_path}/bookings/<booking_id>", summary="Cancel a booking or invitation (the note as a "
                "query parameter, or a JSON body {staff?, note?})", responses={200: ChangeOut, **CHANGES})  # fmt: skip
    def cancel(path: BookingPath, query: CancelQuery) -> Response:
        named, note = query.staff, query.note
        if request.content_length:
            try:
                body = CancelIn.model_validate(request.get_json(silent=True))
            except ValidationError as error:
                return invalid(error)  # refused as every other body is
            named, note = body.staff or named, body.note or note
        staff = _staff(named)
        with connection() as conn:
            change = _call(actions.cancel, conn, staff, path.booking_id, unit=path.unit, note=note)
        return json_response(200, jsonable(change))

    @api.get(f"{unit_path}/bookings/<booking_id>/history", summary="Who did what to a booking, when and how",
             responses={200: HistoryOut, 404: ErrorOut})  # fmt: skip
    def history(path: BookingPath) -> Response:
        with connection() as conn:
            found = _call(listing.history, conn, path.booking_id, unit=path.unit)
        return json_response(200, jsonable(found))

    @api.post("/load", summary="Load a set-up document (YAML/JSON) or a slot list (CSV); 422 with the problems "
              "when refused; a token for all units only",
              responses={200: LoadReportOut, 415: ErrorOut, 422: LoadReportOut})  # fmt: skip
    def load_route(query: LoadQuery, raw: LoadBody) -> Response:
        if not g.grant.all_units:
            raise ApiError(403, "Loading can touch any unit: it needs a token for all units", "Authorization")
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        kind = MEDIA.get(content_type)
        if kind is None:
            raise ApiError(415, f"Send {', '.join(sorted(MEDIA))}, not {content_type or 'no content type'}",
                           "Content-Type")  # fmt: skip
        data = request.get_data()
        if kind == "csv":
            source = Source.csv("request.csv", data)
        else:
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ApiError(400, "The body is not UTF-8", "body") from None
            source = Source.setup_text(f"request.{kind}", text, kind)
        with connection() as conn:
            report = load(conn, [source], Options(dry_run=query.dry_run, add_only=query.add_only))
        return json_response(200 if report.ok else 422, report.as_dict())

    return api
