"""Staff page sessions, kept in PostgreSQL (migration 0006) so every worker sees a logout at once.

The cookie holds 32 random bytes; the table holds only their SHA-256, the staff member's HSA-id,
the session's form token (CSRF) and its expiry. A session ends `minutes` after its last use (at
most MAX_HOURS after the login) or at logout; the account's units are read from the configuration
on every request, so a changed account takes effect at once, and a removed one ends its sessions.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from producer.staff.accounts import Account, Accounts

MAX_HOURS = 12  # a working day: then log in again, however busy the session was
TOUCH_EVERY = timedelta(seconds=60)  # the expiry moves on at most once a minute (one write, not one per page)


@dataclass(frozen=True)
class Session:
    account: Account
    csrf: str


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Sessions:
    def __init__(self, accounts: Accounts, minutes: int) -> None:
        self.accounts = accounts
        self.idle = timedelta(minutes=minutes)

    def start(self, conn: psycopg.Connection, account: Account, how: str) -> str:
        """A new session (a new cookie value: never one the browser brought, against fixation)."""
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        conn.execute("DELETE FROM staff_session WHERE expires_at < %s", (now,))
        conn.execute(
            "INSERT INTO staff_session (token_digest, staff_hsa_id, csrf_token, how, created_at, last_used_at,"
            " expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (_digest(token), account.hsa_id, secrets.token_urlsafe(32), how, now, now, now + self.idle),
        )
        return token

    def find(self, conn: psycopg.Connection, token: str | None) -> Session | None:
        """The live session of this cookie; None when it is unknown, ended or expired."""
        if not token or len(token) > 100:
            return None
        now = datetime.now(UTC)
        row = conn.execute(
            "SELECT staff_hsa_id, csrf_token, created_at, last_used_at FROM staff_session"
            " WHERE token_digest = %s AND expires_at > %s",
            (_digest(token), now),
        ).fetchone()
        if row is None:
            return None
        hsa_id, csrf, created, last_used = row
        account = self.accounts.by_hsa_id(hsa_id)
        if account is None or now - created > timedelta(hours=MAX_HOURS):
            self.end(conn, token)
            return None
        if now - last_used > TOUCH_EVERY:
            conn.execute(
                "UPDATE staff_session SET last_used_at = %s, expires_at = %s WHERE token_digest = %s",
                (now, min(now + self.idle, created + timedelta(hours=MAX_HOURS)), _digest(token)),
            )
        return Session(account, csrf)

    def end(self, conn: psycopg.Connection, token: str | None) -> None:
        if token:
            conn.execute("DELETE FROM staff_session WHERE token_digest = %s", (_digest(token),))
