"""From outbox rows to EI Update transactions.

A booking's pending rows are sent together, as their net effect: every EI key the booking had or
passed through is deleted, except the key of its final post, which is created or updated. So a
rebooking that changes the id (per-slot policy), the unit, or the categorization (Invitation ->
Booking) becomes delete(old key) + create(new key) in one call; an unchanged key is a plain upsert
of mostRecentContent; and a key never appears twice in a call (EI002). Deleting a key EI never had
is harmless there, and it is what makes a resend after a crash correct: a post sent by a batch that
never got marked published is still deleted when a later change moves the booking on.
Residents with a reserve number (letters) are never published.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from engagement_index.config import EiSettings
from engagement_index.fields import FIELD_LIMITS, MANDATORY_FIELDS
from producer.calendar.outbox import Post
from producer.sweden.identifiers import is_reserve_number

SERVICE_DOMAIN = "riv:crm:scheduling"
Key = tuple[str, ...]
_KEY = itemgetter(*MANDATORY_FIELDS)  # the key's values, in order, as one tuple


@dataclass(frozen=True)
class Transaction:
    delete: bool
    engagement: dict[str, Any]
    key: Key = field(init=False, repr=False, compare=False)  # asked for several times per transaction

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", _KEY(self.engagement))

    def as_zeep(self) -> dict[str, Any]:
        return {"deleteFlag": self.delete, "engagement": self.engagement}


def engagement(post: Post, settings: EiSettings, with_content: bool) -> dict[str, Any]:
    """The EngagementType fields, in schema order; never owner, creationTime or updateTime."""
    categorization = "NA" if settings.categorization == "NA" else post["kind"].capitalize()
    fields: dict[str, Any] = {
        "registeredResidentIdentification": post["subject_of_care"],
        "serviceDomain": SERVICE_DOMAIN,
        "categorization": categorization,
        "logicalAddress": post["unit"].upper(),
        "businessObjectInstanceIdentifier": post["booking_id"],
        "clinicalProcessInterestId": "NA",
    }
    if with_content:
        fields["mostRecentContent"] = post["most_recent_content"]
    fields["sourceSystem"] = settings.source_system
    fields["dataController"] = settings.data_controller
    return fields


def storable(engagement: dict[str, Any]) -> bool:
    """Could EI ever have stored this key? (No field too long, none with surrounding white space.)

    A post breaking EI's field limits (EI004) was never stored, so there is nothing to delete."""
    return all(
        (value := engagement.get(name)) is not None and len(value) <= FIELD_LIMITS[name] and value == value.strip()
        for name in MANDATORY_FIELDS
    )


def net_transactions(changes: Sequence[tuple[Post | None, Post | None]], settings: EiSettings) -> list[Transaction]:
    """One booking's pending (before, after) changes, oldest first, as the transactions to send."""
    final = changes[-1][1]
    saved = Transaction(False, engagement(final, settings, True)) if final is not None else None
    deletes: dict[Key, Transaction] = {}
    for before, after in changes:
        for post in (before, after):
            if post is None or post is final or is_reserve_number(post["subject_of_care"]):
                continue  # the final post is saved, not deleted (its own key is never deleted)
            tx = Transaction(True, engagement(post, settings, with_content=False))
            if (saved is None or tx.key != saved.key) and storable(tx.engagement):
                deletes.setdefault(tx.key, tx)
    result = list(deletes.values())
    if saved is not None and not is_reserve_number(saved.engagement["registeredResidentIdentification"]):
        result.append(saved)
    return result


def keys(transactions: Iterable[Transaction]) -> set[Key]:
    return {t.key for t in transactions}
