"""`tidbok staff …`: the staff service layer from the command line (a thin wrapper: parse, call, print).

Times are Stockholm wall time (2026-12-01T09:00, or the wire's 20261201090000) unless they carry an
offset; a date as a validity end means through that day. Exit status 0 when done, 1 when the input
was refused (the message names the field), 2 for a usage error. --json prints the result as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from producer.platform import text_files
from producer.platform.settings import Settings
from producer.staff import actions, checks, invitations, listing, offers, screening
from producer.staff.actor import Staff
from producer.staff.checks import Contact
from producer.staff.errors import StaffError
from producer.staff.offers import OfferChoice
from producer.staff.results import (
    BatchReport,
    BookingInfo,
    CampaignOffers,
    Change,
    DaySlot,
    History,
    Retried,
    Withdrawn,
    jsonable,
)
from producer.staff.slots import SlotChoice, Timeslot

EXAMPLES = """\
examples:
  tidbok staff invite --staff SE2321000016-ST01 --resident 191212121212 --slot T1234 \\
      --purpose-file kallelse.xml
  tidbok staff invite --staff SE2321000016-ST01 --resident 191212121212 --unit SE2321000016-A100 \\
      --time-type PROV --purpose "Välkommen att boka provtagning." --valid-until 2027-01-31
  tidbok staff invite-batch --staff SE2321000016-ST01 --unit SE2321000016-A100 --time-type PROV \\
      --campaign cervix-2027 --purpose-file kallelse.xml --valid-until 2027-03-31 lista.csv
  tidbok staff invite-batch --staff SE2321000016-ST01 --unit SE2321000016-A100 --time-type PROV \\
      --campaign cervix-2027 --purpose-file kallelse.xml --valid-until 2027-03-31 --ep-offer \\
      --ep-giver SE2321000016-RCC1 --ep-giver-first-name Screeningverksamheten --ep-giver-last-name "RCC Syd" lista.csv
  tidbok staff offer-batch --staff SE2321000016-ST01 --unit SE2321000016-A100 --campaign hpv-2027 \\
      --ep-unit-offer 6 --ep-giver-first-name Screeningverksamheten lista.csv
  tidbok staff offers SE2321000016-A100 cervix-2027 [--status refused]
  tidbok staff offers-retry --staff SE2321000016-ST01 --unit SE2321000016-A100 --campaign cervix-2027 \\
      [--resident 191212121212] [--ep-unit-offer 7]
  tidbok staff offer-withdraw --staff SE2321000016-ST01 --unit SE2321000016-A100 --campaign cervix-2027 \\
      --resident 191212121212
  tidbok staff book --staff SE2321000016-ST01 --resident 191212121212 --slot T1234
  tidbok staff rebook B17 --staff SE2321000016-ST01 --slot T1240
  tidbok staff cancel B17 --staff SE2321000016-ST01 --note "Patienten ringde"
  tidbok staff day SE2321000016-A100 2026-12-01 --free
  tidbok staff history B17
