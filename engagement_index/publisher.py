"""The outbox publisher: sends pending EI changes in Update calls of up to `batch_size` engagements.

Several publishers may run at once. Each takes the oldest pending rows that no other publisher has
locked (SKIP LOCKED), but sends bookings, not rows: it takes transaction-level advisory locks on the
booking ids those rows name (a booking id can recur under the per-slot policy, so that is the unit
of order), re-reads every pending row of those bookings, sends their net effect, marks the rows
published, and commits, which releases the locks. A booking's changes therefore go out in order and never from
two publishers at once; a publisher killed mid-batch leaves its rows pending, to be sent again
(Update is idempotent). A booking with a parked row is held back until an operator retries it,
so a later change never overtakes an earlier one.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from engagement_index import metrics
from engagement_index.client import DataError, Unavailable
from engagement_index.config import EiSettings
from engagement_index.transactions import Key, Transaction, engagement, keys, net_transactions
from producer.platform import outbox_watch, publishing_loop, tracing

log = logging.getLogger("tidbok.ei.publisher")

LOCK_CLASS = 7201  # the advisory-lock namespace of booking ids being published
Send = Callable[[Sequence[Transaction]], None]

# The oldest pending rows not row-locked by another publisher (index-only, O(batch)); their bookings
# are the candidates. A booking with a parked row waits for the operator.
_CANDIDATES = """
SELECT DISTINCT booking_pk FROM (
    SELECT o.booking_pk FROM ei_outbox o
    WHERE o.published_at IS NULL AND o.parked_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM ei_outbox p WHERE p.booking_pk = o.booking_pk
                      AND p.parked_at IS NOT NULL AND p.published_at IS NULL)
    ORDER BY o.id LIMIT %s FOR UPDATE OF o SKIP LOCKED
) oldest
"""
# Pending is spelt so that it cannot match the pending index's predicate: without statistics on a
# backlog that appeared at once (an outage, an invitation campaign), the planner takes IS NULL as
# rare and walked that index filtering on booking_pk, O(backlog) per batch (3,000/s instead of
# 5,000); through ei_outbox_by_booking it is O(batch) whatever the statistics say.
_PENDING_OF = """
FROM ei_outbox o
WHERE booking_pk = ANY(%s) AND coalesce(published_at, parked_at) IS NULL
  AND NOT EXISTS (SELECT 1 FROM ei_outbox p WHERE p.booking_pk = o.booking_pk
                  AND p.parked_at IS NOT NULL AND p.published_at IS NULL)
"""
_PENDING = "SELECT id, booking_pk, before, after" + _PENDING_OF + "ORDER BY id"
# Before the locks only the ids the rows name are needed, not the posts (JSON read in Python).
_NAMED = "SELECT booking_pk, before->>'booking_id', after->>'booking_id'" + _PENDING_OF
# Through the pending index, as marking does (the table keeps published rows and has no index on id
# alone): without the predicate this walked the whole table each round (9,000/s instead of 36,000).
_HOLD_ROWS = (
    "SELECT id FROM ei_outbox WHERE id = ANY(%s) AND published_at IS NULL AND parked_at IS NULL FOR UPDATE SKIP LOCKED"
)
_LOCK_FAILURES = "SELECT DISTINCT x FROM unnest(%s::text[]) x WHERE NOT pg_try_advisory_xact_lock(%s, hashtext(x))"


@dataclass
class Claim:
    """One booking's pending rows, oldest first."""

    booking_pk: int
    ids: list[int] = field(default_factory=list)
    changes: list[tuple[Any, Any]] = field(default_factory=list)

    def booking_ids(self) -> set[str]:
        return {post["booking_id"] for change in self.changes for post in change if post is not None}


@dataclass
class Entry:
    """A booking's transactions in one call. A booking with more transactions than a call may carry
    is split over consecutive calls (deletes first); only its final entry marks its rows published."""

    claim: Claim
    transactions: list[Transaction]
    final: bool = True


Call = list[Entry]


@dataclass
class Outcome:
    published: int = 0
    parked: int = 0
    failed: int = 0


def _claims(rows: Sequence[tuple[Any, ...]]) -> list[Claim]:
    by_booking: dict[int, Claim] = {}
    for row_id, booking_pk, before, after in rows:
        claim = by_booking.setdefault(booking_pk, Claim(booking_pk))
        claim.ids.append(row_id)
        claim.changes.append((before, after))
    return sorted(by_booking.values(), key=lambda c: c.ids[0])


