"""The write side of the EI outbox: what a booking's EI post is, and recording each change of it.

A row holds the post before and after the change (or NULL where there is none), written in the
same transaction as the booking change, so no change can be lost or published without happening.
The publisher (engagement_index.publisher) turns before/after into Update transactions: an upsert
when the key is unchanged, delete(old key) then create(new key) in one call when it changed.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Any

from producer.sweden.wall_time import STOCKHOLM, format_ts

Post = dict[str, Any]


def ei_post(
    *,
    status: str,
    kind: str,
    subject_of_care: str,
    unit_hsa_id: str,
    booking_id: str,
    starts_at: datetime | None,
    invitation_date: date | None,
    valid_until: datetime | None,
    now: datetime,
) -> Post | None:
    """The EI post a booking should have now, or None when it belongs nowhere in EI.

    TKB §3.4: only current items are in EI: not cancelled, start time not passed, invitation still
    valid. mostRecentContent is the start time, or the business date of an open invitation.
    """
    if status != "active":
        return None
    if valid_until is not None and kind != "booking" and valid_until <= now:
        return None
    if starts_at is not None:
        if starts_at <= now:
            return None
        content = format_ts(starts_at)
    elif invitation_date is not None:
        content = format_ts(datetime.combine(invitation_date, time(), tzinfo=STOCKHOLM))
    else:
        return None
    return {
        "subject_of_care": subject_of_care,
        "unit": unit_hsa_id.upper(),
        "booking_id": booking_id,
        "kind": "booking" if kind == "booking" else "invitation",
        "most_recent_content": content,
    }


def booked_post(resident: str, unit_hsa_id: str, booking_id: str, starts_at: datetime, now: datetime) -> Post | None:
    """The EI post of an active booking (not an invitation) with a time: what a booking or rebooking leaves."""
    return ei_post(
        status="active",
        kind="booking",
        subject_of_care=resident,
        unit_hsa_id=unit_hsa_id,
        booking_id=booking_id,
        starts_at=starts_at,
        invitation_date=None,
        valid_until=None,
        now=now,
    )


# Queue a change and remember the new post on the booking, in one statement (a data-modifying CTE):
# callers may put their own CTEs first (change_sql), as history.record does with the history row.
# A unit not yet live in 1177 (care_unit.publish_to_ei false) has no posts: the post a change would
# give it is dropped here, so every path that changes a booking honours the switch, and a post the
# booking had (it moved there, or the unit was switched off) is deleted from EI.
_LIVE = (
    "live AS (SELECT coalesce((SELECT u.publish_to_ei FROM booking bl JOIN care_unit u ON u.hsa_id = bl.unit_hsa_id"
    " WHERE bl.pk = %(pk)s), true) AS publishes)"
)
_QUEUE = (
    "queued AS (INSERT INTO ei_outbox (booking_pk, reason, before, after)"
    " SELECT %(pk)s, %(reason)s, %(before)s::jsonb, CASE WHEN live.publishes THEN %(after)s::jsonb END FROM live"
    " WHERE %(before)s::jsonb IS NOT NULL OR (live.publishes AND %(after)s::jsonb IS NOT NULL))"
)
_REMEMBER = (
    "UPDATE booking b SET ei_post = CASE WHEN live.publishes THEN %(after)s::jsonb END,"
    " ei_expires_at = CASE WHEN live.publishes AND %(after)s::jsonb IS NOT NULL"
    " THEN least((SELECT s.starts_at FROM slot s WHERE s.booking_pk = b.pk),"
    " CASE WHEN b.kind <> 'booking' THEN b.valid_until END) END FROM live WHERE b.pk = %(pk)s"
)


def change_sql(*ctes: str) -> str:
    """The statement that queues a change and remembers the post, after `ctes` ("name AS (...)")."""
    return f"WITH {', '.join((*ctes, _LIVE, _QUEUE))} {_REMEMBER}"


def change_params(booking_pk: int, reason: str, before: Post | None, after: Post | None) -> dict[str, Any]:
    return {
        "pk": booking_pk,
        "reason": reason,
        "before": json.dumps(before) if before is not None else None,
        "after": json.dumps(after) if after is not None else None,
    }


_CHANGE = change_sql()


def record_change(conn: Any, booking_pk: int, reason: str, before: Post | None, after: Post | None) -> bool:
    """Queue a change of a booking's EI post and remember the new post on the booking.

    Call it after the booking and its slot are written: the post's expiry (start time, or an
    invitation's validity end) is read from them for the sweeper. Returns whether a row was written.
    """
    if before == after:
        return False
    conn.execute(_CHANGE, change_params(booking_pk, reason, before, after))
    return True
