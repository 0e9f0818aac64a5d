"""The SOAP engine as a consumer (or the VP) sees it: real HTTP against our own producer process.

Every refusal must be a SOAP 1.1 fault the VP passes through unchanged (HTTP 500, text/xml, a
faultcode and a faultstring that names the problem) and must never leak patient data or internals.
Every successful answer is judged by the official schema, not by our own rendition of it.
"""

from __future__ import annotations

import http.client
import re
import select
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urljoin, urlsplit

import pytest
import zeep
from lxml import etree
from support import (
    DEMO_ACTOR,
    DEMO_RESIDENT,
    INTERACTIONS,
    SOAP_ENV,
    Official,
    ProducerServer,
    envelope,
    http_get,
    responder_namespace,
    soap_post,
)
from support.bodies import get_all_time_types
from zeep.plugins import HistoryPlugin
from zeep.transports import Transport

UNIT = "SE2321000016-A100"
GATT = responder_namespace("GetAllTimeTypes")
CORE_NS = "urn:riv:crm:scheduling:1"
CORE_EXT_NS = "urn:riv:crm:scheduling:1.1"
HEADERS_NS = "urn:riv:interoperability:headers:1"
FOREIGN_NS = "urn:example:tidbok-test:extension:1"
XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
FAULT = f"{{{SOAP_ENV}}}Fault"
MAX_REQUEST_BYTES = 1_048_576  # the documented default of TIDBOK_MAX_REQUEST_BYTES
TWELVE_DIGITS = re.compile(rb"\d{12}")

# Our own parser for what the server sends back: nothing it says may make us fetch or expand anything.
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@pytest.fixture(scope="module")
def server(start_producer: Callable[..., ProducerServer]) -> ProducerServer:
    """Our own producer, so bookings made by other test files cannot change what we see."""
    return start_producer("engine")


# -- helpers -------------------------------------------------------------------------------------