class Publisher:
    def __init__(self, conn: psycopg.Connection, settings: EiSettings, send: Send) -> None:
        self.conn = conn  # autocommit; each batch is one explicit transaction
        self.settings = settings
        self.send = send

    def publish_once(self) -> Outcome:
        """Claim, send and mark one round of pending rows. Raises Unavailable after recording it.

        The round is one X-Context-ID: its log lines and every Update call it makes carry it."""
        token = tracing.context_id.set(str(uuid.uuid4()))
        try:
            return self._publish_round()
        finally:
            tracing.context_id.reset(token)

    def _publish_round(self) -> Outcome:
        outcome = Outcome()
        unavailable: Unavailable | None = None
        with self.conn.transaction():
            claims = self._claim()
            calls = self._calls(claims, outcome)
            parked: set[int] = set()
            for index, call in enumerate(calls):
                call = [entry for entry in call if entry.claim.booking_pk not in parked]
                try:
                    self._send_call(call, outcome, parked)
                except Unavailable as exc:
                    unavailable = exc
                    rest = {e.claim.booking_pk: e.claim for later in calls[index:] for e in later}
                    self._failed([c for pk, c in rest.items() if pk not in parked], exc, outcome)
                    break
        metrics.PUBLISHED.inc(outcome.published)  # counted once the batch is committed
        metrics.RETRIED.inc(outcome.failed)
        if unavailable is not None:
            raise unavailable
        return outcome

    # -- claiming ---------------------------------------------------------------------------------

    def _claim(self) -> list[Claim]:
        candidates = [r[0] for r in self.conn.execute(_CANDIDATES, (self.settings.batch_size,)).fetchall()]
        if not candidates:
            return []
        named: dict[int, set[str]] = {}
        for booking_pk, *ids in self.conn.execute(_NAMED, (candidates,)).fetchall():
            named.setdefault(booking_pk, set()).update(i for i in ids if i is not None)
        claims: list[Claim] = []
        locked: set[str] = set()
        # Lock the ids the rows name, then read the rows under the locks (another publisher may have
        # published some meanwhile, and new rows may name new ids: lock those too, once more).
        for attempt in range(2):
            wanted = sorted(set().union(*named.values()) - locked)
            if attempt and not wanted:
                break  # the rows just read under the locks name no id beyond them: they stand
            busy = {r[0] for r in self.conn.execute(_LOCK_FAILURES, (wanted, LOCK_CLASS)).fetchall()}
            locked |= set(wanted) - busy
            mine = [booking_pk for booking_pk, ids in named.items() if ids <= locked]
            if not mine:
                return []
            claims = _claims(self.conn.execute(_PENDING, (mine,)).fetchall())
            named = {c.booking_pk: c.booking_ids() for c in claims}
        return self._rows_held([c for c in claims if c.booking_ids() <= locked])

    def _rows_held(self, claims: list[Claim]) -> list[Claim]:
        """The claims whose every row this round can lock without waiting. Another publisher's
        candidate query may hold a row of a booking we hold the id of (it locked the oldest rows
        before it knew whose they were); marking that row would wait for its round, while it waits
        to mark one of ours: a deadlock, after both had sent (two sends of a change). Such a booking
        waits for the next round instead, and every row marked is one this round holds."""
        ids = [i for c in claims for i in c.ids]
        if not ids:
            return claims
        held = {r[0] for r in self.conn.execute(_HOLD_ROWS, (ids,)).fetchall()}
        return [c for c in claims if held.issuperset(c.ids)]

    def _owned_elsewhere(self, claims: list[Claim], nets: list[list[Transaction]]) -> set[tuple[Key, int]]:
        """(key, booking) pairs where the key is another booking's current post.

        Under the per-slot policy one resident's two bookings can hand a key (a slot's id) from one to
        the other; the booking giving it up must not delete what the other one now holds in EI. The
        database's booking.ei_post is what each booking's post is now, whatever is still queued."""
        deletes = {t.engagement["businessObjectInstanceIdentifier"] for txs in nets for t in txs if t.delete}
        if not deletes:
            return set()
        owners: dict[Key, int] = {}
        for pk, post in self.conn.execute(
            "SELECT pk, ei_post FROM booking WHERE booking_id = ANY(%s) AND ei_post IS NOT NULL", (sorted(deletes),)
        ).fetchall():
            owners[Transaction(False, engagement(post, self.settings, True)).key] = pk
        return {
            (t.key, claim.booking_pk)
            for claim, txs in zip(claims, nets, strict=True)
            for t in txs
            if t.delete and owners.get(t.key, claim.booking_pk) != claim.booking_pk
        }

    def _calls(self, claims: list[Claim], outcome: Outcome) -> list[Call]:
        """Group bookings into Update calls: at most batch_size engagements, no key twice in a call."""
        nets = [net_transactions(claim.changes, self.settings) for claim in claims]
        skip = self._owned_elsewhere(claims, nets)
        limit = self.settings.batch_size
        calls: list[Call] = []
        current: Call = []
        size, used = 0, set[Key]()
        for claim, net in zip(claims, nets, strict=True):
            transactions = [t for t in net if (t.key, claim.booking_pk) not in skip] if skip else net
            if not transactions:  # e.g. a reserve-number resident: nothing to publish, ever
                self._mark_published(claim.ids)
                outcome.published += len(claim.ids)
                continue
            if current and (size + len(transactions) > limit or keys(transactions) & used):
                calls.append(current)
                current, size, used = [], 0, set()
            if len(transactions) > limit:  # a call of its own per piece, in order
                pieces = [transactions[n : n + limit] for n in range(0, len(transactions), limit)]
                calls.extend([Entry(claim, piece, final=piece is pieces[-1])] for piece in pieces)
                continue
            current.append(Entry(claim, transactions))
            size += len(transactions)
            used |= keys(transactions)
        if current:
            calls.append(current)
        return calls

    # -- sending ----------------------------------------------------------------------------------

    def _send_call(self, call: Call, outcome: Outcome, parked: set[int]) -> None:
        """Send; on a data error find the booking(s) at fault by halving, park them, send the rest."""
        if not call:
            return
        transactions = [t for entry in call for t in entry.transactions]
        metrics.BATCH_ENGAGEMENTS.observe(len(transactions))
        started = time.perf_counter()
        try:
            self.send(transactions)
        except Unavailable:
            metrics.CALL_SECONDS.labels("unavailable").observe(time.perf_counter() - started)
            raise
        except DataError as exc:
            metrics.CALL_SECONDS.labels("data_error").observe(time.perf_counter() - started)
            if len(call) == 1:
                self._park(call[0].claim, exc.message, outcome)
                parked.add(call[0].claim.booking_pk)
                return
            middle = len(call) // 2
            self._send_call(call[:middle], outcome, parked)
            self._send_call(call[middle:], outcome, parked)
            return
        metrics.CALL_SECONDS.labels("ok").observe(time.perf_counter() - started)
        ids = [i for entry in call if entry.final for i in entry.claim.ids]
        self._mark_published(ids)
        outcome.published += len(ids)

    def _mark_published(self, ids: list[int]) -> None:
        self.conn.execute(
            "UPDATE ei_outbox SET published_at = clock_timestamp()"
            " WHERE id = ANY(%s) AND published_at IS NULL AND parked_at IS NULL",
            (ids,),
        )

    def _park(self, claim: Claim, reason: str, outcome: Outcome) -> None:
        log.warning("EI refused booking %s; %d row(s) parked: %s", claim.booking_pk, len(claim.ids), reason)
        self.conn.execute(
            "UPDATE ei_outbox SET parked_at = now(), parked_reason = %s, last_error = %s"
            " WHERE id = ANY(%s) AND published_at IS NULL AND parked_at IS NULL",
            (reason, reason, claim.ids),
        )
        outcome.parked += len(claim.ids)
        metrics.PARKED.labels("refused").inc(len(claim.ids))

    def _failed(self, claims: list[Claim], exc: Unavailable, outcome: Outcome) -> None:
        """Count the attempt; rows that have used up their attempts are parked, never dropped."""
        ids = [i for claim in claims for i in claim.ids]
        gave_up = self.conn.execute(
            "UPDATE ei_outbox SET attempts = attempts + 1, last_error = %s,"
            " parked_at = CASE WHEN attempts + 1 >= %s THEN now() END,"
            " parked_reason = CASE WHEN attempts + 1 >= %s THEN %s END"
            " WHERE id = ANY(%s) AND published_at IS NULL AND parked_at IS NULL RETURNING parked_at IS NOT NULL",
            (
                exc.message,
                self.settings.retry_max_attempts,
                self.settings.retry_max_attempts,
                f"gave up after {self.settings.retry_max_attempts} attempts: {exc.message}",
                ids,
            ),
        ).fetchall()
        outcome.failed += len(ids)
        metrics.PARKED.labels("attempts").inc(sum(1 for (parked,) in gave_up if parked))


