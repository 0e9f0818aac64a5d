"""The page's Swedish words for what the service layer names in English (fields, kinds, states)."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote

from markupsafe import Markup, escape

from producer.staff.week import WeekSlot
from producer.sweden.wall_time import STOCKHOLM

ZONE = STOCKHOLM  # the templates show times in it: L.ZONE

FIELDS = {
    "resident": "Personnummer",
    "slot": "Tid",
    "booking_id": "Bokning",
    "purpose": "Syfte",
    "valid_until": "Giltig till",
    "invitation_date": "Kallelsedatum",
    "time_type": "Tidstyp",
    "campaign": "Kampanj",
    "note": "Anteckning",
    "reason": "Besöksorsak",
    "unit": "Enhet",
    "performer": "Utförare",
    "last_day": "Sista dagen",
    "day": "Dag",
    "first_name": "Förnamn",
    "middle_name": "Mellannamn",
    "last_name": "Efternamn",
    "phone": "Telefon",
    "email": "E-post",
    "min_lead": "Minsta framförhållning",
    "horizon": "Längsta framförhållning",
    "max_active_per_resident": "Högst antal bokningar per invånare",
    "change_deadline": "Ändringsgräns",
}
KINDS = {"booking": "Bokning", "timed_invitation": "Tidsatt kallelse", "open_invitation": "Öppen kallelse"}
STATUSES = {"active": "Aktiv", "cancelled": "Avbokad", "expired": "Utgången"}
STATES = {"free": "Ledig", "booked": "Bokad", "invited": "Kallad"}
ACTIONS = {
    "book": "Bokad",
    "rebook": "Ombokad",
    "cancel": "Avbokad",
    "invite": "Kallad",
    "expire": "Gick ut",
    "book_invitation": "Kallelse bokad",
}
CHANNELS = {
    "soap": "1177 (invånaren)",
    "staff": "Personal",
    "loader": "Inläsning",
    "sweeper": "Automatiskt",
    "demo": "Demo",
}
DONE = {
    "booked": "Tiden är bokad.",
    "rebooked": "Bokningen är flyttad.",
    "cancelled": "Bokningen är avbokad.",
    "invited": "Kallelsen är skickad.",
}
WEEKDAYS = ("måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag", "söndag")
MONTHS = ("januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september", "oktober",
          "november", "december")  # fmt: skip


def slot_items(slots: list[WeekSlot], base: str) -> Markup:
    """A day's slots as the week view's list items: built here rather than in the template, since a
    week of five performers is 1,400 of them (the template loop took three times as long). The
    values repeat (a handful of time types and performers), so each is escaped once."""
    escaped: dict[str | None, str] = {None: ""}

    def e(value: str | None) -> str:
        if value not in escaped:
            escaped[value] = str(escape(value))
        return escaped[value]

    home = e(base)
    out = []
    for s in slots:
        target = f"bookings/{e(quote(s.booking_id))}" if s.booking_id else f"slots/{s.slot}"
        who = f' <span class="who">{e(s.performer[-4:])}</span>' if s.performer else ""  # the HSA-id's end
        if s.resource:
            who += f' <span class="who">{e(s.resource)}</span>'
        name = f' <span class="name">{escape(s.name)}</span>' if s.name else ""
        out.append(
            f'<li class="slot {s.state}"><a href="{home}/{target}"><span class="t">{s.label}</span>'
            f' <span class="st">{STATES[s.state]}</span> <span class="tt">{e(s.time_type)}</span>{who}{name}</a></li>'
        )
    return Markup("\n".join(out))


def problem(field: str, message: str) -> str:
    """A refusal as the page shows it: the field in Swedish, then what the service layer said."""
    return f"{FIELDS.get(field, field)}: {message}"


def day_name(day: datetime) -> str:
    return f"{WEEKDAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]}"


def when(moment: datetime | None) -> str:
    return "–" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def hours(value: timedelta | None) -> str:
    if value is None:
        return ""
    number = value.total_seconds() / 3600
    return f"{number:g}"


def days(value: timedelta | None) -> str:
    if value is None:
        return ""
    return f"{value.total_seconds() / 86400:g}"