def raw_request(
    method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None, timeout: float = 30
) -> tuple[int, Message, bytes]:
    """Any method, with the path sent exactly as given (no normalisation)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def post_large(url: str, body: bytes, chunked: bool = False, timeout: float = 30) -> tuple[int, Message, bytes]:
    """POST a big body the way RFC 9112 §9.3 asks of a client: watch for an early (error) response
    while sending, stop sending when it comes or when the server closes, then read it.

    http.client writes the whole body first and raises BrokenPipeError when a server refuses early,
    which would hide the fault we want to see.
    """
    parts = urlsplit(url)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: text/xml; charset=utf-8\r\n"
        f"{framing}\r\nConnection: close\r\n\r\n"
    ).encode()
    if chunked:
        pieces = [b"%x\r\n%s\r\n" % (len(body[i : i + 65536]), body[i : i + 65536]) for i in range(0, len(body), 65536)]
        body = b"".join(pieces) + b"0\r\n\r\n"
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=timeout) as sock:
        sock.sendall(head)
        view, sent, deadline = memoryview(body), 0, time.monotonic() + timeout
        while sent < len(body) and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], timeout)
            if readable:
                break  # the server answered before taking the whole body
            if writable:
                try:
                    sent += sock.send(view[sent : sent + 65536])
                except (BrokenPipeError, ConnectionResetError):
                    break  # it closed its side; its answer may still be waiting for us
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.headers, response.read()


@dataclass(frozen=True)
class Fault:
    code: str  # local name of the faultcode QName: Client, Server, VersionMismatch
    string: str


def assert_fault(answer: tuple[int, Message, bytes], code: str, keywords: Iterable[str]) -> Fault:
    """A well-formed SOAP 1.1 fault with this code, naming the problem, leaking nothing.

    ``keywords``: at least one must occur in the faultstring (case-insensitive).
    """
    status, headers, body = answer
    assert status == 500, f"expected HTTP 500 for a fault, got {status}: {body[:500]!r}"
    assert (headers.get("Content-Type") or "").split(";")[0].strip().lower() == "text/xml"
    root = etree.fromstring(body, SAFE_PARSER)
    assert root.tag == f"{{{SOAP_ENV}}}Envelope", f"not a SOAP 1.1 envelope: {root.tag}"
    soap_body = root.find(f"{{{SOAP_ENV}}}Body")
    assert soap_body is not None, "the fault envelope has no soap:Body"
    children = [c for c in soap_body if isinstance(c.tag, str)]
    assert [c.tag for c in children] == [FAULT], f"expected exactly one soap:Fault, got {[c.tag for c in children]}"
    fault = children[0]
    code_element = fault.find("faultcode")
    assert code_element is not None, "the fault has no faultcode"
    faultcode = (code_element.text or "").strip()
    prefix, _, local = faultcode.rpartition(":")
    assert code_element.nsmap.get(prefix or None) == SOAP_ENV, f"faultcode {faultcode!r} is not a SOAP 1.1 QName"
    assert local == code, f"expected soap:{code}, got {faultcode!r} ({fault.findtext('faultstring')!r})"
    faultstring = (fault.findtext("faultstring") or "").strip()
    assert faultstring, "the faultstring is empty"
    wanted = tuple(keywords)
    assert any(k.lower() in faultstring.lower() for k in wanted), f"{faultstring!r} mentions none of {wanted}"
    assert_leaks_nothing(body)
    return Fault(local, faultstring)


def assert_leaks_nothing(body: bytes) -> None:
    """No personnummer (or any 12-digit run) and no Python internals anywhere in a fault."""
    assert DEMO_RESIDENT.encode() not in body, f"the fault echoes the personnummer: {body!r}"
    assert not TWELVE_DIGITS.search(body), f"the fault contains a 12-digit run: {body!r}"
    assert b"Traceback" not in body and b'File "' not in body, f"the fault shows a stack trace: {body!r}"


def assert_ok(official: Official, interaction: str, answer: tuple[int, Message, bytes]) -> etree._Element:
    """HTTP 200, text/xml, and a response that is valid against the OFFICIAL schema."""
    status, headers, body = answer
    assert status == 200, f"expected 200, got {status}: {body[:1000]!r}"
    assert (headers.get("Content-Type") or "").lower().startswith("text/xml")
    return official.validate_response(interaction, body)


def make_booking(start: str, end: str = "20300107093000") -> str:
    ns = responder_namespace("MakeBooking")
    return (
        f'<m:MakeBooking xmlns:m="{ns}" xmlns:c="{CORE_NS}" xmlns:e="{CORE_EXT_NS}">'
        f"<m:healthcare_facility_med>{UNIT}</m:healthcare_facility_med>"
        f"<m:requestedTimeslot><c:startTimeInclusive>{start}</c:startTimeInclusive>"
        f"<c:endTimeExclusive>{end}</c:endTimeExclusive><c:healthcare_facility>{UNIT}</c:healthcare_facility>"
        f"<c:subject_of_care>{DEMO_RESIDENT}</c:subject_of_care></m:requestedTimeslot>"
        "<m:subject_of_care_info><e:firstName>Tolvan</e:firstName><e:lastName>Tolvansson</e:lastName>"
        "</m:subject_of_care_info></m:MakeBooking>"
    )


def assert_valid_request(official: Official, interaction: str, body_xml: str) -> None:
    """Precondition for negative tests: the unbroken variant is valid, so the fault is about our defect."""
    element = etree.fromstring(body_xml.encode())
    assert official.request_schema(interaction).validate(element), official.request_schema(interaction).error_log


def post_time_types(
    server: ProducerServer, xml: bytes, content_type: str = "text/xml; charset=utf-8", timeout: float = 30
) -> tuple[int, Message, bytes]:
    return soap_post(server.base_url, "GetAllTimeTypes", xml, content_type=content_type, timeout=timeout)


def assert_alive(server: ProducerServer, official: Official) -> None:
    """After an abusive request, the same server still answers a normal call correctly."""
    assert_ok(official, "GetAllTimeTypes", post_time_types(server, envelope(UNIT, get_all_time_types())))


def with_prolog(prolog: str, xml: bytes) -> bytes:
    """Put a DOCTYPE (or anything else) between the XML declaration and the envelope."""
    declaration, rest = xml.split(b"?>", 1)
    return declaration + b"?>\n" + prolog.encode() + rest


# -- what is not a SOAP 1.1 request --------------------------------------------------------------


@pytest.mark.parametrize(
    "xml",
    [
        pytest.param(envelope(UNIT, get_all_time_types())[:-40], id="truncated"),
        pytest.param(b"<a><b></a>", id="mismatched-tags"),
        pytest.param(envelope(UNIT, get_all_time_types(f"{DEMO_RESIDENT} & more")), id="bare-ampersand"),
    ],
)
def test_not_well_formed_xml_is_a_client_fault(server: ProducerServer, xml: bytes) -> None:
    assert_fault(post_time_types(server, xml), "Client", ["well-formed"])


@pytest.mark.parametrize("xml", [b"", b"  \r\n\t "], ids=["empty", "whitespace"])
def test_empty_body_is_a_client_fault(server: ProducerServer, xml: bytes) -> None:
    assert_fault(post_time_types(server, xml), "Client", ["empty"])


def test_xml_that_is_not_soap_is_a_client_fault(server: ProducerServer) -> None:
    assert_fault(post_time_types(server, b"<foo/>"), "Client", ["SOAP 1.1", "Envelope"])


def test_soap_12_envelope_is_a_version_mismatch(server: ProducerServer) -> None:
    """SOAP 1.1 §4.4: an envelope in another namespace gets VersionMismatch (answered in SOAP 1.1)."""
    xml = envelope(UNIT, get_all_time_types()).replace(SOAP_ENV.encode(), b"http://www.w3.org/2003/05/soap-envelope")
    assert_fault(post_time_types(server, xml), "VersionMismatch", ["SOAP 1.2"])


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "text/html; charset=utf-8"])
def test_wrong_content_type_is_a_client_fault(server: ProducerServer, content_type: str) -> None:
    answer = post_time_types(server, envelope(UNIT, get_all_time_types()), content_type=content_type)
    assert_fault(answer, "Client", ["Content-Type"])


def test_missing_content_type_is_a_client_fault(server: ProducerServer) -> None:
    answer = raw_request("POST", server.endpoint("GetAllTimeTypes"), envelope(UNIT, get_all_time_types()))
    assert_fault(answer, "Client", ["Content-Type"])


def test_soap_12_content_type_is_a_version_mismatch(server: ProducerServer) -> None:
    """application/soap+xml announces SOAP 1.2; a SOAP 1.1 node answers VersionMismatch (SOAP 1.2 part 2,
    appendix A: a 1.1 node receiving a 1.2 message), which tells the caller what to change."""
    answer = post_time_types(server, envelope(UNIT, get_all_time_types()), content_type="application/soap+xml")
    assert_fault(answer, "VersionMismatch", ["SOAP 1.2"])


@pytest.mark.parametrize("method", ["PUT", "DELETE", "GET", "PATCH"])
def test_non_post_on_an_endpoint_is_a_client_fault(server: ProducerServer, method: str) -> None:
    body = envelope(UNIT, get_all_time_types()) if method in ("PUT", "PATCH") else None
    headers = {"Content-Type": "text/xml; charset=utf-8"} if body else {}
    answer = raw_request(method, server.endpoint("GetAllTimeTypes"), body, headers)
    assert_fault(answer, "Client", ["POST"])


def test_unknown_interaction_path_is_a_client_fault(server: ProducerServer) -> None:
    answer = soap_post(server.base_url, "NoSuchThing", envelope(UNIT, get_all_time_types()))
    assert_fault(answer, "Client", ["NoSuchThing"])


def test_request_for_another_interaction_names_both(server: ProducerServer) -> None:
    """A GetAllTimeTypes request sent to the MakeBooking endpoint: both names, so the caller sees the mix-up."""
    fault = assert_fault(
        soap_post(server.base_url, "MakeBooking", envelope(UNIT, get_all_time_types())), "Client", ["MakeBooking"]
    )
    assert "GetAllTimeTypes" in fault.string


def test_unknown_body_root_is_a_client_fault(server: ProducerServer) -> None:
    body = f'<g:WrongElement xmlns:g="{GATT}"><g:healthcare_facility>{UNIT}</g:healthcare_facility></g:WrongElement>'
    xml = envelope(UNIT, body)
    assert_fault(post_time_types(server, xml), "Client", ["GetAllTimeTypes"])


def test_body_with_two_elements_is_a_client_fault(server: ProducerServer) -> None:
    xml = envelope(UNIT, get_all_time_types() + get_all_time_types())
    assert_fault(post_time_types(server, xml), "Client", ["exactly one", "one request element"])


def test_envelope_without_body_is_a_client_fault(server: ProducerServer) -> None:
    xml = f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Header/></s:Envelope>'.encode()
    assert_fault(post_time_types(server, xml), "Client", ["Body"])


# -- RIVTA headers -------------------------------------------------------------------------------


@pytest.mark.parametrize("logical_address", [None, "", "   "], ids=["missing", "empty", "blank"])
def test_missing_or_empty_logical_address_is_a_client_fault(
    server: ProducerServer, logical_address: str | None
) -> None:
    answer = post_time_types(server, envelope(logical_address, get_all_time_types()))
    assert_fault(answer, "Client", ["LogicalAddress"])


def test_unknown_logical_address_is_a_client_fault(server: ProducerServer) -> None:
    answer = post_time_types(server, envelope("SE2321000016-X999", get_all_time_types()))
    assert_fault(answer, "Client", ["unknown"])


def test_unknown_logical_address_shaped_like_a_personnummer_is_not_echoed(server: ProducerServer) -> None:
    """A consumer that swaps parameters puts the resident's personnummer in LogicalAddress; the
    faultstring must still not carry it (README: never patient data)."""
    answer = post_time_types(server, envelope(DEMO_RESIDENT, get_all_time_types()))
    assert_fault(answer, "Client", ["unknown"])


def test_known_logical_address_in_lower_case_works(server: ProducerServer, official: Official) -> None:
    """HSA-ids are case-insensitive; the VP may pass the address as the consumer spelt it."""
    assert_ok(official, "GetAllTimeTypes", post_time_types(server, envelope(UNIT.lower(), get_all_time_types())))


def test_invalid_actor_header_is_a_client_fault(server: ProducerServer) -> None:
    """actorType is an enumeration (subject_of_care | subject_of_care_agent) and case-sensitive."""
    answer = post_time_types(server, envelope(UNIT, get_all_time_types(), actor=(DEMO_RESIDENT, "SUBJECT_OF_CARE")))
    assert_fault(answer, "Client", ["Actor"])


def test_request_without_actor_header_works(server: ProducerServer, official: Official) -> None:
    """Decision: Actor is optional at the producer. The WSDL binds it as a header part, but RIVTA lets
    the VP and system consumers call without it; 1177 always sends it, and the operations that
    concern one resident take the personnummer from the body, so nothing is looser without it."""
    assert_ok(official, "GetAllTimeTypes", post_time_types(server, envelope(UNIT, get_all_time_types(), actor=None)))


def test_xs_any_extensions_in_the_request_and_the_actor_are_ignored(server: ProducerServer, official: Official) -> None:
    """Forward compatibility: xs:any ##other at the end of the request root and of ActorType."""
    extension = f'<ext:futureElement xmlns:ext="{FOREIGN_NS}"><ext:nested>1</ext:nested></ext:futureElement>'
    actor = (
        f'<ih:Actor xmlns:ih="{HEADERS_NS}"><ih:actorId>{DEMO_RESIDENT}</ih:actorId>'
        f"<ih:actorType>subject_of_care</ih:actorType>{extension}</ih:Actor>"
    )
    body = get_all_time_types(extra=extension)
    assert_valid_request(official, "GetAllTimeTypes", body)
    answer = post_time_types(server, envelope(UNIT, body, actor=None, extra_headers=[actor]))
    response = assert_ok(official, "GetAllTimeTypes", answer)
    assert response.findall(f"{{{GATT}}}ListOfTimeTypes"), "expected the demo unit's time types"


