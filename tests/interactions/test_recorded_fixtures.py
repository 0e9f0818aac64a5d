"""Real-world messages (../shared/recorded-fixtures, see its PROVENANCE.md) sent to our producer.

Recorded traffic is full of deviations from the contract (placeholder values, OID actor types, 1.0
payloads, unknown units). Whatever arrives, the producer must answer either with a response that is
valid against the official schema or with a clear soap:Client fault, never with an internal error.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from email.message import Message
from pathlib import Path

import pytest
from lxml import etree
from support import DEMO_ACTOR, INTERACTIONS, SOAP_ENV, Official, ProducerServer, envelope, reference, soap_post

FIXTURES = reference.RECORDED_FIXTURES
UNIT = "SE2321000016-A100"
LOGICAL_ADDRESS = "{urn:riv:itintegration:registry:1}LogicalAddress"
HEADER = f"{{{SOAP_ENV}}}Header"
BODY = f"{{{SOAP_ENV}}}Body"
FAULT = f"{{{SOAP_ENV}}}Fault"
FACILITY_ELEMENTS = ("healthcare_facility", "healthcare_facility_med")
REQUEST_ROOTS = {f"{{urn:riv:crm:scheduling:{op}Responder:1}}{op}": op for op in INTERACTIONS}

if not FIXTURES.is_dir():
    pytest.skip(reference.FIXTURES_MISSING, allow_module_level=True)

PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _body_root(path: Path) -> etree._Element | None:
    """The first element in soap:Body, or None if the file does not parse or is not an envelope."""
    try:
        root = etree.parse(str(path), PARSER).getroot()
    except etree.XMLSyntaxError:
        return None
    body = root.find(BODY)
    children = [c for c in body if isinstance(c.tag, str)] if body is not None else []
    return children[0] if children else None


def _request_envelopes() -> dict[str, str]:
    """crm:scheduling 1.1 request envelopes by relative path -> interaction; responses are left out."""
    found: dict[str, str] = {}
    for path in sorted(FIXTURES.rglob("*_v1.1-envelope*.xml")):
        root = _body_root(path)
        if root is not None and root.tag in REQUEST_ROOTS:
            found[path.relative_to(FIXTURES).as_posix()] = REQUEST_ROOTS[root.tag]
    return found


def _v10_request_bodies() -> dict[str, str]:
    """crm 1.0 payload-only requests (including the 'bad-input' negative tests) -> the folder's interaction."""
    found: dict[str, str] = {}
    for path in sorted(FIXTURES.rglob("*_v1.0-body*.xml")):
        relative = path.relative_to(FIXTURES)
        try:
            root = etree.parse(str(path), PARSER).getroot()
        except etree.XMLSyntaxError:
            continue  # nothing to wrap in an envelope
        if relative.parts[0] in INTERACTIONS and not etree.QName(root).localname.endswith("Response"):
            found[relative.as_posix()] = relative.parts[0]
    return found


REQUEST_ENVELOPES = _request_envelopes()
V10_REQUEST_BODIES = _v10_request_bodies()


@pytest.fixture(scope="module")
def server(start_producer: Callable[..., ProducerServer]) -> ProducerServer:
    """The SOAP engine tests' producer (shared by name): none of these requests books anything that lasts."""
    return start_producer("engine")


def rewrite_to_demo_unit(element: etree._Element) -> etree._Element:
    """A copy whose LogicalAddress (added if missing) and every facility element name our demo unit."""
    element = copy.deepcopy(element)
    if element.tag == f"{{{SOAP_ENV}}}Envelope":
        header = element.find(HEADER)
        if header is None:
            header = etree.Element(HEADER)
            element.insert(0, header)
        address = header.find(LOGICAL_ADDRESS)
        if address is None:
            address = etree.SubElement(header, LOGICAL_ADDRESS)
        address.text = UNIT
    for node in element.iter():
        if isinstance(node.tag, str) and etree.QName(node).localname in FACILITY_ELEMENTS:
            node.text = UNIT
    return element


def assert_valid_response_or_clear_client_fault(
    official: Official, interaction: str, answer: tuple[int, Message, bytes]
) -> str:
    """Returns "response" or the faultstring. A soap:Server fault fails: the database is up, so it
    would be an internal error in handling a (mis-shaped) request."""
    status, headers, body = answer
    assert (headers.get("Content-Type") or "").lower().startswith("text/xml"), headers.get("Content-Type")
    root = etree.fromstring(body, PARSER)
    first = next((c for c in root.find(BODY) if isinstance(c.tag, str)), None)
    if status == 200:
        official.validate_response(interaction, body)
        return "response"
    assert status == 500, f"expected 200 or a 500 fault, got {status}: {body[:500]!r}"
    assert first is not None and first.tag == FAULT, f"HTTP 500 without a soap:Fault: {body[:500]!r}"
    faultcode = (first.findtext("faultcode") or "").strip()
    faultstring = (first.findtext("faultstring") or "").strip()
    assert faultcode.rpartition(":")[2] == "Client", f"expected soap:Client, got {faultcode}: {faultstring!r}"
    assert len(faultstring) >= 10, f"faultstring is not a clear message: {faultstring!r}"
    assert "Traceback" not in faultstring and 'File "' not in faultstring, faultstring
    return faultstring


def test_the_fixture_selection_is_not_empty() -> None:
    """Guards the parametrization below: a renamed folder must not silently leave nothing to test."""
    assert REQUEST_ENVELOPES, f"no crm:scheduling 1.1 request envelopes under {FIXTURES}"
    assert V10_REQUEST_BODIES, f"no crm:scheduling 1.0 request payloads under {FIXTURES}"
    roots = {p.relative_to(FIXTURES).as_posix(): _body_root(p) for p in FIXTURES.rglob("*_v1.1-envelope*.xml")}
    responses = {name for name, root in roots.items() if root is not None and root.tag.endswith("Response")}
    assert responses, "expected the recorded 1.1 responses to be present (and skipped)"
    assert not responses & set(REQUEST_ENVELOPES)


@pytest.mark.parametrize("variant", ["as-recorded", "demo-unit"])
@pytest.mark.parametrize("name", sorted(REQUEST_ENVELOPES))
def test_recorded_v11_request(server: ProducerServer, official: Official, name: str, variant: str) -> None:
    """As recorded the units are unknown here; the demo-unit copy lets the request reach the operation."""
    interaction = REQUEST_ENVELOPES[name]
    raw = (FIXTURES / name).read_bytes()
    if variant == "demo-unit":
        raw = etree.tostring(
            rewrite_to_demo_unit(etree.fromstring(raw, PARSER)), xml_declaration=True, encoding="UTF-8"
        )
    answer = soap_post(server.base_url, interaction, raw)
    assert_valid_response_or_clear_client_fault(official, interaction, answer)


@pytest.mark.parametrize("name", sorted(V10_REQUEST_BODIES))
def test_recorded_v10_request_payload(server: ProducerServer, official: Official, name: str) -> None:
    """crm 1.0 payloads lack 1.1-mandatory elements (subject_of_care, firstName/lastName): a clear
    soap:Client fault, or a valid answer where the payload happens to be valid 1.1 as well."""
    interaction = V10_REQUEST_BODIES[name]
    payload = rewrite_to_demo_unit(etree.parse(str(FIXTURES / name), PARSER).getroot())
    answer = soap_post(server.base_url, interaction, envelope(UNIT, payload, actor=DEMO_ACTOR))
    assert_valid_response_or_clear_client_fault(official, interaction, answer)
