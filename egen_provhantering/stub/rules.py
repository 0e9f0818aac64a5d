"""How EP reads a request and what it refuses, as far as seed 000 says, in a WCF service's manner.

Reading: EP is a WCF .svc. Its DataContractSerializer reads the members in order and skips what it
does not expect there, so an unknown element, and a member out of order or sent twice, is silently
not seen; a member not seen (or xsi:nil) is null, and the service then reports it missing. A value
that cannot be read as its type (NotifyResident "yes") fails the whole message: a SOAP fault.

Refusals are a ValidationErrorList, one ValidationError per problem, all of them at once: Container
is the request element, Element the member, Text in Swedish. The seed gives no texts of the real
service; these say what it checks: the resident must be in the population register (folkbokförd),
the UnitOfferID must name a unit's offer, the HSA-ids must be HSA-ids, and every member must be
given (a single blank " " is allowed as the professional's first and last name).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lxml import etree

from egen_provhantering.contract import OPERATIONS, REQUEST_FIELDS, Operation, soap_action
from egen_provhantering.messages import XSI_NIL, ValidationError
from producer.soap.envelope import Envelope, SoapFault
from producer.sweden.identifiers import check_subject_of_care_id, is_reserve_number, is_valid_hsa_id

NAMES = tuple(name for name, _ in REQUEST_FIELDS)
HSA_ID_MEMBERS = ("AccessUnitID", "HCProfessionalID")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}

MISSING = "Obligatoriskt värde saknas."
NOT_HSA_ID = "Värdet är inte ett giltigt HSA-id."
NOT_PERSONNUMMER = "Värdet är inte ett giltigt personnummer eller samordningsnummer (12 siffror)."
NOT_FOLKBOKFORD = "Invånaren finns inte i folkbokföringsregistret."
NOT_A_NUMBER = "Värdet måste vara ett heltal."
UNKNOWN_OFFER = "Det finns inget erbjudande med UnitOfferID {value}."


@dataclass(frozen=True)
class Request:
    operation: Operation
    values: Mapping[str, str | None]  # by member name; None: not seen (missing, nil, unknown place)

    def offer(self) -> dict[str, str | bool | None]:
        """The members by GivenOffer's field names (NotifyResident as a bool), for the store."""
        out: dict[str, str | bool | None] = {attribute: self.values.get(name) for name, attribute in REQUEST_FIELDS}
        notify = self.values.get("NotifyResident")
        out["notify_resident"] = None if notify is None else _BOOLEANS[notify.strip()]
        return out


def contract_filter_mismatch(action: str) -> SoapFault:
    return SoapFault(
        "Client",
        f"The message with Action '{action}' cannot be processed at the receiver, due to a ContractFilter mismatch"
        " at the EndpointDispatcher. This may be because of either a contract mismatch (mismatched Actions between"
        " sender and receiver) or a binding/security mismatch between the sender and the receiver.",
    )


def read_request(parsed: Envelope, soap_action_header: str | None, namespace: str) -> Request:
    """The operation (by SOAPAction when sent, else by the body's element) and its members as WCF sees them."""
    root = parsed.body_root
    action = (soap_action_header or "").strip().strip('"')
    if action:
        by_action = {soap_action(namespace, op): op for op in OPERATIONS.values()}
        operation = by_action.get(action)
        if operation is None:
            raise contract_filter_mismatch(action)
    else:
        operation = next((op for op in OPERATIONS.values() if root.tag == f"{{{namespace}}}{op.request}"), None)
        if operation is None:
            raise contract_filter_mismatch("")
    if root.tag != f"{{{namespace}}}{operation.request}":
        found = etree.QName(root)
        raise SoapFault(
            "Client",
            f"Error in deserializing body of request message for operation '{operation.name}'. OperationFormatter"
            f" encountered an invalid Message body. Expected to find node type 'Element' with name"
            f" '{operation.request}' and namespace '{namespace}'. Found node type 'Element' with name"
            f" '{found.localname}' and namespace '{found.namespace or ''}'",
        )
    values: dict[str, str | None] = dict.fromkeys(NAMES)
    position = 0
    for child in root:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child)
        if name.namespace != namespace or name.localname not in NAMES:
            continue
        index = NAMES.index(name.localname)
        if index < position:
            continue  # out of order, or a second time: the serializer has passed that member
        position = index + 1
        if child.get(XSI_NIL) in ("true", "1"):
            continue
        values[name.localname] = "".join(child.itertext())
    notify = values["NotifyResident"]
    if notify is not None and notify.strip() not in _BOOLEANS:
        raise SoapFault(
            "Client",
            "The formatter threw an exception while trying to deserialize the message: There was an error while"
            f" trying to deserialize parameter {namespace}:{operation.request}. The value of NotifyResident cannot"
            " be parsed as the type 'Boolean'.",
        )
    return Request(operation, values)


@dataclass(frozen=True)
class Register:
    """Who and what EP knows: None means every valid one."""

    residents: frozenset[str] | None
    unit_offer_ids: frozenset[str] | None


def refusals(request: Request, register: Register) -> list[ValidationError]:
    """Every ValidationError of the request, in member order (empty: it may be carried out)."""
    container = request.operation.request
    errors: list[ValidationError] = []

    def refuse(element: str, text: str) -> None:
        errors.append(ValidationError(container=container, element=element, text=text))

    for name in NAMES:
        value = request.values.get(name)
        if value is None or value == "":
            refuse(name, MISSING)
        elif name in HSA_ID_MEMBERS and not is_valid_hsa_id(value):
            refuse(name, NOT_HSA_ID)
        elif name == "PersonalNumber":
            if is_reserve_number(value) or check_subject_of_care_id(value) is not None:
                refuse(name, NOT_PERSONNUMMER)
            elif register.residents is not None and value not in register.residents:
                refuse(name, NOT_FOLKBOKFORD)
        elif name == "UnitOfferID":
            if not (value.isascii() and value.isdigit()):
                refuse(name, NOT_A_NUMBER)
            elif register.unit_offer_ids is not None and value not in register.unit_offer_ids:
                refuse(name, UNKNOWN_OFFER.format(value=value))
    return errors
