"""A change's traces, written in the change's own transaction: its history row (booking_event: who,
when, through which channel) and its EI outbox row, in one statement when there are both."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg

from producer.calendar.outbox import Post, change_params, change_sql, record_change
from producer.calendar.policy import Actor
from producer.calendar.views import view_by_pk

_EVENT = (
    "INSERT INTO booking_event (booking_pk, action, channel, actor_type, actor_id, details)"
    " VALUES (%(pk)s, %(action)s, %(channel)s, %(actor_type)s, %(actor_id)s, %(details)s::jsonb)"
)
# the history row, the outbox row and the booking's post in one statement
_EVENT_AND_CHANGE = change_sql(f"event AS ({_EVENT})")


def _event_params(
    booking_pk: int, action: str, channel: str, actor_type: str | None, actor_id: str | None, details: dict[str, Any]
) -> dict[str, Any]:
    return {
        "pk": booking_pk,
        "action": action,
        "channel": channel,
        "actor_type": actor_type,
        "actor_id": actor_id,
        "details": json.dumps(details, default=str),
    }


def record_event(
    conn: psycopg.Connection,
    booking_pk: int,
    action: str,
    channel: str,
    actor_type: str | None,
    actor_id: str | None,
    details: dict[str, Any],
) -> None:
    conn.execute(_EVENT, _event_params(booking_pk, action, channel, actor_type, actor_id, details))


def record(
    conn: psycopg.Connection,
    pk: int,
    action: str,
    who: tuple[str, str | None, str | None],
    details: dict[str, Any],
    before: Post | None,
    after: Post | None,
) -> None:
    """The booking's history row and its EI outbox row, written by one statement.

    `who` is (channel, actor type, actor id)."""
    if before == after:
        record_event(conn, pk, action, *who, details)
        return
    conn.execute(
        _EVENT_AND_CHANGE, {**_event_params(pk, action, *who, details), **change_params(pk, action, before, after)}
    )


def write(
    conn: psycopg.Connection,
    actor: Actor,
    pk: int,
    action: str,
    details: dict[str, Any],
    before: Post | None,
    after: Post | None,
) -> None:
    """What a change leaves besides itself: the history row and the outbox row of a channel that
    keeps history (residents, staff); the outbox row alone for the sweeper, with the action as reason."""
    if actor.channel.records_history:
        record(conn, pk, action, actor.who, details, before, after)
    else:
        record_change(conn, pk, action, before, after)


def publish_change(conn: psycopg.Connection, pk: int, reason: str, now: datetime) -> None:
    """Queue the difference between the booking's last published post and what it should be now."""
    view = view_by_pk(conn, pk)
    record_change(conn, pk, reason, view.ei_post, view.post(now))
