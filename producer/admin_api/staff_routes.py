"""/admin endpoints for invitations and staff actions: thin adapters over producer.staff."""

from __future__ import annotations

from typing import Any

import psycopg

from producer.admin_api.route import ApiError, Request, Route
from producer.staff import Contact, Staff, StaffError, actions, invitations, listing, screening
from producer.staff import checks as parse
from producer.staff.results import jsonable
from producer.staff.slots import SlotChoice, Timeslot

OBJECT = {"type": "object"}
SLOT = {
    "description": 'a slot id ("T123") or {"start", "end", "time_type"?, "performer"?} in Stockholm time',
    "oneOf": [
        {"type": "string"},
        {
            "type": "object",
            "properties": {
                "start": {"type": "string", "example": "2026-12-01T09:00"},
                "end": {"type": "string"},
                "time_type": {"type": "string"},
                "performer": {"type": "string"},
            },
            "required": ["start", "end"],
        },
    ],
}
CONTACT = {
    "type": "object",
    "properties": {k: {"type": "string"} for k in ("first_name", "middle_name", "last_name", "phone", "email")},
}
STAFF = {"type": "string", "description": "the acting staff member's HSA-id"}


def _schema(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"application/json": {"type": "object", "properties": properties, "required": required}}


def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except StaffError as error:
        raise ApiError(error.status, error.message, error.field) from None


def _staff(request: Request, body: dict[str, Any]) -> Staff:
    return _call(Staff, body.get("staff") or request.query.get("staff") or "", request.settings)


def _slot(unit: str, value: Any) -> SlotChoice:
    if isinstance(value, str | int) and value != "":
        return value
    if isinstance(value, dict) and value.get("start") and value.get("end"):
        return Timeslot(
            unit,
            _call(parse.moment, "slot.start", str(value["start"])),
            _call(parse.moment, "slot.end", str(value["end"])),
            value.get("time_type"),
            value.get("performer"),
        )
    raise ApiError(400, 'give the slot as its id ("T123") or as {"start", "end"}', "slot")


def _contact(body: dict[str, Any]) -> Contact | None:
    value = body.get("contact")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, "must be an object", "contact")
    unknown = set(value) - set(Contact.__dataclass_fields__)
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(sorted(unknown))}", "contact")
    return Contact(**value)


def create_invitation(request: Request, conn: psycopg.Connection) -> tuple[int, Any]:
    body, unit = request.json(), request.params["unit"]
    staff = _staff(request, body)
    common: dict[str, Any] = {
        "resident": body.get("resident"),
        "purpose": body.get("purpose"),
        "valid_until": _call(parse.moment_or_date, "valid_until", body.get("valid_until")),
        "contact": _contact(body),
        "campaign": body.get("campaign"),
    }
    if body.get("slot") is not None:
        change = _call(invitations.invite_timed, conn, staff, slot=_slot(unit, body["slot"]), unit=unit, **common)
    else:
        change = _call(
            invitations.invite_open,
            conn,
            staff,
            unit=unit,
            time_type=body.get("time_type"),
            invitation_date=_call(parse.calendar_date, "invitation_date", body.get("invitation_date")),
            **common,
        )
    return 201, jsonable(change)


def invitation_batch(request: Request, conn: psycopg.Connection) -> tuple[int, Any]:
    body, unit = request.json(), request.params["unit"]
    if not isinstance(body.get("csv"), str):
        raise ApiError(400, "the personnummer, one per line (CSV text)", "csv")
    report = _call(
        screening.invite_batch,
        conn,
        _staff(request, body),
        body["csv"],
        unit=unit,
        time_type=body.get("time_type"),
        campaign=body.get("campaign"),
        purpose=body.get("purpose"),
        valid_until=_call(parse.moment_or_date, "valid_until", body.get("valid_until")),
        invitation_date=_call(parse.calendar_date, "invitation_date", body.get("invitation_date")),
    )
    return 200, jsonable(report)


def book(request: Request, conn: psycopg.Connection) -> tuple[int, Any]:
    body, unit = request.json(), request.params["unit"]
    change = _call(
        actions.book,
        conn,
        _staff(request, body),
        resident=body.get("resident"),
        slot=_slot(unit, body.get("slot")),
        unit=unit,
        contact=_contact(body),
        reason=body.get("reason"),
        note=body.get("note"),
    )
    return 201, jsonable(change)


