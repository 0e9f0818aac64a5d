"""The OFFICIAL crm:scheduling 1.1 contracts (../shared/reference-contracts), used as the referee.

Tests judge the producer by the published WSDLs/XSDs, not by our own rendition in contracts/, so a
mistake shared by our schemas and our server cannot hide. The official files are never copied or
modified: the one known defect is patched in memory each time the file is loaded.

The defect: crm_scheduling_1.1.xsd declares SubjectOfCareIdType with the pattern
``^[0-9]{8}[0-9pPtTfF][0-9]{3}$``. XSD regular expressions are implicitly anchored and ``^``/``$`` are
literal characters there, so the published pattern rejects every real personnummer.

Passing the RIVTA headers with zeep 4.3: the official WSDLs bind both headers to the input message
(``<soap:header part="LogicalAddress"/>`` and ``<soap:header part="actor"/>``), so zeep accepts a
dict keyed by the WSDL *part* names, with the element content as values::

    service.MakeBooking(
        healthcare_facility_med="SE2321000016-A100",
        ...,
        _soapheaders={
            "LogicalAddress": "SE2321000016-A100",  # -> <itr:LogicalAddress>SE2321000016-A100</...>
            "actor": {"actorId": "191212121212", "actorType": "subject_of_care"},  # -> <ih:Actor>...
        },
    )

Note the lower-case part name ``actor`` (the element is ``ih:Actor``). Keys whose value is None are
left out of the Header, which is how tests send a request without one of the headers.
:func:`soap_headers` builds this dict; :meth:`OfficialClient.call` and :class:`Caller` use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
import requests
import zeep
import zeep.exceptions
from lxml import etree
from zeep.helpers import serialize_object
from zeep.proxy import ServiceProxy

from producer.soap.scheduling import INTERACTIONS
from support import reference
from support.patching import CorePatchingTransport, PatchedCore, patched_parser

# The official release when found, else our own rendition (support.reference).
OFFICIAL_ROOT = reference.REFEREE / "crm_scheduling_1.1"
CORE_DIR = OFFICIAL_ROOT / "core_components"
CORE_XSD = CORE_DIR / "crm_scheduling_1.1.xsd"

CORE = PatchedCore(CORE_XSD, defective=reference.FOUND)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
REGISTRY_NS = "urn:riv:itintegration:registry:1"
HEADERS_NS = "urn:riv:interoperability:headers:1"
CORE_NS = "urn:riv:crm:scheduling:1"
CORE_EXT_NS = "urn:riv:crm:scheduling:1.1"
ENVELOPE = f"{{{SOAP_ENV}}}Envelope"
HEADER = f"{{{SOAP_ENV}}}Header"
BODY = f"{{{SOAP_ENV}}}Body"
FAULT = f"{{{SOAP_ENV}}}Fault"

DEMO_RESIDENT = "191212121212"
DEMO_ACTOR: tuple[str, str] = (DEMO_RESIDENT, "subject_of_care")
Actor = tuple[str, str] | None


class SchemaViolation(AssertionError):
    """A message is not valid against the official contract.

    An AssertionError so that pytest reports it as a test failure (with the libxml2 messages),
    even when it is raised from inside zeep's response processing.
    """


def responder_namespace(interaction: str) -> str:
    return f"urn:riv:crm:scheduling:{interaction}Responder:1"


def binding_qname(interaction: str) -> str:
    return f"{{urn:riv:crm:scheduling:{interaction}:1:rivtabp21}}{interaction}ResponderBinding"


def interaction_dir(interaction: str) -> Path:
    if interaction not in INTERACTIONS:
        raise ValueError(f"unknown crm:scheduling interaction {interaction!r}")
    return OFFICIAL_ROOT / "interactions" / f"{interaction}Interaction"


def wsdl_path(interaction: str) -> Path:
    return interaction_dir(interaction) / f"{interaction}Interaction_1.1_RIVTABP21.wsdl"


def responder_xsd(interaction: str) -> Path:
    return interaction_dir(interaction) / f"{interaction}Responder_1.1.xsd"


def patched_core() -> bytes:
    return CORE.content


def _schema_from(path: Path, patched: bool) -> etree.XMLSchema:
    parser = patched_parser(CORE) if patched else etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(path), parser))


@cache
def compile_schema(interaction: str, patched: bool = True) -> etree.XMLSchema:
    """The official <Op>Responder_1.1.xsd (request and response elements), compiled by libxml2."""
    return _schema_from(responder_xsd(interaction), patched)


@cache
def header_schemas() -> dict[str, etree.XMLSchema]:
    """Schemas for the two RIVTA SOAP headers, by the header element's Clark name."""
    return {
        f"{{{REGISTRY_NS}}}LogicalAddress": _schema_from(CORE_DIR / "itintegration_registry_1.0.xsd", False),
        f"{{{HEADERS_NS}}}Actor": _schema_from(CORE_DIR / "interoperability_headers_1.0.xsd", False),
    }


