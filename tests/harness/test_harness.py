"""The test harness itself: if the referee is wrong, every end-to-end verdict is worthless.

All but the last test run without a producer; test_server_health needs ``python -m producer serve``.
"""

from __future__ import annotations

import pytest
from lxml import etree
from support import (
    CORE_NS,
    DEMO_ACTOR,
    DEMO_RESIDENT,
    INTERACTIONS,
    SOAP_ENV,
    Official,
    ProducerServer,
    SchemaViolation,
    envelope,
    http_get,
    responder_namespace,
)
from support.official import CORE_XSD, PatchingTransport, patched_core
from support.patching import FIXED_PATTERN
from support.reference import require_official

GATT = responder_namespace("GetAllTimeTypes")
UNIT = "SE2321000016-A100"


def _get_all_time_types(subject_of_care: str) -> bytes:
    return (
        f'<g:GetAllTimeTypes xmlns:g="{GATT}" xmlns:x="urn:riv:crm:scheduling:GetAllTimeTypesResponder:1.1">'
        f"<g:healthcare_facility>{UNIT}</g:healthcare_facility>"
        f"<x:subject_of_care>{subject_of_care}</x:subject_of_care>"
        "</g:GetAllTimeTypes>"
    ).encode()


def _time_types_response(extra_in_item: str = "") -> bytes:
    return (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>'
        f'<r:GetAllTimeTypesResponse xmlns:r="{GATT}" xmlns:core="{CORE_NS}">'
        "<r:ListOfTimeTypes><core:timeTypeName>Mottagningsbesök</core:timeTypeName>"
        f"<core:timeTypeId>1</core:timeTypeId>{extra_in_item}</r:ListOfTimeTypes>"
        "</r:GetAllTimeTypesResponse></soap:Body></soap:Envelope>"
    ).encode()


def test_official_files_are_untouched_and_patch_is_in_memory() -> None:
    require_official()
    assert b"^[0-9]{8}[0-9pPtTfF][0-9]{3}$" in CORE_XSD.read_bytes()
    assert FIXED_PATTERN in patched_core()


@pytest.mark.parametrize("interaction", INTERACTIONS)
def test_every_official_schema_compiles(official: Official, interaction: str) -> None:
    assert official.request_schema(interaction) is not None


def test_patched_schema_accepts_personnummer_and_unpatched_rejects_it(official: Official) -> None:
    require_official()
    request = etree.fromstring(_get_all_time_types(DEMO_RESIDENT))
    assert official.request_schema("GetAllTimeTypes").validate(request)
    assert not official.unpatched_schema("GetAllTimeTypes").validate(request)
    # The patched pattern still constrains: reserve numbers pass, garbage does not.
    assert official.request_schema("GetAllTimeTypes").validate(etree.fromstring(_get_all_time_types("19121212T123")))
    assert not official.request_schema("GetAllTimeTypes").validate(etree.fromstring(_get_all_time_types("1912121212")))


def test_zeep_loads_the_patched_core_schema() -> None:
    assert FIXED_PATTERN in PatchingTransport().load(str(CORE_XSD))


def test_zeep_puts_both_rivta_headers_in_the_request(official: Official) -> None:
    client = official.zeep_client("MakeBooking", "http://127.0.0.1:9")
    assert client.address == "http://127.0.0.1:9/MakeBooking/1/rivtabp21"
    message = client.create_message(
        UNIT,
        DEMO_ACTOR,
        healthcare_facility_med=UNIT,
        requestedTimeslot={"healthcare_facility": UNIT, "subject_of_care": DEMO_RESIDENT},
        subject_of_care_info={"firstName": "Tolvan", "lastName": "Tolvansson"},
    )
    ns = {"s": SOAP_ENV, "itr": "urn:riv:itintegration:registry:1", "ih": "urn:riv:interoperability:headers:1"}
    assert message.xpath("/s:Envelope/s:Header/itr:LogicalAddress/text()", namespaces=ns) == [UNIT]
    assert message.xpath("/s:Envelope/s:Header/ih:Actor/ih:actorId/text()", namespaces=ns) == [DEMO_RESIDENT]
    assert message.xpath("/s:Envelope/s:Header/ih:Actor/ih:actorType/text()", namespaces=ns) == ["subject_of_care"]
    # What zeep builds from the official WSDL is itself valid against the official schemas.
    official.validate_request("MakeBooking", message)


def test_zeep_omits_a_header_given_none(official: Official) -> None:
    client = official.zeep_client("GetAllTimeTypes", "http://127.0.0.1:9")
    message = client.create_message(UNIT, None, healthcare_facility=UNIT, subject_of_care=DEMO_RESIDENT)
    header = message.find(f"{{{SOAP_ENV}}}Header")
    assert [etree.QName(h).localname for h in header] == ["LogicalAddress"]


def test_envelope_helper_builds_a_valid_request(official: Official) -> None:
    official.validate_request("GetAllTimeTypes", envelope(UNIT, _get_all_time_types(DEMO_RESIDENT)))
    with pytest.raises(SchemaViolation, match="actorType"):
        official.validate_request(
            "GetAllTimeTypes", envelope(UNIT, _get_all_time_types(DEMO_RESIDENT), actor=(DEMO_RESIDENT, "nurse"))
        )


def test_response_validator_accepts_a_valid_response(official: Official) -> None:
    element = official.validate_response("GetAllTimeTypes", _time_types_response())
    assert etree.QName(element).localname == "GetAllTimeTypesResponse"


def test_response_validator_rejects_unknown_core_child(official: Official) -> None:
    # Inside TimeTypeType: its xs:any is ##other relative to the core namespace, so an unknown core
    # element is invalid there. (Directly under the Response it would match the Responder's ##other.)
    with pytest.raises(SchemaViolation, match="bogus"):
        official.validate_response("GetAllTimeTypes", _time_types_response("<core:bogus>x</core:bogus>"))


def test_response_validator_rejects_wrong_root_and_faults(official: Official) -> None:
    with pytest.raises(SchemaViolation, match="expected root"):
        official.validate_response("GetAllTimeTypes", _get_all_time_types(DEMO_RESIDENT))
    fault = (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body><soap:Fault>'
        "<faultcode>soap:Client</faultcode><faultstring>no</faultstring></soap:Fault></soap:Body></soap:Envelope>"
    )
    with pytest.raises(SchemaViolation, match="Fault"):
        official.validate_response("GetAllTimeTypes", fault)


def test_zeep_plugin_raises_on_an_invalid_response(official: Official) -> None:
    client = official.zeep_client("GetAllTimeTypes", "http://127.0.0.1:9")
    plugin = client.client.plugins[0]
    plugin.ingress(etree.fromstring(_time_types_response()), {}, None)
    with pytest.raises(SchemaViolation):
        plugin.ingress(etree.fromstring(_time_types_response("<core:bogus/>")), {}, None)


def test_server_health(producer_server: ProducerServer) -> None:
    status, _, body = http_get(f"{producer_server.base_url}/health")
    assert (status, body.strip()) == (200, b"ok")

    url = producer_server.endpoint("GetAllTimeTypes")
    status, headers, body = http_get(f"{url}?wsdl")
    assert status == 200, body[:2000]
    assert "xml" in headers.get("Content-Type", "")
    wsdl = etree.fromstring(body)
    addresses = wsdl.xpath("//soap:address/@location", namespaces={"soap": "http://schemas.xmlsoap.org/wsdl/soap/"})
    assert addresses == [url]
