"""The two EI operations: SOAP bytes in, SOAP bytes out, on producer's engine (parse, validate, decode, write).

Every problem becomes an EI fault (a producer.soap.SoapFault whose text starts with the EI code),
so app.py only has to turn SoapFault into HTTP 500 with producer.soap.fault_envelope.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from lxml import etree

from engagement_index.stub import faults
from engagement_index.stub.config import StubSettings
from engagement_index.stub.contract import EiContract
from engagement_index.stub.rules import UpdateRules
from engagement_index.stub.store import Store, Transaction
from producer.codec import ResponseWriter, decode
from producer.contract import Interaction
from producer.soap import Envelope, SoapFault, describe_schema_errors, envelope, parse_envelope
from producer.wire_time import format_ts

# A compiled schema keeps its error log on itself, so validate-then-describe must not interleave.
_VALIDATION_LOCK = threading.Lock()


class EngagementIndex:
    def __init__(self, settings: StubSettings, contract: EiContract, store: Store) -> None:
        self.settings = settings
        self.contract = contract
        self.store = store
        self.rules = UpdateRules(
            owner=settings.hsa_id,
            accepted_logical_addresses=settings.accepted_logical_addresses,
            reserved_hsa_ids=settings.reserved_hsa_ids,
        )
        self.writers = {
            name: ResponseWriter(i.response_qname, i.response_plan) for name, i in contract.interactions.items()
        }

    def update(self, body: bytes, call: int) -> bytes:
        interaction = self.contract.interactions["Update"]
        parsed = _parse(interaction, body)
        self.rules.check_routing(parsed.logical_address)
        transaction_tag = interaction.request_plan.fields[0].qname
        self.rules.check_count(sum(1 for child in parsed.body_root if child.tag == transaction_tag))
        _validate(interaction, parsed.body_root)
        request = decode(parsed.body_root, interaction.request_plan, strip=False)  # EI004 judges white space
        transactions = [
            Transaction(delete=t["deleteFlag"], engagement=t["engagement"]) for t in request["engagementTransaction"]
        ]
        self.rules.check_engagements([t.engagement for t in transactions])
        self.store.apply(call, transactions, format_ts(datetime.now(UTC)))
        return envelope(self.writers["Update"].write({"ResultCode": "OK"}))

    def find_content(self, body: bytes) -> bytes:
        # The real FindContent does not check the LogicalAddress header; neither does the stub.
        interaction = self.contract.interactions["FindContent"]
        parsed = _parse(interaction, body)
        _validate(interaction, parsed.body_root)
        criteria = decode(parsed.body_root, interaction.request_plan)
        return envelope(self.writers["FindContent"].write({"engagement": self.store.find(criteria)}))


def _parse(interaction: Interaction, body: bytes) -> Envelope:
    try:
        parsed = parse_envelope(body)
    except SoapFault as fault:
        raise faults.not_schema_valid(fault.message) from None
    if parsed.body_root.tag != interaction.request_qname:
        raise faults.not_schema_valid(
            f"The {interaction.name} endpoint expects {interaction.request_qname} in the Body, "
            f"got {etree.QName(parsed.body_root).text}"
        )
    return parsed


def _validate(interaction: Interaction, element: etree._Element) -> None:
    with _VALIDATION_LOCK:
        if interaction.validator.validate(element):
            return
        problem = describe_schema_errors(interaction.validator.error_log)
    raise faults.not_schema_valid(problem)
