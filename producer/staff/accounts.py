"""Staff accounts: who may log in to the staff page (/staff/) or act through /admin, and at which units.

TIDBOK_STAFF_ACCOUNTS (or `[staff] accounts`): entries separated by whitespace or ";", each
`HSA-ID=UNITS` or `HSA-ID=UNITS:SECRET`, UNITS being `*` (all units) or `UNIT,UNIT,…`. The secret
(≥ 12 characters) is the account's password on the login page and its bearer token for /admin; an
account without one logs in only with its SITHS certificate (mutual TLS, or the proxy's forwarded
certificate), whose SERIALNUMBER is the HSA-id. Secrets are kept as digests and compared in
constant time. No account configured: nobody can log in (a page open to all is never the default).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from producer.platform.settings import ConfigError
from producer.sweden.identifiers import is_valid_hsa_id, normalise_hsa_id

ALL_UNITS = "*"
MIN_SECRET = 12


@dataclass(frozen=True)
class Access:
    """Which units someone may see and change: every unit, or these (upper-case HSA-ids)."""

    all_units: bool
    units: frozenset[str]

    def covers(self, unit: str) -> bool:
        return self.all_units or normalise_hsa_id(unit) in self.units

    def among(self, units: list[str]) -> list[str]:
        """The units of a list this access covers, in the list's order."""
        return [unit for unit in units if self.covers(unit)]

    @classmethod
    def parse(cls, scope: str, setting: str) -> Access:
        if scope.strip() == ALL_UNITS:
            return cls(True, frozenset())
        units = frozenset(normalise_hsa_id(u) for u in scope.split(",") if u.strip())
        bad = [u for u in units if not is_valid_hsa_id(u)]
        if not units or bad:
            raise ConfigError(f"{setting} names an invalid care unit HSA-id: {', '.join(sorted(bad)) or '(none)'}")
        return cls(False, units)


@dataclass(frozen=True)
class Account:
    hsa_id: str
    access: Access


class Accounts:
    def __init__(self, accounts: list[Account], secrets: dict[bytes, str]) -> None:
        self._by_hsa_id = {a.hsa_id: a for a in accounts}
        self._secrets = secrets  # sha256(secret) -> HSA-id

    @classmethod
    def parse(cls, text: str, setting: str = "TIDBOK_STAFF_ACCOUNTS") -> Accounts:
        accounts: list[Account] = []
        secrets: dict[bytes, str] = {}
        for entry in (e for e in re.split(r"[\s;]+", text.strip()) if e):
            who, sep, rest = entry.partition("=")
            scope, _, secret = rest.partition(":")
            hsa_id = normalise_hsa_id(who)
            if not sep or not is_valid_hsa_id(hsa_id):
                raise ConfigError(f"{setting} entries are HSA-ID=UNITS[:SECRET]; {who[:40]!r} is not an HSA-id")
            if hsa_id in {a.hsa_id for a in accounts}:
                raise ConfigError(f"{setting} names {hsa_id} twice")
            if secret and len(secret) < MIN_SECRET:
                raise ConfigError(f"{setting}: the secret of {hsa_id} is shorter than {MIN_SECRET} characters")
            accounts.append(Account(hsa_id, Access.parse(scope, setting)))
            if secret:
                secrets[hashlib.sha256(secret.encode()).digest()] = hsa_id
        return cls(accounts, secrets)

    def __bool__(self) -> bool:
        return bool(self._by_hsa_id)

    def by_hsa_id(self, hsa_id: str | None) -> Account | None:
        """The account of an HSA-id (a certificate's, a session's); None when it has none (any more)."""
        return self._by_hsa_id.get(normalise_hsa_id(hsa_id or ""))

    def by_secret(self, secret: str | None) -> Account | None:
        """The account whose secret this is (a bearer token)."""
        if not secret:
            return None
        digest = hashlib.sha256(secret.encode()).digest()
        found = None
        for known, hsa_id in self._secrets.items():  # every entry compared, in constant time
            if hmac.compare_digest(known, digest):
                found = hsa_id
        return self._by_hsa_id.get(found) if found else None

    def login(self, hsa_id: str | None, password: str | None) -> Account | None:
        """The account when the password is that HSA-id's secret; None otherwise (the same answer
        for an unknown HSA-id and a wrong password)."""
        account = self.by_secret(password)
        return account if account is not None and account.hsa_id == normalise_hsa_id(hsa_id or "") else None
