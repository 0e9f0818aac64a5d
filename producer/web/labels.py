"""The page's Swedish words for what the service layer names in English (fields, kinds, states)."""

from __future__ import annotations

import re
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
    "ep": "Egen provhantering",
    "ep.unit_offer_id": "Erbjudandets id (UnitOfferID)",
    "ep.giver_id": "Tilldelas av (HSA-id)",
    "ep.giver_first_name": "Förnamn",
    "ep.giver_last_name": "Efternamn",
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
LOAD_KINDS = {
    "units": "Enheter",
    "care_types": "Vårdtyper",
    "time_types": "Tidstyper",
    "performers": "Utförare",
    "resources": "Resurser",
    "alternatives": "Alternativa enheter",
    "slots": "Tider",
}
STATES = {"free": "Ledig", "booked": "Bokad", "invited": "Kallad"}
# an offer in Egen provhantering, per resident (producer.calendar.offers.STATUSES)
OFFER_STATUSES = {
    "pending": "Väntar",
    "given": "Tilldelat",
    "already_given": "Redan tilldelat",
    "refused": "Avvisat",
    "failed": "Stoppat (tekniskt fel)",
    "withdrawing": "Återtas",
    "withdrawn": "Återtaget",
}
WITHDRAWN = {
    "dropped": "Erbjudandet var inte skickat än och skickas inte.",
    "undo": "Erbjudandet tas bort i Egen provhantering.",
    "already": "Erbjudandet var redan återtaget.",
}
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
        if s.via:
            name += f' <span class="via">via {e(s.via)}</span>'

        out.append(
            f'<li class="slot {s.state}"><a href="{home}/{target}"><span class="t">{s.label}</span>'
            f' <span class="st">{STATES[s.state]}</span> <span class="tt">{e(s.time_type)}</span>{who}{name}</a></li>'
        )
    return Markup("\n".join(out))


# What the service layer says (in English, for the API and the CLI), as the page says it; a message
# not listed here is shown as it is.
SWEDISH = [
    (r"personnummer must be 12 characters \(YYYYMMDDNNNC\)", "ska ha 12 tecken (ÅÅÅÅMMDDNNNN)"),
    (
        r"personnummer must be 12 digits.*",
        "ska vara 12 siffror, eller ett reservnummer med P, T eller F som nionde tecken",
    ),
    (r"personnummer does not contain a valid date of birth", "innehåller inget giltigt födelsedatum"),
    (r"personnummer has an incorrect check digit", "har fel kontrollsiffra"),
    (r"(T\d+ )?is already taken: choose a free slot.*", r"\1är redan bokad: välj en ledig tid"),
    (r"(\S+) has already started( and cannot be \w+)?", r"\1 har redan börjat"),
    (r"has already passed", "har redan passerat"),
    (r"an invitation needs a purpose: plain text or DocBook", "en kallelse behöver ett syfte: text eller DocBook"),
    (r"an open invitation needs a validity end", "en öppen kallelse behöver ett sista giltighetsdatum"),
    (r"a screening call needs a campaign name.*", "en screening behöver ett kampanjnamn (då kan listan läsas in igen)"),
    (r"must be a date like (\S+)", r"ska vara ett datum, t.ex. \1"),
    (r"must be a time like (\S+).*", r"ska vara en tid, t.ex. \1"),
    (r"no (?:active )?booking or invitation (\S+)(?: at (\S+))?", r"ingen aktiv bokning eller kallelse \1"),
    (r"no slot (\S+)", r"ingen tid \1"),
    (r"(T\d+) is not at (\S+)", r"\1 finns inte på \2"),
    (r"is longer than (\d+) characters", r"är längre än \1 tecken"),
    (r"must be a number", "ska vara ett tal"),
    (r"must be a whole number", "ska vara ett heltal"),
    (r"is before the first day", "är före första dagen"),
    (r"a sick day covers at most (\d+) days", r"en sjukdag omfattar högst \1 dagar"),
    (r"(\S+) has no performer (\S+)", r"\1 har ingen utförare \2"),
    (r"(\S+) has no time type (\S+)", r"\1 har ingen tidstyp \2"),
    (
        r"the resident already has (\d+) upcoming (\S+) booking\(s\) at (\S+) \(at most (\d+)\): rebook one instead",
        r"invånaren har redan \1 kommande \2-bokning(ar) på \3 (högst \4): boka om en av dem i stället",
    ),
    (r"already invited in campaign (\S+) \((\S+)\)", r"redan kallad i kampanjen \1 (\2)"),
    (
        r"name the offer in Egen provhantering \(UnitOfferID\)(?: and time type (\S+) names none)?",
        "ange erbjudandets id i Egen provhantering (tidstypen har inget)",
    ),
    (
        r"the resident is shown who gives the offer.*",
        "invånaren ser vem som tilldelar erbjudandet: ange förnamn eller efternamn (en person eller en funktion, t.ex."
        " Screeningverksamheten)",
    ),
    (
        r"campaign (\S+) gives UnitOfferID (\S+) .*",
        r"kampanjen \1 ger erbjudande \2 till alla sina invånare: lämna fälten för erbjudandet tomma, eller rätta dem"
        " med Skicka igen",
    ),
    (r"campaign (\S+) at (\S+) gives no offers in Egen provhantering", r"kampanjen \1 ger inga erbjudanden"),
    (r"campaign (\S+) gave this resident no offer", r"kampanjen \1 har inte gett invånaren något erbjudande"),
    (r"must be an HSA-id.*", "ska vara ett HSA-id, t.ex. SE2321000016-RCC1"),
    (r"is an id without spaces.*", "är ett id utan mellanslag (sista talet i erbjudandets adress i EP Admin)"),
    (r"a campaign needs a name.*", "en kampanj behöver ett namn (då kan listan läsas in igen)"),
    (r"name the campaign", "ange kampanjen"),
    (r"(\S+) is past the change deadline", r"\1 är förbi ändringsgränsen"),
    (r"invitation (\S+) is no longer valid", r"kallelsen \1 gäller inte längre"),
    (r"DocBook element <(\S+)> is not allowed.*", r"DocBook-elementet <\1> är inte tillåtet"),
]
_SWEDISH = [(re.compile(pattern), text) for pattern, text in SWEDISH]


def swedish(message: str) -> str:
    for pattern, text in _SWEDISH:
        found = pattern.fullmatch(message)
        if found:
            return found.expand(text)
    return message


def problem(field: str, message: str) -> str:
    """A refusal as the page shows it: the field, then what the service layer said, in Swedish."""
    return f"{FIELDS.get(field, field)}: {swedish(message)}"


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
