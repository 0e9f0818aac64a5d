"""The real EI's Update rules (domain brief §3.2; skltp/ei EngagementValidator), in its order.

The order matters to a tester: the first broken rule decides the fault, and the real EI checks the
routing, then the count, then each transaction in turn (key, white space, reserved ids, mandatory
fields, lengths, dates), so an EI002 between #2 and #3 is only reported if #1 is clean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engagement_index.fields import DATE_FIELDS, FIELD_LIMITS, KEY_FIELDS, MANDATORY_FIELDS
from engagement_index.stub import faults
from producer.sweden.wall_time import WireFormatError, parse_ts

MIN_TRANSACTIONS = 1
MAX_TRANSACTIONS = 1000

_JAVA_TRIM = "".join(chr(c) for c in range(0x21))  # String.trim() removes every char <= U+0020

Engagement = Mapping[str, str]
Key = tuple[str, ...]


def key_of(engagement: Engagement, owner: str) -> Key:
    """The storage key; owner is the index's own id whatever the caller sent (TKB pR7)."""
    return tuple(owner if name == "owner" else engagement.get(name, "") for name in KEY_FIELDS)


@dataclass(frozen=True)
class UpdateRules:
    owner: str
    accepted_logical_addresses: frozenset[str]
    reserved_hsa_ids: frozenset[str]

    def check_routing(self, logical_address: str | None) -> None:
        if not logical_address:
            raise faults.wrong_logical_address("missing", self.owner)
        if logical_address not in self.accepted_logical_addresses:
            raise faults.wrong_logical_address(logical_address, self.owner)

    @staticmethod
    def check_count(count: int) -> None:
        if count < MIN_TRANSACTIONS:
            raise faults.technical(
                f"The request contains less than {MIN_TRANSACTIONS} engagements. "
                f"Minium number of engagements per request is {MIN_TRANSACTIONS}."
            )
        if count > MAX_TRANSACTIONS:
            raise faults.technical(
                f"The request contains more than {MAX_TRANSACTIONS} engagements. "
                f"Maximum number of engagements per request is {MAX_TRANSACTIONS}."
            )

    def check_engagements(self, engagements: Sequence[Engagement]) -> None:
        """EI002, EI004, EI005, EI006 over the engagements as sent (text not stripped)."""
        first_index: dict[Key, int] = {}
        for index, engagement in enumerate(engagements, start=1):
            key = key_of(engagement, self.owner)
            if key in first_index:
                raise faults.duplicate_key(first_index[key], index)
            first_index[key] = index
            self._check_white_space(engagement)
            self._check_reserved(index, engagement)
            self._check_mandatory(engagement)
            self._check_lengths(engagement)
            self._check_dates(engagement)

    @staticmethod
    def _check_white_space(engagement: Engagement) -> None:
        for name in MANDATORY_FIELDS:
            value = engagement.get(name) or ""
            if value and value.strip(_JAVA_TRIM) != value:
                raise faults.invalid(f'mandatory field "{name}" contains white space in beginning or end')

    def _check_reserved(self, index: int, engagement: Engagement) -> None:
        logical_address = engagement.get("logicalAddress", "")
        if logical_address in self.reserved_hsa_ids:
            raise faults.reserved_logical_address(index, logical_address)
        source_system = engagement.get("sourceSystem", "")
        if source_system in self.reserved_hsa_ids:
            raise faults.reserved_source_system(index, source_system)

    @staticmethod
    def _check_mandatory(engagement: Engagement) -> None:
        for name in MANDATORY_FIELDS:
            if not engagement.get(name):
                raise faults.invalid(f'mandatory field "{name}" is missing')

    @staticmethod
    def _check_lengths(engagement: Engagement) -> None:
        for name, limit in FIELD_LIMITS.items():
            if len(engagement.get(name) or "") > limit:
                raise faults.invalid(f'Field "{name}" is to long')

    @staticmethod
    def _check_dates(engagement: Engagement) -> None:
        # Strict yyyyMMddHHmmss as Java's non-lenient SimpleDateFormat in Swedish time: no 31 Feb, no
        # 24:00, no wall time skipped by the spring DST change.
        for name in DATE_FIELDS:
            value = engagement.get(name)
            if value:
                try:
                    parse_ts(value)
                except WireFormatError as exc:
                    raise faults.invalid(f'Field "{name}": {exc}') from None
