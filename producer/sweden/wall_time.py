"""Conversion between the zone-less Swedish wire formats and aware datetimes.

The crm:scheduling contract carries Swedish local time (Europe/Stockholm) with no
offset: dates (``DT``) are ``YYYYMMDD`` and timestamps (``TS``) ``YYYYMMDDhhmmss``.
The database stores ``timestamptz``, so every value is converted here, at the edge,
and nothing else in the producer has to know about the wire's missing offset.

Arithmetic caveat: Python subtracts and adds aware datetimes that share one tzinfo
object as *wall-clock* values (a DST day looks 24 hours long). Do durations and
"start + length" in UTC, e.g. ``(end.astimezone(UTC) - start.astimezone(UTC))``.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta

__all__ = [
    "STOCKHOLM",
    "WireFormatError",
    "day_range_bounds",
    "format_dt",
    "format_ts",
    "local_date",
    "local_day_bounds",
    "parse_dt",
    "parse_ts",
]

STOCKHOLM = zoneinfo.ZoneInfo("Europe/Stockholm")

_TS_RE = re.compile(r"[0-9]{14}")
_DT_RE = re.compile(r"[0-9]{8}")
# Longest input we are willing to quote back in an error message (it becomes a SOAP fault).
_MAX_QUOTED = 20


class WireFormatError(ValueError):
    """A wire date or timestamp is malformed; the message is safe to put in a SOAP fault."""


def _describe(text: str) -> str:
    """Quote a short bad value, otherwise only its length, so faults never echo arbitrary input."""
    if len(text) <= _MAX_QUOTED and text.isascii() and text.isprintable():
        return repr(text)
    return f"a value of {len(text)} characters"


def _require_aware(moment: datetime) -> None:
    """Reject naive datetimes: guessing their zone is exactly the bug this module exists to prevent."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")


def parse_ts(text: str) -> datetime:
    """Parse a wire ``TS`` (14 digits, Stockholm wall time) into an aware datetime in STOCKHOLM.

    The XSD pattern only checks digits, so calendar validity is checked here. A wall
    time in the repeated autumn hour is ambiguous on the wire; it deterministically
    means the FIRST occurrence (fold=0, CEST). A wall time skipped by the spring
    change does not exist and is rejected rather than silently shifted.
    """
    if not isinstance(text, str) or _TS_RE.fullmatch(text) is None:
        shown = _describe(text) if isinstance(text, str) else type(text).__name__
        raise WireFormatError(f"timestamp must be exactly 14 digits YYYYMMDDhhmmss, got {shown}")
    try:
        wall = datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            int(text[12:14]),
        )
    except ValueError:
        raise WireFormatError(f"timestamp {text!r} is not a valid calendar date and time") from None
    local = wall.replace(tzinfo=STOCKHOLM, fold=0)
    # A wall time that survives a round trip through UTC exists; one in the spring gap does not.
    if local.astimezone(UTC).astimezone(STOCKHOLM).replace(tzinfo=None) != wall:
        raise WireFormatError(f"timestamp {text!r} does not exist in Swedish local time (DST gap)")
    return local


def format_ts(moment: datetime) -> str:
    """Format an aware datetime as Stockholm wall time, 14 digits, dropping sub-second precision.

    The wire has no offset, so both occurrences of the repeated autumn hour format
    identically (UTC 00:30 and 01:30 on 2026-10-25 are both ``...023000``) and
    parse back as the first. The round trip is lossy for that one hour only, which
    is why slots also carry their own id rather than being identified by time.
    """
    _require_aware(moment)
    local = moment.astimezone(STOCKHOLM)
    return f"{local.year:04d}{local.month:02d}{local.day:02d}{local.hour:02d}{local.minute:02d}{local.second:02d}"


def parse_dt(text: str) -> date:
    """Parse a wire ``DT`` (``YYYYMMDD``); the calendar is checked because the XSD does not."""
    if not isinstance(text, str) or _DT_RE.fullmatch(text) is None:
        shown = _describe(text) if isinstance(text, str) else type(text).__name__
        raise WireFormatError(f"date must be exactly 8 digits YYYYMMDD, got {shown}")
    try:
        return date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        raise WireFormatError(f"date {text!r} is not a valid calendar date") from None


def format_dt(d: date) -> str:
    """Format a calendar date as wire ``DT``.

    A datetime is refused: its date would be taken in whatever zone it carries, not
    Stockholm's. Use ``format_dt(local_date(moment))`` for instants.
    """
    if isinstance(d, datetime):
        raise TypeError("format_dt takes a date; use local_date() to get the Stockholm date of an instant")
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def _start_of_day(d: date) -> datetime:
    """First instant of Stockholm day ``d``, correct even if midnight falls in a DST gap or overlap."""
    # fold=0 picks the earlier instant for an ambiguous midnight; for a midnight inside a
    # gap it uses the pre-transition offset, which lands exactly on the transition instant.
    naive_midnight = datetime.combine(d, time(0), tzinfo=STOCKHOLM)
    return naive_midnight.astimezone(UTC).astimezone(STOCKHOLM)


def local_day_bounds(d: date) -> tuple[datetime, datetime]:
    """Half-open ``[start, next start)`` of Stockholm day ``d`` as aware datetimes.

    A DST day is 23 or 25 hours long, so the end is the next day's start, never
    ``start + 24h``. Measure the length in UTC (see the module docstring).
    """
    return _start_of_day(d), _start_of_day(d + timedelta(days=1))


def day_range_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """Half-open ``[start of first, start of day after last)`` for the inclusive range first..last."""
    if last < first:
        raise ValueError("date range ends before it starts")
    return _start_of_day(first), _start_of_day(last + timedelta(days=1))


def local_date(moment: datetime) -> date:
    """Stockholm calendar date of an aware instant (e.g. for grouping slots by booking day)."""
    _require_aware(moment)
    return moment.astimezone(STOCKHOLM).date()