def test_unknown_soap_header_without_must_understand_is_ignored(server: ProducerServer, official: Official) -> None:
    extra = f'<ext:Trace xmlns:ext="{FOREIGN_NS}">abc</ext:Trace>'
    answer = post_time_types(server, envelope(UNIT, get_all_time_types(), extra_headers=[extra]))
    assert_ok(official, "GetAllTimeTypes", answer)


# -- contract validation -------------------------------------------------------------------------


def test_missing_required_element_is_a_schema_fault(server: ProducerServer, official: Official) -> None:
    assert_valid_request(official, "GetAllTimeTypes", get_all_time_types())
    body = get_all_time_types().replace(f"<x:subject_of_care>{DEMO_RESIDENT}</x:subject_of_care>", "")
    assert "subject_of_care" not in body
    assert_fault(post_time_types(server, envelope(UNIT, body)), "Client", ["contract schema"])


@pytest.mark.parametrize(
    "start",
    [
        pytest.param("2030-01-07T09:00:00", id="iso-8601"),
        pytest.param("203001070900", id="12-digit-minutes"),
        pytest.param(DEMO_RESIDENT, id="personnummer-as-time"),
        pytest.param("20301307090000", id="month-13"),
    ],
)
def test_bad_timestamp_is_a_schema_fault(server: ProducerServer, official: Official, start: str) -> None:
    assert_valid_request(official, "MakeBooking", make_booking("20300107090000"))
    answer = soap_post(server.base_url, "MakeBooking", envelope(UNIT, make_booking(start)))
    assert_fault(answer, "Client", ["contract schema"])