def run(
    connect: Callable[[], psycopg.Connection],
    settings: EiSettings,
    send: Send,
    stop: threading.Event,
    sweep: Callable[[psycopg.Connection], int] | None = None,
) -> None:
    """Publish until `stop` is set (finishing the batch in hand); sweep every sweep_seconds."""
    next_sweep = 0.0

    def publish_round(conn: psycopg.Connection) -> publishing_loop.Round:
        nonlocal next_sweep
        if sweep is not None and time.monotonic() >= next_sweep:
            swept = sweep(conn)
            if swept:
                log.info("sweeper queued %d removal(s) of passed or expired posts", swept)
            next_sweep = time.monotonic() + settings.sweep_seconds
        try:
            outcome = Publisher(conn, settings, send).publish_once()
        except Unavailable as exc:
            return publishing_loop.Round(failure=("EI unavailable (%s); next attempt in %.1f s", (exc.message,)))
        if outcome.published or outcome.parked:
            log.info("published %d outbox row(s), parked %d", outcome.published, outcome.parked)
            return publishing_loop.Round(worked=True)
        return publishing_loop.Round()

    # /ready and /metrics count each connection as a live publisher (outbox_watch.PUBLISHER_PRESENCE)
    publishing_loop.run(connect, publish_round, settings, stop, presence=outbox_watch.PUBLISHER_PRESENCE, log=log)
