"""The EP outbox publisher: sends the offers and withdrawals campaigns queued (ep_offer, written by
producer.calendar.offers) to Egen provhantering, one resident a call, as EP takes them.

At least once, in order per resident: a publisher claims the oldest due rows whose resident has no
earlier row still to be sent, locking them (FOR UPDATE SKIP LOCKED), so several publishers (threads,
processes, hosts) never send the same row at once nor a resident's undo before its add. It sends
each, records EP's answer, and commits; a publisher killed mid-round leaves its rows pending, to be
sent again. A repeated add is harmless: EP answers OfferAlreadyGivenWithinTimeLimitTryLater,
recorded as already given (not a failure).

- given, already_given, undone, nothing_to_undo: the row is sent.
- refused (EP's ValidationErrorList): parked with EP's texts for staff, never sent again blindly
  (staff retry it after fixing what EP named). An undo whose add EP refused is dropped unsent:
  nothing was given. An undo is not held back by a parked add (it supersedes it; a retry by staff
  does not send an add that was withdrawn since).
- technical (TechnicalErrorList, a timeout, a refused connection, an HTTP error, an unusable answer):
  the row is tried again after its own backoff (retry_initial_ms doubling up to retry_max_ms), parked
  after retry_max_attempts; the round stops there and the publisher backs off as a whole, so an
  outage costs one call per round, not one per row.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
from prometheus_client import Counter

from egen_provhantering.client import Answer, GivenOffer
from egen_provhantering.publisher_config import PublishingSettings
from producer.platform import outbox_watch, publishing_loop, tracing

log = logging.getLogger("tidbok.ep.publisher")

PRESENCE = outbox_watch.EP_PUBLISHER_PRESENCE  # held by each publisher connection: /metrics counts them

SENT = Counter("tidbok_ep_offers_sent", "Offer rows EP answered (marked sent), by outcome", ["outcome"])
RETRIED = Counter("tidbok_ep_offers_retried", "Offer rows whose call failed technically (tried again later)")
PARKED = Counter("tidbok_ep_offers_parked", "Offer rows parked for staff, by why (refused, attempts)", ["reason"])

# The oldest due rows whose resident has nothing earlier to send, not locked by another publisher;
# read through the pending and unsent indexes.
_CLAIM = """
SELECT o.id, o.action, o.unit_hsa_id, o.campaign, o.resident, o.access_unit_id, o.hc_professional_id,
       o.hc_first_name, o.hc_last_name, o.notify_resident, o.unit_offer_id, o.attempts
FROM ep_offer o
WHERE o.state = 'pending' AND o.next_attempt_at <= clock_timestamp()
  AND NOT EXISTS (SELECT 1 FROM ep_offer p WHERE p.resident = o.resident AND p.id < o.id AND p.state = 'pending')
ORDER BY o.id LIMIT %s FOR UPDATE OF o SKIP LOCKED
"""
# An undo whose add EP refused, or that was dropped: nothing was given, nothing to undo.
_NOTHING_GIVEN = (
    "SELECT 1 FROM ep_offer WHERE unit_hsa_id = %s AND campaign = %s AND resident = %s AND action = 'add'"
    " AND (state = 'dropped' OR (state = 'parked' AND outcome = 'refused'))"
)
_DROP = "UPDATE ep_offer SET state = 'dropped' WHERE id = %s AND state = 'pending'"
# the round's answered rows, in one statement (each with its own answer and time)
_SENT = (
    "UPDATE ep_offer o SET state = 'sent', outcome = a.outcome, attempts = o.attempts + 1, sent_at = a.at,"
    " last_error = NULL FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) AS a(id, outcome, at)"
    " WHERE o.id = a.id AND o.state = 'pending'"
)
_REFUSED = (
    "UPDATE ep_offer SET state = 'parked', outcome = 'refused', attempts = attempts + 1, parked_at = clock_timestamp(),"
    " last_error = %s, validation_errors = %s::jsonb WHERE id = %s AND state = 'pending'"
)
_FAILED = """
UPDATE ep_offer SET attempts = attempts + 1, last_error = %(error)s,
    next_attempt_at = clock_timestamp()
        + make_interval(secs => least(%(initial)s * 2 ^ least(attempts, 30), %(maximum)s)),
    state = CASE WHEN attempts + 1 >= %(limit)s THEN 'parked' ELSE 'pending' END,
    outcome = CASE WHEN attempts + 1 >= %(limit)s THEN 'technical' END,
    parked_at = CASE WHEN attempts + 1 >= %(limit)s THEN clock_timestamp() END