@pytest.mark.parametrize("subject_of_care", ["19121212121X", "1912121212", "19121212-1212", "1912121212123"])
def test_invalid_personnummer_is_a_schema_fault_that_does_not_echo_it(
    server: ProducerServer, subject_of_care: str
) -> None:
    answer = post_time_types(server, envelope(UNIT, get_all_time_types(subject_of_care)))
    fault = assert_fault(answer, "Client", ["contract schema"])
    assert subject_of_care not in fault.string


@pytest.mark.parametrize(
    ("interaction", "body", "element"),
    [
        pytest.param("GetAllTimeTypes", get_all_time_types("19121212121X"), "subject_of_care", id="personnummer"),
        pytest.param("MakeBooking", make_booking("203001070900"), "startTimeInclusive", id="timestamp"),
    ],
)
def test_schema_fault_names_the_offending_element(
    server: ProducerServer, interaction: str, body: str, element: str
) -> None:
    """The consumer must be able to find the mistake: which element (names are never patient data)."""
    fault = assert_fault(soap_post(server.base_url, interaction, envelope(UNIT, body)), "Client", ["contract schema"])
    assert element in fault.string, f"{fault.string!r} does not say which element is wrong"


# Hand-written envelopes: an element in the wrong namespace is named with the namespace expected.
GATT_11 = "urn:riv:crm:scheduling:GetAllTimeTypesResponder:1.1"


