"""API tokens: each token covers all units or a list of units (TIDBOK_ADMIN_TOKENS).

Format: entries separated by whitespace or ";", each `TOKEN=*` (all units) or
`TOKEN=SE2321000016-A100,SE2321000016-A200`. No token configured means the API is closed (every
request gets 401): an open administration API is never the default.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from producer.platform.settings import ConfigError
from producer.sweden.identifiers import is_valid_hsa_id, normalise_hsa_id

ALL_UNITS = "*"


@dataclass(frozen=True)
class Grant:
    """What one token may touch: every unit, or these (upper-case HSA-ids)."""

    all_units: bool
    units: frozenset[str]

    def covers(self, unit: str) -> bool:
        return self.all_units or normalise_hsa_id(unit) in self.units


class Tokens:
    def __init__(self, grants: dict[str, Grant]) -> None:
        # compared by digest in constant time, so neither timing nor a memory dump reveals a token
        self._grants = {hashlib.sha256(token.encode()).digest(): grant for token, grant in grants.items()}

    @classmethod
    def parse(cls, text: str, label: str = "TIDBOK_ADMIN_TOKENS") -> Tokens:
        """`label` names the setting where the operator wrote it (the variable, or the file's key)."""
        grants: dict[str, Grant] = {}
        for number, entry in enumerate((e for e in re.split(r"[\s;]+", text.strip()) if e), start=1):
            token, sep, scope = entry.partition("=")
            if not sep:
                raise ConfigError(f"{label}: entry {number} is not TOKEN=* or TOKEN=HSA-ID,…")
            if len(token) < 16:
                raise ConfigError(f"{label}: the token of entry {number} has {len(token)} characters; at least 16")
            if scope == ALL_UNITS:
                grants[token] = Grant(True, frozenset())
                continue
            units = frozenset(normalise_hsa_id(u) for u in scope.split(",") if u)
            bad = [u for u in units if not is_valid_hsa_id(u)]
            if not units or bad:
                raise ConfigError(f"{label} names an invalid HSA-id: {', '.join(bad) or '(none)'}")
            grants[token] = Grant(False, units)
        return cls(grants)

    def grant(self, token: str | None) -> Grant | None:
        if not token:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        for known, grant in self._grants.items():
            if hmac.compare_digest(known, digest):
                return grant
        return None
