"""SOAP 1.1 envelopes: a hardened parse of what arrives, and the faults and envelopes we send.

Faults follow the domain brief A.8: HTTP 500, a SOAP 1.1 envelope (VP passes only those through
unchanged), a faultstring that names the problem, never patient data or a stack trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from producer.soap.codec import escape_text
from producer.soap.hardened_xml import hardened_parser
from producer.soap.scheduling import ACTOR, HEADERS_NS, LOGICAL_ADDRESS
from producer.sweden.identifiers import withhold_personnummer_in_text

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
ENVELOPE = f"{{{SOAP_ENV}}}Envelope"
HEADER = f"{{{SOAP_ENV}}}Header"
BODY = f"{{{SOAP_ENV}}}Body"
CONTENT_TYPE = "text/xml; charset=utf-8"

_PARSER = hardened_parser(remove_comments=True, remove_pis=True, collect_ids=False)


class SoapFault(Exception):
    """A fault to send back: code is "Client" (the caller's request is wrong) or "Server"."""

    def __init__(self, code: str, message: str, refused: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.refused = refused  # why the caller was refused (a metrics label), for authorization faults

    @property
    def outcome(self) -> str:
        return "refused" if self.refused else f"{self.code.lower()}_fault"


def client_fault(message: str) -> SoapFault:
    return SoapFault("Client", withhold_personnummer_in_text(message))


def server_fault(message: str) -> SoapFault:
    return SoapFault("Server", withhold_personnummer_in_text(message))


def refusal_fault(message: str, reason: str) -> SoapFault:
    """The caller may not call: a soap:Client fault, logged and counted as a refusal."""
    return SoapFault("Client", message, refused=reason)


@dataclass(frozen=True)
class Envelope:
    body_root: etree._Element
    logical_address: str | None
    actor_id: str | None
    actor_type: str | None
    actor_element: etree._Element | None
    # a LogicalAddress header in another namespace (a hand-written envelope's slip): its namespace, or ""
    misplaced_logical_address: str | None = None


def parse_envelope(data: bytes) -> Envelope:
    """Parse with no entity expansion, no DTD and no network; reject anything that is not SOAP 1.1."""
    if not data.strip():
        raise client_fault("The request body is empty; expected a SOAP 1.1 envelope")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        if b"<!DOCTYPE" in data:  # e.g. libxml2's guard against entity expansion stopped the parse
            raise client_fault("Document type declarations (DTDs) are not allowed in SOAP messages") from None
        raise client_fault(f"The request is not well-formed XML{_syntax_error(exc)}") from None
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
    logical_address = actor_id = actor_type = misplaced = None
    actor_element = None
    if header is not None:
        for child in header:
            if child.tag == LOGICAL_ADDRESS:
                logical_address = (child.text or "").strip()
            elif isinstance(child.tag, str) and etree.QName(child).localname == "LogicalAddress":
                misplaced = etree.QName(child).namespace or ""
            elif child.tag == ACTOR:
                actor_element = child
                actor_id = (child.findtext(f"{{{HEADERS_NS}}}actorId") or "").strip() or None
                actor_type = (child.findtext(f"{{{HEADERS_NS}}}actorType") or "").strip() or None
    return Envelope(body_children[0], logical_address, actor_id, actor_type, actor_element, misplaced)


_PROBLEMS = {
    "SCHEMAV_CVC_PATTERN_VALID": "the value does not have the format the contract requires",
    "SCHEMAV_CVC_DATATYPE_VALID_1_2_1": "the value is not of the type the contract requires",
    "SCHEMAV_CVC_ENUMERATION_VALID": "the value is not one of those the contract allows",
    "SCHEMAV_CVC_LENGTH_VALID": "the value has a length the contract does not allow",
    "SCHEMAV_CVC_ELT_1": "this element is not part of the contract",
    "SCHEMAV_CVC_COMPLEX_TYPE_2_3": "it holds text where the contract allows only elements (stray characters"
    " between the tags?)",
}
_EXPECTED = re.compile(r"Expected is (?:one of )?\((.*)\)")
_QNAME = re.compile(r"^\s*(?:\{([^}]*)\})?(.+?)\s*$")
_OFFENDING = re.compile(r"^Element '(?:\{([^}]*)\})?([^'{}]+)'")
RIVTA_NAMESPACES = "urn:riv:"  # every RIV-TA contract's namespaces start so: safe to name in a fault


def wrong_namespace(local: str, sent: str | None, expected: str) -> str:
    """`local` is in the wrong namespace, said so that a consumer can fix a hand-written envelope.

    A RIV-TA namespace the request used is named (the usual slip is :1 for :1.1, or the core
    namespace for the responder's); any other is not, as it came from the request."""
    if not sent:
        where = "has no namespace"
    elif sent.startswith(RIVTA_NAMESPACES) and len(sent) <= 100:
        where = f"is in namespace {sent}"
    else:
        where = "is in a namespace the contract does not use"
    return f"{local} {where}, but the contract expects it in namespace {expected}"


def describe_schema_errors(log: etree._ListErrorLog, subject: str = "The request") -> str:
    """Where the request first breaks the schema, and how, in our own words.

    Nothing is copied from libxml2's message except element names the schema defines: the values
    it quotes could be personnummer, and quoting them safely is not possible (they may hold quotes).
    An element whose local name the schema expects here, but in another namespace (a hand-written
    envelope's usual slip), is named with the namespace expected.
    """
    error = log[0] if len(log) else None
    if error is None:
        return f"{subject} does not follow the contract schema"
    where = "/".join(step.split(":")[-1] for step in (error.path or "").split("/") if step)
    if error.type_name == "SCHEMAV_ELEMENT_CONTENT":
        expected = _EXPECTED.search(error.message)
        problem = "this element is not expected here" if "not expected" in error.message else "an element is missing"
        if expected:
            wanted = [match.groups() for name in expected.group(1).split(",") if (match := _QNAME.match(name))]
            offending = _OFFENDING.match(error.message) if "not expected" in error.message else None
            if offending:
                sent_namespace, local = offending.groups()
                elsewhere = [ns for ns, name in wanted if name == local and ns != sent_namespace]
                if elsewhere and elsewhere[0]:
                    problem = wrong_namespace(local, sent_namespace, elsewhere[0])
            names = ", ".join(name for _ns, name in wanted)
            problem += f" (expected: {names})"
    else:
        problem = _PROBLEMS.get(error.type_name, "it does not match the contract")
    return f"{subject} does not follow the contract schema at {where or 'its root element'}: {problem}"


_SYNTAX_PROBLEMS = {
    "ERR_INVALID_ENCODING": "bytes that are not valid in its character encoding (UTF-8 unless its XML declaration "
    "names another)",
    "ERR_UNSUPPORTED_ENCODING": "an encoding in its XML declaration that is not supported; send UTF-8",
    "ERR_ENCODING_NAME": "an invalid encoding name in its XML declaration; send UTF-8",
    "ERR_XMLDECL_NOT_FINISHED": "an XML declaration that is not finished",
    "ERR_RESERVED_XML_NAME": "an XML declaration that is not at the very start",
    "ERR_UNKNOWN_VERSION": "an XML version other than 1.0",
    "ERR_INVALID_CHAR": "a character XML does not allow (e.g. NUL or another control character)",
    "ERR_DOCUMENT_EMPTY": "no XML content (only bytes that cannot start a document)",
    "ERR_DOCUMENT_END": "content after the root element",
    "ERR_TAG_NAME_MISMATCH": "an end tag that does not match its start tag",
    "ERR_TAG_NOT_FINISHED": "an element that is never closed (is the request cut off?)",
    "ERR_GT_REQUIRED": "a start tag that is not closed with '>'",
    "ERR_LT_REQUIRED": "a tag that does not start with '<'",
    "ERR_NAME_REQUIRED": "a '<' or '&' that does not start a name (escape it as &lt; or &amp;)",
    "ERR_ATTRIBUTE_NOT_STARTED": "an attribute value that is not quoted",
    "ERR_ATTRIBUTE_NOT_FINISHED": "an attribute value that is never closed (is the request cut off?)",
    "ERR_ATTRIBUTE_WITHOUT_VALUE": "an attribute without a value",
    "ERR_ATTRIBUTE_REDEFINED": "an attribute given twice on one element",
    "ERR_LT_IN_ATTRIBUTE": "an unescaped '<' in an attribute value",
    "ERR_UNDECLARED_ENTITY": "a reference to an entity that is not defined",
    "ERR_ENTITYREF_SEMICOL_MISSING": "an entity or character reference without its ';'",
    "ERR_CDATA_NOT_FINISHED": "a CDATA section that is never closed (is the request cut off?)",
    "ERR_COMMENT_NOT_FINISHED": "a comment that is never closed (is the request cut off?)",
    "ERR_PI_NOT_FINISHED": "a processing instruction that is never closed (is the request cut off?)",
    "ERR_HYPHEN_IN_COMMENT": "'--' inside a comment",
    "ERR_MISPLACED_CDATA_END": "']]>' in text",
    "ERR_RESOURCE_LIMIT": "elements nested deeper than the parser's depth limit, or another parser limit exceeded",
    "NS_ERR_UNDEFINED_NAMESPACE": "a namespace prefix that is not declared",
    "NS_ERR_XML_NAMESPACE": "an invalid namespace declaration",
    "NS_ERR_QNAME": "an element or attribute name that is not a valid qualified name",
}
_ERROR_NAMES = {code: name for name, code in vars(etree.ErrorTypes).items() if name.isupper()}


def _syntax_error(exc: etree.XMLSyntaxError) -> str:
    """Where and how the request breaks XML, in our own words.

    libxml2's message is not passed on: it quotes element names, comment and CDATA text and the
    declared encoding from the request, which can carry patient data, and lxml adds Python's
    exception decoration ("(<string>, line 2)"). The libxml2 error name stays, for the developer.
    """
    name = _ERROR_NAMES.get(exc.code, "")
    problem = _SYNTAX_PROBLEMS.get(name, f"a syntax error (libxml2 {name})" if name else "a syntax error")
    line, column = exc.position if exc.position else (0, 0)
    where = f" at line {line}, column {column}" if line > 0 else ""
    return f"{where}: it has {problem}"


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