"""


def main(argv: list[str], database_url: str) -> int:
    args = _parser().parse_args(argv)
    try:
        with psycopg.connect(database_url, autocommit=True, options="-c TimeZone=UTC") as conn:
            result = args.run(args, conn)
    except StaffError as error:
        print(f"tidbok staff: {error.field}: {error.message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(jsonable(result), ensure_ascii=False, indent=2))
    else:
        print("\n".join(_lines(result)))
    return 0


# -- commands ------------------------------------------------------------------------------------


def _invite(args: argparse.Namespace, conn: psycopg.Connection) -> Change:
    common: dict[str, Any] = {
        "resident": args.resident,
        "purpose": _purpose(args),
        "valid_until": checks.moment_or_date("valid_until", args.valid_until),
        "contact": _contact(args),
        "campaign": args.campaign,
    }
    if args.slot or args.start:
        return invitations.invite_timed(conn, _staff(args), slot=_slot(args), **common)
    return invitations.invite_open(
        conn,
        _staff(args),
        unit=args.unit,
        time_type=args.time_type,
        invitation_date=checks.calendar_date("invitation_date", args.invitation_date),
        **common,
    )


def _invite_batch(args: argparse.Namespace, conn: psycopg.Connection) -> BatchReport:
    text = _read_text("csv", args.csv)
    choice = _offer_choice(args)
    if args.ep_offer or choice.names_anything():
        return offers.invite_batch_with_offers(
            conn,
            _staff(args),
            text,
            unit=args.unit,
            time_type=args.time_type,
            campaign=args.campaign,
            purpose=_purpose(args),
            valid_until=checks.moment_or_date("valid_until", args.valid_until),  # type: ignore[arg-type]
            invitation_date=checks.calendar_date("invitation_date", args.invitation_date),
            ep=choice,
        )
    return screening.invite_batch(
        conn,
        _staff(args),
        text,
        unit=args.unit,
        time_type=args.time_type,
        campaign=args.campaign,
        purpose=_purpose(args),
        valid_until=checks.moment_or_date("valid_until", args.valid_until),
        invitation_date=checks.calendar_date("invitation_date", args.invitation_date),
    )


def _offer_choice(args: argparse.Namespace) -> OfferChoice:
    return OfferChoice(
        unit_offer_id=args.ep_unit_offer,
        notify_resident=False if args.ep_no_notify else None,
        giver_id=args.ep_giver,
        giver_first_name=args.ep_giver_first_name,
        giver_last_name=args.ep_giver_last_name,
    )


def _offer_batch(args: argparse.Namespace, conn: psycopg.Connection) -> BatchReport:
    text = _read_text("csv", args.csv)
    choice = _offer_choice(args)
    return offers.offer_batch(
        conn, _staff(args), text, unit=args.unit, campaign=args.campaign, ep=choice, time_type=args.time_type
    )


def _offers(args: argparse.Namespace, conn: psycopg.Connection) -> CampaignOffers | list[CampaignOffers]:
    if args.campaign is None:
        return offers.offer_campaigns(conn, args.unit)
    found = offers.campaign_offers(conn, args.unit, args.campaign, residents=args.resident or None)
    if args.status:
        kept = [r for r in found.residents if r.status in args.status]
        return CampaignOffers(found.unit, found.campaign, found.terms, found.counts, kept)
    return found


def _offers_retry(args: argparse.Namespace, conn: psycopg.Connection) -> Retried:
    return offers.retry_offers(
        conn, _staff(args), unit=args.unit, campaign=args.campaign, residents=args.resident or None,
        ep=_offer_choice(args),
    )  # fmt: skip


def _offer_withdraw(args: argparse.Namespace, conn: psycopg.Connection) -> Withdrawn:
    return offers.withdraw_offer(conn, _staff(args), unit=args.unit, campaign=args.campaign, resident=args.resident)


def _book(args: argparse.Namespace, conn: psycopg.Connection) -> Change:
    return actions.book(
        conn,
        _staff(args),
        resident=args.resident,
        slot=_slot(args),
        contact=_contact(args),
        reason=args.reason,
        note=args.note,
    )


def _rebook(args: argparse.Namespace, conn: psycopg.Connection) -> Change:
    return actions.rebook(conn, _staff(args), args.booking_id, slot=_slot(args), note=args.note)


def _cancel(args: argparse.Namespace, conn: psycopg.Connection) -> Change:
    return actions.cancel(conn, _staff(args), args.booking_id, note=args.note)


def _day(args: argparse.Namespace, conn: psycopg.Connection) -> list[DaySlot]:
    on = checks.calendar_date("day", args.day)
    assert on is not None
    return listing.day(conn, args.unit, on, free=args.free)


def _history(args: argparse.Namespace, conn: psycopg.Connection) -> History:
    return listing.history(conn, args.booking_id)


# -- arguments -----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidbok staff",
        description="Invitations and bookings on a resident's behalf; each change is published to EI.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    def command(name: str, run: Callable[..., Any], text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(run=run)
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
        return sub

    def acting(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--staff", required=True, metavar="HSA_ID", help="the staff member's HSA-id (the actor)")

    def slot_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--slot", help="the slot's id, e.g. T1234 (from `day --free` or GetAvailableTimeslots)")
        sub.add_argument("--unit", help="the slot's unit, with --start and --end (open invitation: its unit)")
        sub.add_argument("--start", help="the slot's start (Stockholm time), with --unit and --end")
        sub.add_argument("--end", help="the slot's end")
        sub.add_argument("--time-type", help="the slot's time type (narrows --start)")
        sub.add_argument("--performer", help="the slot's performer HSA-id (narrows --start)")

    def resident_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--resident", required=True, metavar="PERSONNUMMER", help="12 digits, YYYYMMDDNNNC")
        for name in ("first-name", "middle-name", "last-name", "phone", "email"):
            sub.add_argument(f"--{name}")

    def purpose_options(sub: argparse.ArgumentParser) -> None:
        group = sub.add_mutually_exclusive_group(required=True)
        group.add_argument("--purpose", help="plain text, or DocBook (article, info, title, para, section, ...)")
        group.add_argument("--purpose-file", metavar="PATH", help="read the purpose from a file (UTF-8)")
        sub.add_argument("--valid-until", help="validity end: a date (through that day) or a time")

    sub = command("invite", _invite, "a timed invitation (--slot, or --unit --start --end) or an open one")
    acting(sub)
    resident_options(sub)
    slot_options(sub)
    purpose_options(sub)
    sub.add_argument("--invitation-date", help="open invitation: its business date (default today)")
    sub.add_argument("--campaign", help="invite this resident once per campaign")

    def offer_options(sub: argparse.ArgumentParser) -> None:
        group = sub.add_argument_group("Egen provhantering (EP) offers")
        group.add_argument(
            "--ep-unit-offer", metavar="ID", help="the offer's UnitOfferID in EP (default: the time type's)"
        )
        group.add_argument(
            "--ep-no-notify", action="store_true", help="EP does not notify the resident (default: it does)"
        )
        group.add_argument(
            "--ep-giver", metavar="HSA_ID", help="who gives the offer (default: [ep] giver_id, else you)"
        )
        group.add_argument("--ep-giver-first-name", metavar="NAME", help="shown to the resident")
        group.add_argument("--ep-giver-last-name", metavar="NAME", help="shown to the resident")

    sub = command("invite-batch", _invite_batch, "open invitations for a CSV of personnummer (a screening call)")
    acting(sub)
    sub.add_argument("--unit", required=True)
    sub.add_argument("--time-type", required=True)
    sub.add_argument("--campaign", required=True, help="each resident is invited once per campaign")
    purpose_options(sub)
    sub.add_argument("--invitation-date", help="the invitations' business date (default today)")
    sub.add_argument("--ep-offer", action="store_true", help="each resident also gets an offer in Egen provhantering")
    offer_options(sub)
    sub.add_argument("csv", metavar="CSV", help="one personnummer a line, or a column headed personnummer; - = stdin")

    sub = command("offer-batch", _offer_batch, "offers in Egen provhantering for a CSV of personnummer (no invitation)")
    acting(sub)
    sub.add_argument("--unit", required=True)
    sub.add_argument("--campaign", required=True, help="each resident gets the offer once per campaign")
    sub.add_argument("--time-type", help="whose UnitOfferID to give, when --ep-unit-offer is left out")
    offer_options(sub)
    sub.add_argument("csv", metavar="CSV", help="one personnummer a line, or a column headed personnummer; - = stdin")

    sub = command("offers", _offers, "a campaign's EP offers per resident (without CAMPAIGN: the unit's campaigns)")
    sub.add_argument("unit")
    sub.add_argument("campaign", nargs="?")
    sub.add_argument("--resident", action="append", metavar="PERSONNUMMER", help="only this resident (repeatable)")
    sub.add_argument("--status", action="append", choices=STATUS_CHOICES, help="only residents in this status")

    sub = command("offers-retry", _offers_retry, "send a campaign's parked EP offers again (after fixing them)")
    acting(sub)
    sub.add_argument("--unit", required=True)
    sub.add_argument("--campaign", required=True)
    sub.add_argument("--resident", action="append", metavar="PERSONNUMMER", help="only this resident (repeatable)")
    offer_options(sub)

    sub = command("offer-withdraw", _offer_withdraw, "withdraw a resident's EP offer of a campaign (undone in EP)")
    acting(sub)
    sub.add_argument("--unit", required=True)
    sub.add_argument("--campaign", required=True)
    sub.add_argument("--resident", required=True, metavar="PERSONNUMMER")

    sub = command("book", _book, "book a free slot for a resident")
    acting(sub)
    resident_options(sub)
    slot_options(sub)
    sub.add_argument("--reason", help="the reason for the visit, as the resident would give it")
    sub.add_argument("--note", help="kept in the booking's history")

    sub = command("rebook", _rebook, "move a booking or timed invitation, or give an open invitation a time")
    sub.add_argument("booking_id")
    acting(sub)
    slot_options(sub)
    sub.add_argument("--note", help="kept in the booking's history")

    sub = command("cancel", _cancel, "cancel a booking or an invitation (no change deadline for staff)")
    sub.add_argument("booking_id")
    acting(sub)
    sub.add_argument("--note", help="kept in the booking's history")

    sub = command("day", _day, "a unit's bookings on a day (Stockholm time)")
    sub.add_argument("unit")
    sub.add_argument("day", help="YYYY-MM-DD")
    sub.add_argument("--free", action="store_true", help="list the free slots too")

    sub = command("history", _history, "who did what to a booking, when, through which channel")
    sub.add_argument("booking_id")
    return parser


def _staff(args: argparse.Namespace) -> Staff:
    return Staff(args.staff, Settings.from_env())


def _contact(args: argparse.Namespace) -> Contact:
    return Contact(args.first_name, args.middle_name, args.last_name, args.phone, args.email)


def _purpose(args: argparse.Namespace) -> str:
    if args.purpose_file is None:
        return args.purpose
    return _read_text("purpose", args.purpose_file)


def _read_text(field: str, name: str) -> str:
    """A file's (or, for "-", standard input's) UTF-8 text; anything else is refused by name and line."""
    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        return text_files.utf8(data)
    except OSError as error:
        raise StaffError(field, f"cannot read {name}: {error.strerror}") from None
    except text_files.NotUtf8 as error:
        raise StaffError(field, f"{name} {error}") from None


def _slot(args: argparse.Namespace) -> SlotChoice:
    if args.slot:
        return args.slot
    if not (args.unit and args.start and args.end):
        raise StaffError("slot", "give --slot, or --unit with --start and --end")
    return Timeslot(
        args.unit,
        checks.moment("start", args.start),
        checks.moment("end", args.end),
        args.time_type or None,
        args.performer,
    )


# -- output --------------------------------------------------------------------------------------


def _when(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return "no time"
    return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M} {start:%z}" if end else f"{start:%Y-%m-%d %H:%M %z}"


def _validity(b: BookingInfo) -> str:
    """A validity end at local midnight was given as a date: say "through" that date."""
    if b.valid_until is None:
        return ""
    if (b.valid_until.hour, b.valid_until.minute, b.valid_until.second) == (0, 0, 0):
        return f"valid through {(b.valid_until - timedelta(days=1)):%Y-%m-%d}"
    return f"valid until {b.valid_until:%Y-%m-%d %H:%M %z}"


def _who(b: BookingInfo) -> list[str]:
    via = [f"booked via {b.consumer_name or b.consumer}"] if b.consumer else []
    return [b.resident, " ".join(n for n in (b.first_name, b.last_name) if n), *via]


def _summary(b: BookingInfo) -> str:
    when = _when(b.starts_at, b.ends_at)
    if b.kind == "open_invitation":
        when = f"open, dated {b.invitation_date}"
    parts = [b.booking_id, b.kind, b.status, b.unit, when, b.time_type, b.slot or "", _validity(b), *_who(b), *_said(b)]
    return "  ".join(p for p in parts if p)


def _lines(result: Any) -> list[str]:
    if isinstance(result, Change):
        return [("" if result.changed else "unchanged: ") + _summary(result.booking)]
    if isinstance(result, BatchReport):
        return _batch_lines(result)
    if isinstance(result, CampaignOffers):
        return _campaign_lines(result, True)
    if isinstance(result, Retried):
        return [f"campaign {result.campaign} at {result.unit}: {result.queued} offer row(s) queued again"]
    if isinstance(result, Withdrawn):
        what = {"dropped": "never sent: dropped", "undo": "undo queued", "already": "withdrawn already"}[result.done]
        return [f"campaign {result.campaign} at {result.unit}: {result.offer.resident} {what} ({result.offer.status})"]
    if isinstance(result, list) and result and isinstance(result[0], CampaignOffers):
        return [line for found in result for line in _campaign_lines(found, False)]
    if isinstance(result, History):
        lines = [_summary(result.booking)]
        for e in result.events:
            actor = " ".join(a for a in (e.actor_type, e.actor_id) if a) or "-"
            details = json.dumps(e.details, ensure_ascii=False, sort_keys=True)
            lines.append(f"{e.at:%Y-%m-%d %H:%M:%S %z}  {e.action}  {e.channel}  {actor}  {details}")
        return lines
    if isinstance(result, list):
        if not result:
            return ["no bookings that day"]
        return [_day_line(s) for s in result]
    return [str(result)]


STATUS_CHOICES = ("pending", "given", "already_given", "refused", "failed", "withdrawing", "withdrawn")


def _batch_lines(result: BatchReport) -> list[str]:
    lines = [
        f"campaign {result.campaign} at {result.unit}: {len(result.invited)} invited,"
        f" {len(result.already_invited)} already invited, {len(result.invalid)} invalid"
    ]
    lines += [f"line {i.line}: invited {i.resident} ({i.booking_id})" for i in result.invited]
    lines += [f"line {a.line}: already invited {a.resident} ({a.booking_id})" for a in result.already_invited]
    lines += [f"line {i.line}: invalid: {i.reason}" for i in result.invalid]
    found = result.offers
    if found is not None:
        lines.append(
            f"EP offer {found.unit_offer_id} from {found.access_unit_id}: {len(found.queued)} queued,"
            f" {len(found.already_offered)} already offered, {len(found.not_offered)} not possible"
        )
        lines += [f"line {o.line}: offer queued {o.resident}" for o in found.queued]
        lines += [f"line {o.line}: already offered {o.resident}" for o in found.already_offered]
        lines += [f"line {i.line}: no offer: {i.reason}" for i in found.not_offered]
    return lines


def _campaign_lines(found: CampaignOffers, residents: bool) -> list[str]:
    t = found.terms
    counts = ", ".join(f"{status} {n}" for status, n in found.counts.items() if n)
    lines = [
        f"campaign {found.campaign} at {found.unit}: EP offer {t.unit_offer_id} from {t.access_unit_id},"
        f" given by {t.hc_professional_id} {t.hc_first_name.strip()} {t.hc_last_name.strip()}".rstrip()
        + f", notify {'yes' if t.notify_resident else 'no'}: {counts or 'no residents'}"
    ]
    if residents:
        for r in found.residents:
            parts = [r.resident, r.status, r.booking_id or "", f"attempts {r.attempts}" if r.attempts > 1 else ""]
            parts.append(r.detail or "")
            lines.append("  ".join(p for p in parts if p))
    return lines


def _said(b: BookingInfo) -> list[str]:
    """What the resident told the clinic: the reason for the visit, the phone number, a cancellation's message."""
    said = [("reason", b.reason), ("phone", b.phone), ("message", b.message)]
    return [f"{label}: {value}" for label, value in said if value]


def _day_line(s: DaySlot) -> str:
    held = [s.booking.booking_id, s.booking.kind, *_who(s.booking), *_said(s.booking)] if s.booking else ["free"]
    line = "  ".join(p for p in [_when(s.starts_at, s.ends_at), s.slot, s.time_type, *held] if p)
    for gone in s.cancelled:
        line += "\n    cancelled: " + "  ".join(p for p in [gone.booking_id, *_who(gone), *_said(gone)] if p)
    return line