def rebook(request: Request, conn: psycopg.Connection) -> tuple[int, Any]:
    body, unit = request.json(), request.params["unit"]
    change = _call(
        actions.rebook,
        conn,
        _staff(request, body),
        request.params["booking_id"],
        slot=_slot(unit, body.get("slot")),
        unit=unit,
        note=body.get("note"),
    )
    return 200, jsonable(change)


def cancel(request: Request, conn: psycopg.Connection) -> tuple[int, Any]:
    body = request.json() if request.body else {}
    change = _call(
        actions.cancel,
        conn,
        _staff(request, body),
        request.params["booking_id"],
        unit=request.params["unit"],
        note=body.get("note") or request.query.get("note"),
    )
    return 200, jsonable(change)


def day(request: Request, conn: psycopg.Connection) -> tuple[int, Any]:
    on = _call(parse.calendar_date, "date", request.query.get("date"))
    if on is None:
        raise ApiError(400, "required, e.g. date=2026-12-01", "date")
    free = request.query.get("free", "false").lower() in ("1", "true", "yes")
    return 200, jsonable(_call(listing.day, conn, request.params["unit"], on, free=free))


def booking(request: Request, conn: psycopg.Connection) -> tuple[int, Any]:
    found = _call(listing.booking, conn, request.params["booking_id"], unit=request.params["unit"])
    return 200, jsonable(found)


def history(request: Request, conn: psycopg.Connection) -> tuple[int, Any]:
    found = _call(listing.history, conn, request.params["booking_id"], unit=request.params["unit"])
    return 200, jsonable(found)


UNIT = "/admin/units/{unit}"
ROUTES = [
    Route(
        "POST",
        f"{UNIT}/invitations",
        create_invitation,
        "Invite a resident: timed (with a slot) or open (with a time type and a validity end)",
        _schema(
            ["staff", "resident", "purpose"],
            staff=STAFF,
            resident={"type": "string"},
            purpose={"type": "string", "description": "plain text or the DocBook subset"},
            slot=SLOT,
            time_type={"type": "string"},
            valid_until={"type": "string"},
            invitation_date={"type": "string"},
            campaign={"type": "string"},
            contact=CONTACT,
        ),
        success=201,
    ),
    Route(
        "POST",
        f"{UNIT}/invitation-batches",
        invitation_batch,
        "Invite every resident of a CSV of personnummer (a screening call), once per campaign",
        _schema(
            ["staff", "csv", "time_type", "campaign", "purpose", "valid_until"],
            staff=STAFF,
            csv={"type": "string"},
            time_type={"type": "string"},
            campaign={"type": "string"},
            purpose={"type": "string"},
            valid_until={"type": "string"},
            invitation_date={"type": "string"},
        ),
    ),
    Route(
        "POST",
        f"{UNIT}/bookings",
        book,
        "Book a free slot on a resident's behalf",
        _schema(
            ["staff", "resident", "slot"],
            staff=STAFF,
            resident={"type": "string"},
            slot=SLOT,
            contact=CONTACT,
            reason={"type": "string"},
            note={"type": "string"},
        ),
        success=201,
    ),
    Route(
        "GET",
        f"{UNIT}/bookings",
        day,
        "The unit's slots of a day, with who holds them",
        query=(("date", "the day, YYYY-MM-DD (Stockholm)", True), ("free", "true: free slots too", False)),
        response={"type": "array", "items": OBJECT},
    ),  # fmt: skip
    Route("GET", f"{UNIT}/bookings/{{booking_id}}", booking, "A booking or invitation"),
    Route(
        "PUT",
        f"{UNIT}/bookings/{{booking_id}}",
        rebook,
        "Move a booking or invitation to another slot on the resident's behalf",
        _schema(["staff", "slot"], staff=STAFF, slot=SLOT, note={"type": "string"}),
    ),
    Route(
        "DELETE",
        f"{UNIT}/bookings/{{booking_id}}",
        cancel,
        "Cancel a booking or invitation",
        query=(("staff", "the acting staff member's HSA-id", True), ("note", "why", False)),
    ),  # fmt: skip
    Route("GET", f"{UNIT}/bookings/{{booking_id}}/history", history, "Who did what to a booking, when and how"),
]