@pytest.mark.parametrize(
    ("body", "sent"),
    [
        pytest.param(
            f'<g:GetAllTimeTypes xmlns:g="{GATT}"><g:healthcare_facility>{UNIT}</g:healthcare_facility>'
            f"<g:subject_of_care>{DEMO_RESIDENT}</g:subject_of_care></g:GetAllTimeTypes>",
            f"is in namespace {GATT},",
            id="responder-1-for-1.1",
        ),
        pytest.param(
            f'<g:GetAllTimeTypes xmlns:g="{GATT}" xmlns:c="{CORE_NS}"><g:healthcare_facility>{UNIT}'
            f"</g:healthcare_facility><c:subject_of_care>{DEMO_RESIDENT}</c:subject_of_care></g:GetAllTimeTypes>",
            f"is in namespace {CORE_NS},",
            id="core-namespace",
        ),
        pytest.param(
            f'<g:GetAllTimeTypes xmlns:g="{GATT}"><g:healthcare_facility>{UNIT}</g:healthcare_facility>'
            f'<subject_of_care xmlns="">{DEMO_RESIDENT}</subject_of_care></g:GetAllTimeTypes>',
            "has no namespace,",
            id="no-namespace",
        ),
        pytest.param(
            f'<g:GetAllTimeTypes xmlns:g="{GATT}"><g:healthcare_facility>{UNIT}</g:healthcare_facility>'
            f'<o:subject_of_care xmlns:o="http://example.org/19121212-1212">{DEMO_RESIDENT}</o:subject_of_care>'
            "</g:GetAllTimeTypes>",
            "is in a namespace the contract does not use,",
            id="foreign-namespace-not-echoed",
        ),
    ],
)
def test_an_element_in_the_wrong_namespace_is_named_with_the_namespace_expected(
    server: ProducerServer, body: str, sent: str
) -> None:
    """Before: "subject_of_care: this element is not expected here (expected: …, subject_of_care)"."""
    fault = assert_fault(post_time_types(server, envelope(UNIT, body)), "Client", ["contract schema"])
    assert f"GetAllTimeTypes/subject_of_care: subject_of_care {sent}" in fault.string, fault.string
    assert f"but the contract expects it in namespace {GATT_11}" in fault.string, fault.string
    assert "example.org" not in fault.string