def _as_element(xml: etree._Element | bytes | str) -> etree._Element:
    if isinstance(xml, etree._Element):
        return xml
    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    return etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))


def body_child(xml: etree._Element | bytes | str) -> etree._Element:
    """The single element in soap:Body if given an envelope, else the element itself."""
    element = _as_element(xml)
    if element.tag != ENVELOPE:
        return element
    body = element.find(BODY)
    if body is None:
        raise SchemaViolation("SOAP envelope has no soap:Body")
    children = [c for c in body if isinstance(c.tag, str)]
    if len(children) != 1:
        raise SchemaViolation(f"soap:Body must hold exactly one element, found {[c.tag for c in children]}")
    return children[0]


def _assert_valid(schema: etree.XMLSchema, element: etree._Element, what: str) -> None:
    # Validated in place (lxml validates a sub-element as the root), so namespace declarations made
    # on the envelope stay in scope.
    if not schema.validate(element):
        errors = "\n".join(f"  line {e.line}: {e.message}" for e in schema.error_log)
        xml = etree.tostring(element, encoding="unicode")
        raise SchemaViolation(f"{what} is not valid against the official schema:\n{errors}\n{xml[:4000]}")


def _validate(interaction: str, xml: etree._Element | bytes | str, local_name: str) -> etree._Element:
    element = body_child(xml)
    if element.tag == FAULT:
        raise SchemaViolation(f"expected {local_name}, got a SOAP Fault: {etree.tostring(element, encoding='unicode')}")
    expected = f"{{{responder_namespace(interaction)}}}{local_name}"
    if element.tag != expected:
        raise SchemaViolation(f"expected root {expected}, got {element.tag}")
    _assert_valid(compile_schema(interaction), element, local_name)
    return element


def validate_response(interaction: str, xml: etree._Element | bytes | str) -> etree._Element:
    """Assert that a response (envelope or body element) is a valid official <Op>Response; returns it."""
    return _validate(interaction, xml, f"{interaction}Response")


def validate_request(interaction: str, xml: etree._Element | bytes | str) -> etree._Element:
    """Assert that a request is valid; given a whole envelope, its RIVTA headers are checked too."""
    element = _as_element(xml)
    if element.tag == ENVELOPE:
        header = element.find(HEADER)
        for child in header if header is not None else ():
            schema = header_schemas().get(child.tag)
            if schema is not None:
                _assert_valid(schema, child, etree.QName(child).localname)
    return _validate(interaction, element, interaction)


def envelope(
    logical_address: str | None,
    body_xml: str | bytes | etree._Element,
    actor: Actor = DEMO_ACTOR,
    extra_headers: Iterable[str] = (),
) -> bytes:
    """A SOAP 1.1 request envelope as a RIVTABP21 consumer (or the VP) sends it.

    Built as text on purpose so tests can put deliberately broken bodies inside. A None
    logical_address or actor leaves that header out; extra_headers are raw XML fragments.
    """
    if isinstance(body_xml, etree._Element):
        body_xml = etree.tostring(body_xml, encoding="unicode")
    elif isinstance(body_xml, bytes):
        body_xml = body_xml.decode("utf-8")
    headers: list[str] = []
    if logical_address is not None:
        headers.append(f'<itr:LogicalAddress xmlns:itr="{REGISTRY_NS}">{escape(logical_address)}</itr:LogicalAddress>')
    if actor is not None:
        actor_id, actor_type = actor
        headers.append(
            f'<ih:Actor xmlns:ih="{HEADERS_NS}"><ih:actorId>{escape(actor_id)}</ih:actorId>'
            f"<ih:actorType>{escape(actor_type)}</ih:actorType></ih:Actor>"
        )
    headers.extend(extra_headers)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}">'
        f"<soapenv:Header>{''.join(headers)}</soapenv:Header>"
        f"<soapenv:Body>{body_xml}</soapenv:Body>"
        "</soapenv:Envelope>"
    ).encode()


# -- zeep ----------------------------------------------------------------------------------------


def soap_headers(logical_address: str | None, actor: Actor = DEMO_ACTOR) -> dict[str, Any]:
    """The ``_soapheaders`` dict for zeep, keyed by WSDL part name (see the module docstring)."""
    headers: dict[str, Any] = {}
    if logical_address is not None:
        headers["LogicalAddress"] = logical_address
    if actor is not None:
        headers["actor"] = {"actorId": actor[0], "actorType": actor[1]}
    return headers


class PatchingTransport(CorePatchingTransport):
    """zeep reads the official files through load(); the core XSD is patched as it passes by."""

    core = CORE