WHERE id = %(id)s AND state = 'pending' RETURNING state
"""


class Client(Protocol):
    """egen_provhantering.client.OfferClient, as the publisher uses it."""

    def add(self, offer: GivenOffer, *, request_id: str | None = None) -> Answer: ...
    def undo(self, offer: GivenOffer, *, request_id: str | None = None) -> Answer: ...


@dataclass
class Outcome:
    sent: dict[str, int] = field(default_factory=dict)  # by EP's outcome
    parked: dict[str, int] = field(default_factory=dict)  # by why: refused, attempts
    dropped: int = 0  # undos of offers never given: not sent
    failed: int = 0  # technical: the round stopped there
    detail: str = ""

    def count(self) -> None:
        """The round's figures, once it is committed."""
        for outcome, n in self.sent.items():
            SENT.labels(outcome).inc(n)
        for reason, n in self.parked.items():
            PARKED.labels(reason).inc(n)
        RETRIED.inc(self.failed)

    @property
    def worked(self) -> bool:
        return bool(self.sent or self.parked or self.dropped)

    def summary(self) -> str:
        return f"{sum(self.sent.values())} sent, {sum(self.parked.values())} parked"


class Publisher:
    def __init__(self, conn: psycopg.Connection, settings: PublishingSettings, client: Client) -> None:
        self.conn = conn  # autocommit; each round is one explicit transaction
        self.settings = settings
        self.client = client

    def publish_once(self) -> Outcome:
        """Claim, send and record one round of due rows. The round is one X-Context-ID: its log
        lines and every call it makes carry it."""
        token = tracing.context_id.set(str(uuid.uuid4()))
        try:
            outcome = Outcome()
            with self.conn.transaction():
                # Walk the queue in id order and stop at the batch: on a campaign's backlog, before
                # autovacuum has analyzed it, the planner takes pending rows as rare and sorted all of
                # them for every round (25 ms a round of 10 at 10,000 pending: 100 offers/s in all).
                self.conn.execute("SET LOCAL enable_sort = off")
                answered: list[tuple[int, str, datetime]] = []
                for row in self.conn.execute(_CLAIM, (self.settings.batch_size,)).fetchall():
                    if not self._send(row, outcome, answered):
                        break  # EP is unwell: the rest of the claim waits for the next round
                if answered:
                    self.conn.execute(_SENT, [list(column) for column in zip(*answered, strict=True)])
            outcome.count()
            return outcome
        finally:
            tracing.context_id.reset(token)

    def _send(self, row: tuple[Any, ...], outcome: Outcome, answered: list[tuple[int, str, datetime]]) -> bool:
        """Send one row and record EP's answer (a success in `answered`, marked with the round);
        False when the call failed technically."""
        row_id, action, unit, campaign, resident, *fields, attempts = row
        access_unit, professional, first, last, notify, unit_offer = fields
        if action == "undo" and self.conn.execute(_NOTHING_GIVEN, (unit, campaign, resident)).fetchone():
            self.conn.execute(_DROP, (row_id,))
            outcome.dropped += 1
            return True
        offer = GivenOffer(access_unit, professional, first, last, notify, resident, unit_offer)
        call = self.client.add if action == "add" else self.client.undo
        answer = call(offer, request_id=str(uuid.uuid4()))
        if answer.outcome == "technical":
            state = self.conn.execute(
                _FAILED,
                {
                    "error": answer.detail or "technical error",
                    "initial": self.settings.retry_initial_ms / 1000,
                    "maximum": self.settings.retry_max_ms / 1000,
                    "limit": self.settings.retry_max_attempts,
                    "id": row_id,
                },
            ).fetchone()
            outcome.failed += 1
            outcome.detail = answer.detail
            if state is not None and state[0] == "parked":
                outcome.parked["attempts"] = outcome.parked.get("attempts", 0) + 1
                log.warning("EP offer row %d parked after %d attempts: %s", row_id, attempts + 1, answer.detail)
            return False
        if answer.outcome == "refused":
            errors = [
                {"container": e.container, "element": e.element, "text": e.text} for e in answer.validation_errors
            ]
            self.conn.execute(_REFUSED, (answer.detail, json.dumps(errors, ensure_ascii=False), row_id))
            outcome.parked["refused"] = outcome.parked.get("refused", 0) + 1
            return True
        answered.append((row_id, answer.outcome, datetime.now(UTC)))
        outcome.sent[answer.outcome] = outcome.sent.get(answer.outcome, 0) + 1
        return True


