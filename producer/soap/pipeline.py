"""The one SOAP request pipeline: parse the envelope (hardened), check that the body's root element
belongs to the endpoint, validate the Actor header and the body against the contract's schemas,
and decode the body. The producer's eleven endpoints and the EI stub's two go through it.

The steps are also methods of their own, so that a caller can check what it must between the root
check and the validation, in its own order: the producer its LogicalAddress and the consumer's
rights, the EI stub its routing and the number of transactions (the real EI's order). A subclass
says how a refusal is worded and answered (the EI stub: EI001 faults).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from lxml import etree

from producer.soap.codec import Decoded, decode
from producer.soap.contract import Interaction
from producer.soap.envelope import (
    Envelope,
    SoapFault,
    client_fault,
    describe_schema_errors,
    parse_envelope,
    wrong_namespace,
)


class Pipeline:
    """parse → check root → validate → decode for the interactions of one contract."""

    def __init__(self, interactions: Mapping[str, Interaction], actor_validator: etree.XMLSchema | None = None) -> None:
        self.interactions = interactions
        self.by_request_qname = {i.request_qname: i for i in interactions.values()}
        self.actor_validator = actor_validator  # None: the contract has no Actor header to validate
        self._schema_errors = threading.Lock()

    # -- how refusals are answered (a subclass may say otherwise) ---------------------------------

    def problem(self, message: str) -> SoapFault:
        """The fault for a request this pipeline refuses: soap:Client, never quoting a personnummer."""
        return client_fault(message)

    def unparsable(self, fault: SoapFault) -> SoapFault:
        """The fault for a body that is no SOAP 1.1 envelope: parse_envelope's own."""
        return fault

    def wrong_root(self, interaction: Interaction, tag: str) -> str:
        other = self.by_request_qname.get(tag)
        if other is not None:
            return f"The request element belongs to {other.name}, but was sent to the {interaction.name} endpoint"
        expected = etree.QName(interaction.request_qname)
        sent = etree.QName(tag)
        if sent.localname == expected.localname:
            return f"The request element {wrong_namespace(sent.localname, sent.namespace, expected.namespace or '')}"
        return f"The {interaction.name} endpoint expects {interaction.request_qname} in the Body"

    # -- the steps --------------------------------------------------------------------------------

    def envelope(self, interaction: Interaction, body: bytes) -> Envelope:
        """Parse with no DTD, entity or network, and check that the body is this endpoint's request."""
        try:
            parsed = parse_envelope(body)
        except SoapFault as fault:
            raise self.unparsable(fault) from None
        if parsed.body_root.tag != interaction.request_qname:
            raise self.problem(self.wrong_root(interaction, parsed.body_root.tag))
        return parsed

    def validate(self, interaction: Interaction, parsed: Envelope) -> None:
        """The Actor header (when the contract has one and it was sent), then the body."""
        if self.actor_validator is not None and parsed.actor_element is not None:
            self._check(self.actor_validator, parsed.actor_element, "The Actor header")
        self._check(interaction.validator, parsed.body_root, "The request")

    def read(
        self,
        interaction: Interaction,
        body: bytes,
        check: Callable[[Envelope], None] | None = None,
        strip: bool = True,
    ) -> tuple[Envelope, Decoded]:
        """All the steps; `check` runs between the root check and the validation. strip=False keeps
        text as sent (the EI stub judges white space itself)."""
        parsed = self.envelope(interaction, body)
        if check is not None:
            check(parsed)
        self.validate(interaction, parsed)
        return parsed, decode(parsed.body_root, interaction.request_plan, strip)

    def _check(self, validator: etree.XMLSchema, element: etree._Element, subject: str) -> None:
        """A compiled schema keeps one error log for all threads, so a failing validation is repeated
        under a lock to read its own errors (valid requests, the common case, never take the lock)."""
        if validator.validate(element):
            return
        with self._schema_errors:
            validator.validate(element)
            problem = describe_schema_errors(validator.error_log, subject)
        raise self.problem(problem)
