"""Who calls /admin: a bearer token, mapped to the units it covers and the staff member it acts for.

Two kinds of token. A staff account's secret (TIDBOK_STAFF_ACCOUNTS, producer.staff.accounts) acts
for that staff member at that account's units. A machine token (TIDBOK_ADMIN_TOKENS) is `TOKEN=*`
(all units) or `TOKEN=SE2321000016-A100,SE2321000016-A200`, optionally followed by `@STAFF-HSA-ID`,
the staff member it acts for; a token without one may read and load but not change a booking.
Tokens are at least 16 characters. No token configured means the API is closed (every request
gets 401): an open administration API is never the default.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from producer.platform.settings import ConfigError
from producer.staff.accounts import Access, Accounts
from producer.sweden.identifiers import is_valid_hsa_id, normalise_hsa_id

SETTING = "TIDBOK_ADMIN_TOKENS"


@dataclass(frozen=True)
class Grant:
    """What one token may touch (every unit, or these upper-case HSA-ids), and who it acts for."""

    all_units: bool
    units: frozenset[str]
    staff: str | None = None  # the staff member's HSA-id; None: no staff changes

    def covers(self, unit: str) -> bool:
        return self.all_units or normalise_hsa_id(unit) in self.units


class Tokens:
    def __init__(self, grants: dict[str, Grant], accounts: Accounts | None = None) -> None:
        # compared by digest in constant time, so neither timing nor a memory dump reveals a token
        self._grants = {hashlib.sha256(token.encode()).digest(): grant for token, grant in grants.items()}
        self._accounts = accounts or Accounts([], {})

    @classmethod
    def parse(cls, text: str, accounts: Accounts | None = None, label: str = SETTING) -> Tokens:
        """`label` names the setting where the operator wrote it (the variable, or the file's key)."""
        grants: dict[str, Grant] = {}
        for number, entry in enumerate((e for e in re.split(r"[\s;]+", text.strip()) if e), start=1):
            token, sep, rest = entry.partition("=")
            scope, at, staff = rest.partition("@")
            if not sep:
                raise ConfigError(f"{label}: entry {number} is not TOKEN=*[@STAFF] or TOKEN=HSA-ID,…[@STAFF]")
            if len(token) < 16:
                raise ConfigError(f"{label}: the token of entry {number} has {len(token)} characters; at least 16")
            if at and not is_valid_hsa_id(normalise_hsa_id(staff)):
                raise ConfigError(f"{label}: {staff[:40]!r} after @ is not a staff member's HSA-id")
            access = Access.parse(scope, label)
            grants[token] = Grant(access.all_units, access.units, normalise_hsa_id(staff) if at else None)
        return cls(grants, accounts)

    def grant(self, token: str | None) -> Grant | None:
        if not token:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for known, grant in self._grants.items():
            if hmac.compare_digest(known, digest):
                found = grant
        if found is not None:
            return found
        account = self._accounts.by_secret(token)
        if account is None:
            return None
        return Grant(account.access.all_units, account.access.units, account.hsa_id)
