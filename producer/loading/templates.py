"""Recurring schedules ("weekdays 08:00–12:00, 20-minute LAK slots with P001, from … to …, except …")
expanded into slots, in Stockholm wall time.

Slots are cut in wall-clock time: a window's slots start at its opening time and every slot length
after, as long as the slot ends by the closing time. On the two DST nights a slot is only made if
it is as long on the wall clock as in real time:

- spring (02:00 → 03:00): no slot starts in the missing hour, and none spans the change (a slot
  that would end on or after 02:00 wall time is skipped), so no slot is longer or shorter than
  its length;
- autumn (03:00 → 02:00): a wall time in the repeated hour means its first occurrence (summer
  time, as everywhere in tidbok), so 02:00–03:00 gets slots once, in summer time; the slot that
  would span the change (end in the second 02:00–03:00) is skipped, and the second occurrence gets
  no slots. A performer never gets two slots at the same wall time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from producer.sweden.wall_time import STOCKHOLM

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def resolve_wall(wall: datetime) -> datetime | None:
    """The UTC instant of a naive Stockholm wall time: its first occurrence if repeated, None if it
    falls in the spring gap (it does not exist)."""
    local = wall.replace(tzinfo=STOCKHOLM, fold=0)
    instant = local.astimezone(UTC)
    if instant.astimezone(STOCKHOLM).replace(tzinfo=None) != wall:
        return None
    return instant


@dataclass(frozen=True)
class Window:
    """Opening hours of one day; ``closes`` may be 24:00 (``time(0)`` on ``next_day``)."""

    opens: time
    closes: time
    next_day: bool = False

    def bounds(self, day: date) -> tuple[datetime, datetime]:
        end_day = day + timedelta(days=1) if self.next_day else day
        return datetime.combine(day, self.opens), datetime.combine(end_day, self.closes)


@dataclass(frozen=True)
class Template:
    """One recurring schedule of one performer and/or resource at one unit."""

    weekdays: frozenset[int]  # 0 = Monday
    windows: tuple[Window, ...]
    slot_minutes: int
    first: date
    last: date
    excluded: frozenset[date] = frozenset()

    def days(self) -> Iterator[date]:
        day = self.first
        while day <= self.last:
            if day.weekday() in self.weekdays and day not in self.excluded:
                yield day
            day += timedelta(days=1)


def expand(template: Template) -> Iterator[tuple[datetime, datetime]]:
    """(start, end) UTC instants of every slot, in order per window."""
    step = timedelta(minutes=template.slot_minutes)
    for day in template.days():
        for window in template.windows:
            wall, closes = window.bounds(day)
            while wall + step <= closes:
                slot = _slot(wall, step)
                if slot is not None:
                    yield slot
                wall += step


def _slot(wall: datetime, step: timedelta) -> tuple[datetime, datetime] | None:
    start = resolve_wall(wall)
    if start is None:
        return None  # the spring gap
    end = start + step  # real time: UTC arithmetic
    if end.astimezone(STOCKHOLM).replace(tzinfo=None) != wall + step:
        return None  # spans a change of offset: its wall-clock length would differ from its real length
    return start, end