def test_a_nested_element_in_the_wrong_namespace_is_named_with_the_namespace_expected(server: ProducerServer) -> None:
    """requestedTimeslot's children are in the core namespace, not the responder's."""
    ns = responder_namespace("MakeBooking")
    body = make_booking("20300107090000").replace("<c:healthcare_facility>", "<m:healthcare_facility>")
    body = body.replace("</c:healthcare_facility>", "</m:healthcare_facility>")
    fault = assert_fault(soap_post(server.base_url, "MakeBooking", envelope(UNIT, body)), "Client", ["schema"])
    assert (
        f"requestedTimeslot/healthcare_facility: healthcare_facility is in namespace {ns}, but the contract expects"
        f" it in namespace {CORE_NS}" in fault.string
    ), fault.string


def test_an_actor_child_in_the_wrong_namespace_is_named_with_the_namespace_expected(server: ProducerServer) -> None:
    actor = (
        f'<ih:Actor xmlns:ih="{HEADERS_NS}"><actorId>{DEMO_RESIDENT}</actorId>'
        "<ih:actorType>subject_of_care</ih:actorType></ih:Actor>"
    )
    answer = post_time_types(server, envelope(UNIT, get_all_time_types(), actor=None, extra_headers=[actor]))
    fault = assert_fault(answer, "Client", ["Actor"])
    assert f"actorId has no namespace, but the contract expects it in namespace {HEADERS_NS}" in fault.string


def test_a_request_element_in_the_wrong_namespace_is_named_with_the_namespace_expected(server: ProducerServer) -> None:
    body = get_all_time_types().replace(f'xmlns:g="{GATT}"', f'xmlns:g="{GATT_11}"')
    fault = assert_fault(post_time_types(server, envelope(UNIT, body)), "Client", ["namespace"])
    assert (
        f"The request element GetAllTimeTypes is in namespace {GATT_11}, but the contract expects it in namespace"
        f" {GATT}" in fault.string
    ), fault.string


def test_stray_text_between_elements_is_named(server: ProducerServer) -> None:
    """A SoapUI export with literal "\\r" after each tag (../shared/recorded-fixtures has one)."""
    actor = (
        f'<ih:Actor xmlns:ih="{HEADERS_NS}">\\r<ih:actorId>{DEMO_RESIDENT}</ih:actorId>'
        "<ih:actorType>subject_of_care</ih:actorType></ih:Actor>"
    )
    answer = post_time_types(server, envelope(UNIT, get_all_time_types(), actor=None, extra_headers=[actor]))
    fault = assert_fault(answer, "Client", ["Actor"])
    assert "holds text where the contract allows only elements" in fault.string, fault.string


def test_a_logical_address_in_the_wrong_namespace_is_named_with_the_namespace_expected(server: ProducerServer) -> None:
    header = f'<LogicalAddress xmlns="{HEADERS_NS}">{UNIT}</LogicalAddress>'
    answer = post_time_types(server, envelope(None, get_all_time_types(), extra_headers=[header]))
    fault = assert_fault(answer, "Client", ["LogicalAddress"])
    assert (
        f"LogicalAddress is in namespace {HEADERS_NS}, but the contract expects it in namespace"
        " urn:riv:itintegration:registry:1" in fault.string
    ), fault.string


@pytest.mark.parametrize("subject_of_care", ["'191212121212'", "x'191212121212"], ids=["quoted", "one-quote"])
def test_schema_fault_does_not_echo_a_personnummer_containing_quotes(
    server: ProducerServer, subject_of_care: str
) -> None:
    """A consumer that quotes the value (a CSV/SQL slip) must not get the personnummer back: the
    redaction of quoted values in libxml2's message must not be fooled by quotes inside the value."""
    answer = post_time_types(server, envelope(UNIT, get_all_time_types(subject_of_care.replace("'", "&apos;"))))
    assert_fault(answer, "Client", ["contract schema"])


# -- abuse ---------------------------------------------------------------------------------------


def _oversized() -> bytes:
    """A request that would be valid (the padding sits in an xs:any extension) but exceeds the limit."""
    padding = "x" * (MAX_REQUEST_BYTES + 200_000)
    xml = envelope(UNIT, get_all_time_types(extra=f'<ext:pad xmlns:ext="{FOREIGN_NS}">{padding}</ext:pad>'))
    assert len(xml) > MAX_REQUEST_BYTES
    return xml


