"""SOAP 1.1 envelopes: a hardened parse of what arrives, and the faults and envelopes we send.

Faults follow the domain brief A.8: HTTP 500, a SOAP 1.1 envelope (VP passes only those through
unchanged), a faultstring that names the problem, never patient data or a stack trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from producer.codec import escape_text
from producer.contract import ACTOR, HEADERS_NS, LOGICAL_ADDRESS
from producer.hardened_xml import hardened_parser

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
ENVELOPE = f"{{{SOAP_ENV}}}Envelope"
HEADER = f"{{{SOAP_ENV}}}Header"
BODY = f"{{{SOAP_ENV}}}Body"
CONTENT_TYPE = "text/xml; charset=utf-8"

_PARSER = hardened_parser(remove_comments=True, remove_pis=True, collect_ids=False)
_QUOTED_VALUE = re.compile(r"'[^']*'")


class SoapFault(Exception):
    """A fault to send back: code is "Client" (the caller's request is wrong) or "Server"."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def client_fault(message: str) -> SoapFault:
    return SoapFault("Client", message)


def server_fault(message: str) -> SoapFault:
    return SoapFault("Server", message)


@dataclass(frozen=True)
class Envelope:
    body_root: etree._Element
    logical_address: str | None
    actor_id: str | None
    actor_type: str | None
    actor_element: etree._Element | None


def parse_envelope(data: bytes) -> Envelope:
    """Parse with no entity expansion, no DTD and no network; reject anything that is not SOAP 1.1."""
    if not data.strip():
        raise client_fault("The request body is empty; expected a SOAP 1.1 envelope")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        if b"<!DOCTYPE" in data:  # e.g. libxml2's guard against entity expansion stopped the parse
            raise client_fault("Document type declarations (DTDs) are not allowed in SOAP messages") from None
        raise client_fault(f"The request is not well-formed XML: {_first_line(str(exc))}") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise client_fault("Document type declarations (DTDs) are not allowed in SOAP messages")
    if root.tag == f"{{{SOAP12_ENV}}}Envelope":
        raise SoapFault("VersionMismatch", "SOAP 1.2 is not supported; RIVTABP21 uses SOAP 1.1")
    if root.tag != ENVELOPE:
        raise client_fault("The request is not a SOAP 1.1 envelope (expected soap:Envelope as the root)")
    header = body = None
    for child in root:
        if child.tag == HEADER and header is None and body is None:
            header = child
        elif child.tag == BODY and body is None:
            body = child
        else:
            raise client_fault("The SOAP envelope must hold an optional Header and then one Body")
    if body is None:
        raise client_fault("The SOAP envelope has no Body")
    body_children = [c for c in body if isinstance(c.tag, str)]
    if len(body_children) != 1:
        raise client_fault("The SOAP Body must hold exactly one request element")
    logical_address = actor_id = actor_type = None
    actor_element = None
    if header is not None:
        for child in header:
            if child.tag == LOGICAL_ADDRESS:
                logical_address = (child.text or "").strip()
            elif child.tag == ACTOR:
                actor_element = child
                actor_id = (child.findtext(f"{{{HEADERS_NS}}}actorId") or "").strip() or None
                actor_type = (child.findtext(f"{{{HEADERS_NS}}}actorType") or "").strip() or None
    return Envelope(body_children[0], logical_address, actor_id, actor_type, actor_element)


_PROBLEMS = {
    "SCHEMAV_CVC_PATTERN_VALID": "the value does not have the format the contract requires",
    "SCHEMAV_CVC_DATATYPE_VALID_1_2_1": "the value is not of the type the contract requires",
    "SCHEMAV_CVC_ENUMERATION_VALID": "the value is not one of those the contract allows",
    "SCHEMAV_CVC_LENGTH_VALID": "the value has a length the contract does not allow",
    "SCHEMAV_CVC_ELT_1": "this element is not part of the contract",
}
_EXPECTED = re.compile(r"Expected is (?:one of )?\((.*)\)")
_NAMESPACE = re.compile(r"\{[^}]*\}")


def describe_schema_errors(log: etree._ListErrorLog, subject: str = "The request") -> str:
    """Where the request first breaks the schema, and how, in our own words.

    Nothing is copied from libxml2's message except element names the schema defines: the values
    it quotes could be personnummer, and quoting them safely is not possible (they may hold quotes).
    """
    error = log[0] if len(log) else None
    if error is None:
        return f"{subject} does not follow the contract schema"
    where = "/".join(step.split(":")[-1] for step in (error.path or "").split("/") if step)
    if error.type_name == "SCHEMAV_ELEMENT_CONTENT":
        expected = _EXPECTED.search(error.message)
        problem = "this element is not expected here" if "not expected" in error.message else "an element is missing"
        if expected:
            names = ", ".join(_NAMESPACE.sub("", name).strip() for name in expected.group(1).split(","))
            problem += f" (expected: {names})"
    else:
        problem = _PROBLEMS.get(error.type_name, "it does not match the contract")
    return f"{subject} does not follow the contract schema at {where or 'its root element'}: {problem}"


def _first_line(text: str) -> str:
    return _QUOTED_VALUE.sub("(value)", text.splitlines()[0] if text else "")[:200]


def envelope(body_xml: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>{body_xml}</soap:Body></soap:Envelope>'
    ).encode()


def fault_envelope(fault: SoapFault) -> bytes:
    return envelope(
        f"<soap:Fault><faultcode>soap:{fault.code}</faultcode>"
        f"<faultstring>{escape_text(fault.message)}</faultstring></soap:Fault>"
    )
