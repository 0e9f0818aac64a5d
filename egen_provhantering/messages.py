"""The OfferInteraction messages as Python values, and the client's side of the wire: the request it
writes and the answer it reads (hardened parse, then our XSD, then the values).

Element names, order and cardinality: contracts/offerinteraction_1.0 (from seed 000's tables).
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from egen_provhantering.contract import REQUEST_FIELDS, Operation, schema
from producer.soap.codec import escape_text
from producer.soap.envelope import SOAP12_ENV, SOAP_ENV
from producer.soap.hardened_xml import hardened_parser

XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
_PARSER = hardened_parser(remove_comments=True, remove_pis=True, collect_ids=False)


@dataclass(frozen=True)
class GivenOffer:
    """The seven request elements (both operations send the same seven)."""

    access_unit_id: str  # AccessUnitID: the care unit's (vårdenhet) HSA-id
    hc_professional_id: str  # HCProfessionalID: HSA-id of the person or "function" giving the offer
    hc_first_name: str  # HCProfessionalFirstName: shown to the resident; " " is allowed
    hc_last_name: str  # HCProfessionalLastName: shown to the resident; " " is allowed
    notify_resident: bool  # NotifyResident: a message in the resident's 1177 inbox
    personal_number: str  # PersonalNumber: personnummer or samordningsnummer, 12 digits
    unit_offer_id: str  # UnitOfferID: the unit's offer, the last number of its EP Admin URL


@dataclass(frozen=True)
class ValidationError:
    container: str
    element: str
    text: str


@dataclass(frozen=True)
class TechnicalError:
    header: str
    message: str


@dataclass(frozen=True)
class Result:
    """An answer as EP sent it: ResultOfCall and the operation's flag."""

    has_error: bool
    validation_errors: tuple[ValidationError, ...]
    technical_errors: tuple[TechnicalError, ...]
    flag: bool  # OfferAlreadyGivenWithinTimeLimitTryLater (Add) or GivenOfferFoundAndDeleted (Undo)


class Unparsable(Exception):
    """The answer is not a SOAP 1.1 envelope holding a valid answer of the operation; says why, no values."""


class FaultAnswer(Exception):
    """EP answered a SOAP fault (WCF does for a message it cannot read)."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


def _value(offer: GivenOffer, attribute: str) -> str:
    value = getattr(offer, attribute)
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape_text(str(value))


def request_envelope(operation: Operation, offer: GivenOffer, namespace: str) -> bytes:
    """The SOAP 1.1 request: the operation's request element holding the seven elements in wire order."""
    fields = "".join(f"<o:{name}>{_value(offer, attribute)}</o:{name}>" for name, attribute in REQUEST_FIELDS)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body>'
        f'<o:{operation.request} xmlns:o="{escape_text(namespace)}">{fields}</o:{operation.request}>'
        "</s:Body></s:Envelope>"
    ).encode()


def read_answer(operation: Operation, data: bytes, namespace: str) -> Result:
    """The answer's values, or Unparsable/FaultAnswer. Parsed with no DTD, entity or network."""
    if not data.strip():
        raise Unparsable("the answer is empty")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise Unparsable(f"the answer is not well-formed XML (line {exc.position[0]})") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise Unparsable("the answer has a document type declaration")
    if root.tag == f"{{{SOAP12_ENV}}}Envelope":
        raise Unparsable("the answer is a SOAP 1.2 envelope; this client speaks SOAP 1.1")
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise Unparsable("the answer is not a SOAP 1.1 envelope")
    body = root.find(f"{{{SOAP_ENV}}}Body")
    children = [] if body is None else [c for c in body if isinstance(c.tag, str)]
    if len(children) != 1:
        raise Unparsable("the answer's SOAP Body does not hold exactly one element")
    element = children[0]
    if element.tag == f"{{{SOAP_ENV}}}Fault":
        code = (element.findtext("faultcode") or "").strip() or "fault"
        raise FaultAnswer(code, " ".join((element.findtext("faultstring") or "").split()) or "(no faultstring)")
    expected = f"{{{namespace}}}{operation.response}"
    if element.tag != expected:
        sent = etree.QName(element)
        where = "" if sent.localname != operation.response else f" in namespace {sent.namespace or '(none)'}"
        raise Unparsable(
            f"the answer holds {sent.localname}{where}, expected {operation.response} in namespace {namespace}"
            " (is TIDBOK_EP_NAMESPACE the service's?)"
        )
    problem = schema(namespace).problem(element, "The answer")
    if problem is not None:
        raise Unparsable(problem)
    return _result(element, operation, namespace)


def _result(element: etree._Element, operation: Operation, namespace: str) -> Result:
    def q(name: str) -> str:
        return f"{{{namespace}}}{name}"

    result = element.find(q("ResultOfCall"))
    validation = result.find(q("ValidationErrorList"))
    technical = result.find(q("TechnicalErrorList"))
    return Result(
        has_error=_bool(result.findtext(q("HasError"))),
        validation_errors=tuple(
            ValidationError(
                container=e.findtext(q("Container")) or "",
                element=e.findtext(q("Element")) or "",
                text=e.findtext(q("Text")) or "",
            )
            for e in _items(validation, q("ValidationError"))
        ),
        technical_errors=tuple(
            TechnicalError(header=e.findtext(q("Header")) or "", message=e.findtext(q("Message")) or "")
            for e in _items(technical, q("TechnicalError"))
        ),
        flag=_bool(element.findtext(q(operation.flag))),
    )


def _items(listed: etree._Element | None, tag: str) -> list[etree._Element]:
    """A list's items; an absent or xsi:nil list (WCF writes empty members so) has none."""
    if listed is None or listed.get(XSI_NIL) in ("true", "1"):
        return []
    return listed.findall(tag)


def _bool(text: str | None) -> bool:
    return (text or "").strip() in ("true", "1")  # xs:boolean's lexical forms; the schema allowed nothing else