def test_oversized_request_is_a_client_fault(server: ProducerServer, official: Official) -> None:
    """Announced with a correct Content-Length: refused without parsing, and the server stays up."""
    assert_fault(post_large(server.endpoint("GetAllTimeTypes"), _oversized()), "Client", ["larger than", "limit"])
    assert_alive(server, official)


def test_oversized_chunked_request_is_a_client_fault(server: ProducerServer, official: Official) -> None:
    """No Content-Length to trust: the server must stop reading at the limit."""
    answer = post_large(server.endpoint("GetAllTimeTypes"), _oversized(), chunked=True)
    assert_fault(answer, "Client", ["larger than", "limit"])
    assert_alive(server, official)


BILLION_LAUGHS = (
    '<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
    + "]>"
)


@pytest.mark.parametrize(
    ("prolog", "value"),
    [
        pytest.param(BILLION_LAUGHS, "&lol9;", id="billion-laughs"),
        pytest.param('<!DOCTYPE x [<!ENTITY x SYSTEM "file:///etc/passwd">]>', "&x;", id="external-entity"),
        pytest.param('<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]>', "x", id="parameter"),
        pytest.param("<!DOCTYPE soapenv:Envelope>", DEMO_RESIDENT, id="plain-doctype"),
    ],
)
def test_dtds_and_entities_are_refused(server: ProducerServer, official: Official, prolog: str, value: str) -> None:
    xml = with_prolog(prolog, envelope(UNIT, get_all_time_types(value)))
    answer = post_time_types(server, xml, timeout=10)
    assert_fault(answer, "Client", ["DTD", "document type"])
    assert b"root:" not in answer[2] and b"/bin/" not in answer[2], "the fault carries file content"
    assert_alive(server, official)


def test_very_deep_nesting_is_a_client_fault(server: ProducerServer, official: Official) -> None:
    depth = 100_000
    xml = envelope(UNIT, "<a>" * depth + "</a>" * depth)
    assert len(xml) < MAX_REQUEST_BYTES  # so it is the depth, not the size, that is refused
    assert_fault(post_time_types(server, xml, timeout=20), "Client", ["depth", "nest", "well-formed"])
    assert_alive(server, official)


# -- WSDL and XSDs -------------------------------------------------------------------------------


def _base(server: ProducerServer, host: str) -> str:
    return server.base_url.replace("127.0.0.1", host)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
@pytest.mark.parametrize("interaction", INTERACTIONS)
def test_wsdl_names_the_url_it_was_fetched_from(server: ProducerServer, interaction: str, host: str) -> None:
    url = f"{_base(server, host)}/{interaction}/1/rivtabp21"
    status, headers, body = http_get(f"{url}?wsdl")
    assert status == 200, body[:500]
    assert (headers.get("Content-Type") or "").lower().startswith("text/xml")
    wsdl = etree.fromstring(body, SAFE_PARSER)
    assert wsdl.tag == f"{{{WSDL}}}definitions"
    addresses = wsdl.findall(f".//{{{WSDL}}}port/{{{WSDL_SOAP}}}address")
    assert [a.get("location") for a in addresses] == [url]


def _schema_locations(document: etree._Element) -> list[str]:
    return [
        el.get("schemaLocation")
        for el in document.iter(f"{{{XS}}}import", f"{{{XS}}}include")
        if el.get("schemaLocation")
    ]


class _FetchedResolver(etree.Resolver):
    """Lets libxml2 compile the schema set from what we fetched over HTTP, never from disk."""

    def __init__(self, fetched: dict[str, bytes]) -> None:
        super().__init__()
        self.fetched = fetched

    def resolve(self, system_url: str, public_id: str | None, context: object) -> object:
        if system_url in self.fetched:
            return self.resolve_string(self.fetched[system_url], context, base_url=system_url)
        raise AssertionError(f"the schema set refers to {system_url}, which the crawl did not fetch")