class ResponseValidator(zeep.Plugin):
    """Validates every non-fault response against the official schema before zeep parses it.

    Raising here (SchemaViolation) fails the calling test at the call site, which is clearer than
    collecting failures for a later check. ``validate(interaction, envelope)`` defaults to the
    crm:scheduling contract's; the engagement index passes its own.
    """

    def __init__(self, interaction: str, validate: Callable[[str, etree._Element], Any] = validate_response) -> None:
        self.interaction = interaction
        self.validate = validate

    def ingress(self, envelope: etree._Element, http_headers: Any, operation: Any) -> tuple[etree._Element, Any]:
        body = envelope.find(BODY)
        first = next((c for c in body if isinstance(c.tag, str)), None) if body is not None else None
        if first is None or first.tag != FAULT:
            self.validate(self.interaction, envelope)
        return envelope, http_headers


def as_data(response: Any) -> Any:
    """zeep objects as plain dicts/lists, for comparisons."""
    return serialize_object(response, dict)


def client_fault(request: Callable[[], Any]) -> zeep.exceptions.Fault:
    """Run a call that must be refused with a soap:Client fault; returns the fault for more checks."""
    with pytest.raises(zeep.exceptions.Fault) as caught:
        request()
    fault = caught.value
    assert (fault.code or "").rsplit(":", 1)[-1] == "Client", (fault.code, fault.message)
    return fault


@dataclass(frozen=True)
class OfficialClient:
    """A zeep client built from one official WSDL, bound to a producer endpoint."""

    interaction: str
    client: zeep.Client
    service: ServiceProxy
    address: str

    def call(self, logical_address: str | None, actor: Actor = DEMO_ACTOR, **body: Any) -> Any:
        """Invoke the interaction; returns zeep's response object (validated) or raises zeep Fault."""
        operation = getattr(self.service, self.interaction)
        return operation(**body, _soapheaders=soap_headers(logical_address, actor))

    def create_message(self, logical_address: str | None, actor: Actor = DEMO_ACTOR, **body: Any) -> etree._Element:
        """The request envelope zeep would send (nothing is sent)."""
        return self.client.create_message(
            self.service, self.interaction, **body, _soapheaders=soap_headers(logical_address, actor)
        )


def zeep_client(
    interaction: str,
    base_url: str,
    timeout: float = 30,
    http_headers: Mapping[str, str] | None = None,
    session: requests.Session | None = None,
) -> OfficialClient:
    """A zeep client from the OFFICIAL WSDL (patched core XSD), validating every response it gets.

    ``http_headers`` go with every request (e.g. the consumer's HSA-id, as the VP sends it);
    ``session`` carries TLS settings (client certificate, trusted CA) for https producers."""
    session = session or requests.Session()
    session.headers.update(http_headers or {})
    client = zeep.Client(
        str(wsdl_path(interaction)),
        transport=PatchingTransport(session=session, operation_timeout=timeout),
        plugins=[ResponseValidator(interaction)],
    )
    address = f"{base_url.rstrip('/')}/{interaction}/1/rivtabp21"
    return OfficialClient(interaction, client, client.create_service(binding_qname(interaction), address), address)


@dataclass
class Caller:
    """``call(op, logical_address, actor=(id, type) | None, **body)`` against one producer."""

    official: Official
    base_url: str

    def __call__(self, op: str, logical_address: str | None, actor: Actor = DEMO_ACTOR, **body: Any) -> Any:
        return self.client(op).call(logical_address, actor, **body)

    def client(self, op: str) -> OfficialClient:
        return self.official.zeep_client(op, self.base_url)


@dataclass
class Official:
    """Session-wide access to the official contracts; zeep clients are cached per endpoint."""

    root: Path = OFFICIAL_ROOT
    _clients: dict[tuple[str, str], OfficialClient] = field(default_factory=dict, repr=False)

    def zeep_client(self, interaction: str, base_url: str) -> OfficialClient:
        key = (interaction, base_url)
        if key not in self._clients:
            self._clients[key] = zeep_client(interaction, base_url)
        return self._clients[key]

    def caller(self, base_url: str) -> Caller:
        return Caller(self, base_url)

    def call(self, base_url: str, op: str, logical_address: str | None, actor: Actor = DEMO_ACTOR, **body: Any) -> Any:
        return self.zeep_client(op, base_url).call(logical_address, actor, **body)

    @staticmethod
    def request_schema(interaction: str) -> etree.XMLSchema:
        """The patched official Responder schema; it declares both the request and response elements."""
        return compile_schema(interaction)

    response_schema = request_schema

    @staticmethod
    def unpatched_schema(interaction: str) -> etree.XMLSchema:
        return compile_schema(interaction, patched=False)

    @staticmethod
    def validate_response(interaction: str, xml: etree._Element | bytes | str) -> etree._Element:
        return validate_response(interaction, xml)

    @staticmethod
    def validate_request(interaction: str, xml: etree._Element | bytes | str) -> etree._Element:
        return validate_request(interaction, xml)

    @staticmethod
    def wsdl_path(interaction: str) -> Path:
        return wsdl_path(interaction)
