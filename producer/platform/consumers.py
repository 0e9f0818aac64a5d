"""Which service consumers may call: HSA-ids from client certificates, optionally narrowed per
contract and per care unit. The identity comes from the TLS layer (producer.http.consumer_identity);
headers such as x-rivta-original-serviceconsumer-hsaid are recorded, never trusted here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from producer.platform.settings_source import ConfigError, ConsumerEntry, Source
from producer.soap.scheduling import INTERACTIONS
from producer.sweden.identifiers import is_valid_hsa_id, normalise_hsa_id


@dataclass(frozen=True)
class Consumer:
    """One consumer that may call; None for contracts or units means all of them."""

    hsa_id: str
    contracts: frozenset[str] | None = None
    units: frozenset[str] | None = None


class Consumers:
    """The configured consumers, looked up by upper-case HSA-id (HSA-ids compare case-insensitively)."""

    def __init__(self, consumers: Iterable[Consumer] = ()) -> None:
        self._by_id = {c.hsa_id: c for c in consumers}

    def __bool__(self) -> bool:
        return bool(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def refusal(self, hsa_id: str, interaction: str, unit: str | None = None) -> str | None:
        """Why `hsa_id` may not call `interaction` (for `unit`, once it is known); None when it may."""
        consumer = self._by_id.get(normalise_hsa_id(hsa_id))
        if consumer is None:
            return f"The service consumer {hsa_id} is not authorized to call this producer"
        if consumer.contracts is not None and interaction not in consumer.contracts:
            return f"The service consumer {hsa_id} is not authorized to call {interaction}"
        if unit is not None and consumer.units is not None and normalise_hsa_id(unit) not in consumer.units:
            return f"The service consumer {hsa_id} is not authorized to call {interaction} for this care unit"
        return None

    @classmethod
    def from_source(cls, source: Source) -> Consumers:
        """From TIDBOK_CONSUMERS (comma-separated HSA-ids, every contract and unit) or the file's
        [[consumer]] tables; the environment's list replaces the file's."""
        listed = source.get("TIDBOK_CONSUMERS")
        if listed is not None:
            label = source.label("TIDBOK_CONSUMERS")
            ids = [i.strip() for i in listed.split(",") if i.strip()]
            return cls(_consumer(ConsumerEntry(i, None, None, label)) for i in ids)
        return cls(_consumer(entry) for entry in source.consumers or ())


def _consumer(entry: ConsumerEntry) -> Consumer:
    hsa_id = normalise_hsa_id(entry.hsa_id)
    if not is_valid_hsa_id(hsa_id):
        raise ConfigError(f"{entry.label}: {entry.hsa_id!r} is not an HSA-id (SE + 10-12 digits + - + suffix)")
    contracts = None
    if entry.contracts is not None:
        unknown = [c for c in entry.contracts if c not in INTERACTIONS]
        if unknown:
            raise ConfigError(f"{entry.label}: contracts names {unknown[0]!r}, which is not a crm:scheduling contract")
        contracts = frozenset(entry.contracts)
    units = None
    if entry.units is not None:
        bad = [u for u in entry.units if not is_valid_hsa_id(normalise_hsa_id(u))]
        if bad:
            raise ConfigError(f"{entry.label}: units names {bad[0]!r}, which is not an HSA-id")
        units = frozenset(normalise_hsa_id(u) for u in entry.units)
    return Consumer(hsa_id, contracts, units)