def run(
    connect: Callable[[], psycopg.Connection],
    settings: PublishingSettings,
    client: Client,
    stop: threading.Event,
) -> None:
    """Publish until `stop` is set (finishing the round in hand)."""

    def publish_round(conn: psycopg.Connection) -> publishing_loop.Round:
        outcome = Publisher(conn, settings, client).publish_once()
        if outcome.failed:
            warning = "EP: %s, then a technical failure (%s); next round in %.1f s"
            return publishing_loop.Round(failure=(warning, (outcome.summary(), outcome.detail)))
        if outcome.worked:
            log.info("EP: %s", outcome.summary())
        return publishing_loop.Round(worked=outcome.worked)

    publishing_loop.run(
        connect,
        publish_round,
        settings,
        stop,
        presence=PRESENCE,
        log=log,
        # a bug must not end the loop: the rows stay pending, the process keeps publishing
        bug_warning="EP publishing round failed; trying again",
    )


@dataclass(frozen=True)
class Status:
    """The EP outbox as operators look at it (`tidbok ep status`)."""

    pending: int  # to be sent (including those waiting for their backoff)
    retrying: int  # of those, failed at least once
    refused: int  # parked: EP refused them (staff fix and retry)
    failed: int  # parked: gave up after retry_max_attempts
    oldest_pending_seconds: float | None
    sent_last_hour: int
    publishers: int  # EP publisher connections up

    def lines(self) -> list[str]:
        oldest = "-" if self.oldest_pending_seconds is None else f"{self.oldest_pending_seconds:.1f} s"
        return [
            f"pending             {self.pending} ({self.retrying} after a technical failure)",
            f"parked              {self.refused} refused by EP, {self.failed} given up (tidbok staff offers-retry)",
            f"oldest pending age  {oldest}",
            f"sent last hour      {self.sent_last_hour}",
            f"publishers          {self.publishers} connection(s)",
        ]


def status(conn: psycopg.Connection) -> Status:
    row = conn.execute(
        """
        SELECT count(*) FILTER (WHERE state = 'pending'),
               count(*) FILTER (WHERE state = 'pending' AND attempts > 0),
               count(*) FILTER (WHERE state = 'parked' AND outcome = 'refused'),
               count(*) FILTER (WHERE state = 'parked' AND outcome IS DISTINCT FROM 'refused'),
               extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'pending')),
               count(*) FILTER (WHERE state = 'sent' AND sent_at > now() - interval '1 hour'),
               (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s
                  AND objsubid = 2 AND granted
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))
        FROM ep_offer
        """,
        PRESENCE,
    ).fetchone()
    assert row is not None
    oldest = float(row[4]) if row[4] is not None else None
    return Status(row[0], row[1], row[2], row[3], oldest, row[5], row[6])