@pytest.mark.parametrize("interaction", INTERACTIONS)
def test_every_schema_the_wsdl_imports_is_served(server: ProducerServer, interaction: str) -> None:
    """Resolved exactly as a client does (urljoin against the document's own URL), recursively."""
    wsdl_url = f"{server.endpoint(interaction)}?wsdl"
    status, _, wsdl = http_get(wsdl_url)
    assert status == 200
    pending = [urljoin(wsdl_url, loc) for loc in _schema_locations(etree.fromstring(wsdl, SAFE_PARSER))]
    responder = urljoin(wsdl_url, f"{interaction}Responder_1.1.xsd")
    assert responder in pending, f"the WSDL does not import {responder}: {pending}"
    fetched: dict[str, bytes] = {}
    while pending:
        url = pending.pop()
        if url in fetched:
            continue
        status, headers, body = http_get(url)
        assert status == 200, f"{url} -> {status}"
        assert (headers.get("Content-Type") or "").lower().startswith("text/xml")
        document = etree.fromstring(body, SAFE_PARSER)
        assert document.tag == f"{{{XS}}}schema", f"{url} is not an XML Schema"
        fetched[url] = body
        pending.extend(urljoin(url, loc) for loc in _schema_locations(document))
    names = {urlsplit(u).path for u in fetched}
    assert f"/{interaction}/1/{interaction}Responder_1.1.xsd" in names
    assert "/core_components/crm_scheduling_1.1.xsd" in names
    assert "/core_components/interoperability_headers_1.0.xsd" in names
    assert "/core_components/itintegration_registry_1.0.xsd" in names
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    parser.resolvers.add(_FetchedResolver(fetched))
    schema = etree.XMLSchema(etree.fromstring(fetched[responder], parser, base_url=responder))
    assert schema is not None


def _venv_xsd() -> str:
    """An .xsd outside the contract tree (xmlschema's meta-schema), as a path relative to core_components."""
    site = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
    return f"../../../.venv/{site}/xmlschema/schemas/XSD_1.0/XMLSchema.xsd"


@pytest.mark.parametrize(
    "path",
    [
        "/core_components/../../pyproject.toml",
        "/core_components/..%2F..%2F..%2Fpyproject.toml",
        "/core_components/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
        "/MakeBooking/1/..%2F..%2Fpyproject.toml",
        "/MakeBooking/1/../../../../pyproject.toml",
        "/MakeBooking/1/..%2F..%2F..%2F..%2F..%2Fpyproject.toml",
        "/core_components/" + _venv_xsd(),
        "/core_components/" + _venv_xsd().replace("/", "%2F"),
        "/MakeBooking/1/..%2F..%2F" + _venv_xsd().replace("/", "%2F"),
    ],
)
def test_path_traversal_does_not_serve_repository_files(server: ProducerServer, path: str) -> None:
    status, _, body = raw_request("GET", f"{server.base_url}{path}")
    assert status in (400, 403, 404), f"{path} -> {status}: {body[:200]!r}"
    assert b"[project]" not in body and b"XMLSchema" not in body


# -- a consumer built from our own WSDL ----------------------------------------------------------


def test_zeep_client_from_the_producers_own_wsdl(server: ProducerServer, official: Official) -> None:
    """What a consumer developer does first: point zeep at ?wsdl. Everything comes over HTTP."""
    headers = {"LogicalAddress": UNIT, "actor": {"actorId": DEMO_ACTOR[0], "actorType": DEMO_ACTOR[1]}}

    history = HistoryPlugin()
    client = zeep.Client(
        f"{server.endpoint('GetAllTimeTypes')}?wsdl", transport=Transport(timeout=30), plugins=[history]
    )
    time_types = client.service.GetAllTimeTypes(
        healthcare_facility=UNIT, subject_of_care=DEMO_RESIDENT, _soapheaders=headers
    )
    official.validate_response("GetAllTimeTypes", history.last_received["envelope"])
    assert {t.timeTypeId for t in time_types.ListOfTimeTypes} == {"LAK", "SSK", "PROV"}

    history = HistoryPlugin()
    client = zeep.Client(
        f"{server.endpoint('GetSubjectOfCareSchedule')}?wsdl", transport=Transport(timeout=30), plugins=[history]
    )
    schedule = client.service.GetSubjectOfCareSchedule(
        healthcare_facility=UNIT, subject_of_care=DEMO_RESIDENT, _soapheaders=headers
    )
    official.validate_response("GetSubjectOfCareSchedule", history.last_received["envelope"])
    assert any(slot.subject_of_care == DEMO_RESIDENT for slot in schedule.timeslotDetail)
