"""The two EI operations: SOAP bytes in, SOAP bytes out, through the producer's SOAP request pipeline
(producer.soap.pipeline: parse, check the root, validate, decode) and its response writer.

Every problem becomes an EI fault (a producer.soap.envelope.SoapFault whose text starts with the EI
code), so app.py only has to turn SoapFault into HTTP 500 with producer.soap.envelope.fault_envelope.
"""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from engagement_index.stub import faults
from engagement_index.stub.config import StubSettings
from engagement_index.stub.contract import EiContract
from engagement_index.stub.rules import UpdateRules
from engagement_index.stub.store import Store, Transaction
from producer.soap.codec import ResponseWriter
from producer.soap.contract import Interaction
from producer.soap.envelope import Envelope, SoapFault, envelope
from producer.soap.pipeline import Pipeline
from producer.sweden.wall_time import format_ts


class EiPipeline(Pipeline):
    """The producer's pipeline, refusing as EI does: every problem is EI001 (not schema-valid)."""

    def problem(self, message: str) -> SoapFault:
        return faults.not_schema_valid(message)

    def unparsable(self, fault: SoapFault) -> SoapFault:
        return faults.not_schema_valid(fault.message)

    def wrong_root(self, interaction: Interaction, tag: str) -> str:
        expected = f"The {interaction.name} endpoint expects {interaction.request_qname} in the Body"
        return f"{expected}, got {etree.QName(tag).text}"


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
        self.pipeline = EiPipeline(contract.interactions)  # EI has no Actor header to validate

    def update(self, body: bytes, call: int) -> bytes:
        interaction = self.contract.interactions["Update"]
        transaction_tag = interaction.request_plan.fields[0].qname

        def routed(parsed: Envelope) -> None:  # the real EI's order: routing and count before the schema
            self.rules.check_routing(parsed.logical_address)
            self.rules.check_count(sum(1 for child in parsed.body_root if child.tag == transaction_tag))

        _, request = self.pipeline.read(interaction, body, routed, strip=False)  # EI004 judges white space
        transactions = [
            Transaction(delete=t["deleteFlag"], engagement=t["engagement"]) for t in request["engagementTransaction"]
        ]
        self.rules.check_engagements([t.engagement for t in transactions])
        self.store.apply(call, transactions, format_ts(datetime.now(UTC)))
        return envelope(self.writers["Update"].write({"ResultCode": "OK"}))

    def find_content(self, body: bytes) -> bytes:
        # The real FindContent does not check the LogicalAddress header; neither does the stub.
        _, criteria = self.pipeline.read(self.contract.interactions["FindContent"], body)
        return envelope(self.writers["FindContent"].write({"engagement": self.store.find(criteria)}))
