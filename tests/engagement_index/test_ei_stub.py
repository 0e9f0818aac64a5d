"""The EI stub (engagement_index/stub) judged by the OFFICIAL EI contract, run as testers run it.

The stub is started once as ``python -m engagement_index.stub`` on a free port and driven by zeep
clients built from the official Update/FindContent WSDLs in ../shared/reference-contracts. Every
non-fault response is validated against the official response schema before zeep reads it. The
official core XSD has the anchored personnummer pattern (``^…$``, literal characters in XSD), which
rejects every real personnummer; it is patched in memory as it is loaded, never copied or changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import zeep
from lxml import etree
from support.ei import (
    EI_HSA_ID,
    REGISTRY_NS,
    RESIDENT,
    SOAP_ENV,
    Ei,
    Stub,
    assert_official_response,
    official_client,
    responder_ns,
    running_stub,
)
from support.reference import require_recorded_fixtures
from zeep.exceptions import Fault, TransportError

ALTERNATIVE_HSA_ID = "SE5565594230-EIALT"
UNIT = "SE2321000016-A100"
SOURCE_SYSTEM = "SE2321000016-84GX"


@pytest.fixture(scope="session")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stub]:
    with running_stub(
        tmp_path_factory.mktemp("ei-stub"), {"TIDBOK_EI_ALTERNATIVE_HSA_ID": ALTERNATIVE_HSA_ID}
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(stub: Stub) -> None:
    """Every test starts from an empty index with control ok."""
    assert stub.api("POST", "reset", {})[0] == 200


# -- zeep clients from the official WSDLs ----------------------------------------------------------


@pytest.fixture(scope="session")
def ei(stub: Stub) -> Ei:
    return Ei.of(stub)


def post(**fields: Any) -> dict[str, Any]:
    """An engagement as tidbok publishes a booking; fields given as None are left out."""
    engagement = {
        "registeredResidentIdentification": RESIDENT,
        "serviceDomain": "riv:crm:scheduling",
        "categorization": "NA",
        "logicalAddress": UNIT,
        "businessObjectInstanceIdentifier": "B1",
        "clinicalProcessInterestId": "NA",
        "mostRecentContent": "20301015093000",
        "sourceSystem": SOURCE_SYSTEM,
        "dataController": "SE232100-0016",
    }
    engagement.update(fields)
    return {k: v for k, v in engagement.items() if v is not None}


def save(**fields: Any) -> dict[str, Any]:
    return {"deleteFlag": False, "engagement": post(**fields)}


def delete(**fields: Any) -> dict[str, Any]:
    return {"deleteFlag": True, "engagement": post(**{"mostRecentContent": None, **fields})}


def stored(stub: Stub) -> dict[str, dict[str, Any]]:
    """The stub's posts by businessObjectInstanceIdentifier (unique in most tests)."""
    return {p["businessObjectInstanceIdentifier"]: p for p in stub.state()["posts"]}


def fault_of(excinfo: pytest.ExceptionInfo[Fault]) -> str:
    return excinfo.value.message


def update_envelope(body: str, logical_address: str = EI_HSA_ID) -> bytes:
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:itr="{REGISTRY_NS}" '
        f'xmlns:u="{responder_ns("Update")}" xmlns:c="urn:riv:itintegration:engagementindex:1">'
        f"<soapenv:Header><itr:LogicalAddress>{logical_address}</itr:LogicalAddress></soapenv:Header>"
        f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    ).encode()


# -- serving -----------------------------------------------------------------------------------------


def test_health_wsdl_and_schemas_are_served(stub: Stub) -> None:
    assert stub.request("GET", "/health") == (200, b"ok\n")
    for op in ("Update", "FindContent"):
        status, wsdl = stub.request("GET", f"/{op}/1/rivtabp21?wsdl")
        assert status == 200
        address = etree.fromstring(wsdl).find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
        assert address is not None and address.get("location") == stub.endpoint(op)
        assert stub.request("GET", f"/{op}/1/{op}Responder_1.0.xsd")[0] == 200
    assert stub.request("GET", "/core_components/itintegration_engagementindex_1.0.xsd")[0] == 200
    assert stub.request("GET", "/core_components/../../pyproject.toml")[0] == 404
    # A tester can point zeep at the stub's own WSDL URL.
    client = zeep.Client(f"{stub.endpoint('Update')}?wsdl")
    result = client.service.Update(engagementTransaction=[save()], _soapheaders={"LogicalAddress": EI_HSA_ID})
    assert result.ResultCode == "OK"


# -- storage -----------------------------------------------------------------------------------------


def test_create_stores_the_post_with_owner_and_creation_time(stub: Stub, ei: Ei) -> None:
    result = ei.update(save())
    assert result.ResultCode == "OK" and result.comment is None
    (found,) = ei.find()
    assert found.owner == EI_HSA_ID  # set by the index, never by the producer
    assert found.businessObjectInstanceIdentifier == "B1" and found.mostRecentContent == "20301015093000"
    assert len(found.creationTime) == 14 and found.updateTime is None
    assert [e["effect"] for e in stub.state()["log"]] == ["created"]


def test_owner_sent_by_the_producer_is_overwritten(ei: Ei) -> None:
    ei.update(save(owner="SE-SOMEONE-ELSE"))
    (found,) = ei.find()
    assert found.owner == EI_HSA_ID


def test_update_of_most_recent_content_keeps_creation_time(stub: Stub, ei: Ei) -> None:
    ei.update(save())
    (before,) = ei.find()
    ei.update(save(mostRecentContent="20301016140000"))
    (after,) = ei.find()
    assert after.mostRecentContent == "20301016140000"
    assert after.creationTime == before.creationTime
    assert after.updateTime is not None and len(after.updateTime) == 14
    assert [e["effect"] for e in stub.state()["log"]] == ["created", "updated"]


def test_delete_removes_the_post_and_a_missing_key_is_harmless(stub: Stub, ei: Ei) -> None:
    ei.update(save(), save(businessObjectInstanceIdentifier="B2"))
    assert ei.update(delete()).ResultCode == "OK"
    assert [e.businessObjectInstanceIdentifier for e in ei.find()] == ["B2"]
    assert ei.update(delete(businessObjectInstanceIdentifier="NO-SUCH")).ResultCode == "OK"
    log = stub.state()["log"]
    assert [(e["effect"], e["deleteFlag"], e["mostRecentContent"]) for e in log[2:]] == [
        ("deleted", True, None),
        ("absent", True, None),
    ]


def test_identical_resend_is_a_no_op(stub: Stub, ei: Ei) -> None:
    ei.update(save())
    ei.update(save())
    (first,) = ei.find()
    assert first.updateTime is None  # nothing changed, so no updateTime
    ei.update(save(mostRecentContent="20301016140000"))
    (updated,) = ei.find()
    time.sleep(1.1)  # updateTime has whole seconds: a change now would show
    ei.update(save(mostRecentContent="20301016140000"))
    (resent,) = ei.find()
    assert resent.updateTime == updated.updateTime and resent.creationTime == first.creationTime
    assert [e["effect"] for e in stub.state()["log"]] == ["created", "unchanged", "updated", "unchanged"]


def test_deletes_are_applied_before_saves_within_one_call(stub: Stub, ei: Ei) -> None:
    ei.update(save(businessObjectInstanceIdentifier="A"))
    # Rebooking with a new id: the save comes first in the request, EI still deletes first.
    ei.update(save(businessObjectInstanceIdentifier="B"), delete(businessObjectInstanceIdentifier="A"))
    state = stub.state()
    second_call = [e for e in state["log"] if e["call"] == 2]
    assert [(e["key"]["businessObjectInstanceIdentifier"], e["effect"]) for e in second_call] == [
        ("A", "deleted"),
        ("B", "created"),
    ]
    assert second_call[0]["seq"] < second_call[1]["seq"]
    assert list(stored(stub)) == ["B"]
    assert stored(stub)["B"]["history"] == [second_call[1]["seq"]]


def test_categorization_is_part_of_the_key(ei: Ei) -> None:
    # Legacy scheme: an invitation that becomes a booking is delete(Invitation) + create(Booking).
    ei.update(save(categorization="Invitation"))
    ei.update(delete(categorization="Invitation"), save(categorization="Booking"))
    assert [e.categorization for e in ei.find()] == ["Booking"]


# -- faults ------------------------------------------------------------------------------------------


def test_1000_transactions_are_accepted(stub: Stub, ei: Ei) -> None:
    transactions = [save(businessObjectInstanceIdentifier=f"B{i}") for i in range(1000)]
    assert ei.update(*transactions).ResultCode == "OK"
    assert len(stub.state()["posts"]) == 1000


def test_ei000_more_than_1000_transactions(stub: Stub, ei: Ei) -> None:
    transactions = [save(businessObjectInstanceIdentifier=f"B{i}") for i in range(1001)]
    with pytest.raises(Fault) as excinfo:
        ei.update(*transactions)
    assert fault_of(excinfo).startswith("EI000: ")
    assert "more than 1000 engagements" in fault_of(excinfo)
    assert stub.state()["posts"] == []


def test_ei000_no_transactions(stub: Stub) -> None:
    status, body = stub.soap("Update", update_envelope("<u:Update/>"))
    assert status == 500
    faultstring = etree.fromstring(body).findtext(f".//{{{SOAP_ENV}}}Fault/faultstring")
    assert faultstring.startswith("EI000: ") and "less than 1 engagements" in faultstring


@pytest.mark.parametrize(
    "xml",
    [
        pytest.param(b"<soapenv:Envelope", id="not-well-formed"),
        pytest.param(update_envelope("<u:Nonsense/>"), id="wrong-body-element"),
        pytest.param(
            update_envelope(
                "<u:Update><u:engagementTransaction><c:deleteFlag>maybe</c:deleteFlag></u:engagementTransaction></u:Update>"
            ),
            id="schema-invalid",
        ),
    ],
)
def test_ei001_unreadable_requests(stub: Stub, xml: bytes) -> None:
    status, body = stub.soap("Update", xml)
    assert status == 500
    faultstring = etree.fromstring(body).findtext(f".//{{{SOAP_ENV}}}Fault/faultstring")
    assert faultstring.startswith("EI001: ")


def test_ei001_invalid_personnummer_through_zeep(ei: Ei) -> None:
    with pytest.raises(Fault) as excinfo:
        ei.update(save(registeredResidentIdentification="1912121212"))
    assert fault_of(excinfo).startswith("EI001: ")


def test_ei001_recorded_update_with_elements_out_of_schema_order(stub: Stub) -> None:
    # AgP soapUI puts mostRecentContent after dataController; the stub validates against the schema.
    xml = (require_recorded_fixtures() / "Update" / "agp-soapui__Update_198611062384_UllaAlm.xml").read_bytes()
    status, body = stub.soap("Update", xml)
    assert status == 500 and b"EI001: " in body


def test_ei002_same_key_twice_in_one_call(stub: Stub, ei: Ei) -> None:
    with pytest.raises(Fault) as excinfo:
        ei.update(save(businessObjectInstanceIdentifier="X"), save(), save(mostRecentContent="20301231000000"))
    assert fault_of(excinfo).startswith("EI002: EngagementTransaction #2 and #3 have the same key")
    with pytest.raises(Fault) as excinfo:
        ei.update(delete(), save())  # delete + re-create of one key cannot share a call
    assert fault_of(excinfo).startswith("EI002: EngagementTransaction #1 and #2 have the same key")
    assert stub.state()["posts"] == []


def test_ei003_logical_address_must_be_the_index(stub: Stub, ei: Ei) -> None:
    with pytest.raises(Fault) as excinfo:
        ei.update(save(), logical_address=UNIT)
    assert fault_of(excinfo).startswith(
        f"EI003: Invalid routing. Logical address is {UNIT} but the owner is {EI_HSA_ID}"
    )
    with pytest.raises(Fault) as excinfo:
        ei.update(save(), logical_address=None)
    assert fault_of(excinfo).startswith("EI003: Invalid routing. Logical address is missing")
    assert stub.state()["posts"] == []
    assert ei.update(save(), logical_address=ALTERNATIVE_HSA_ID).ResultCode == "OK"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"categorization": " NA"}, 'mandatory field "categorization" contains white space in beginning or end'),
        ({"logicalAddress": UNIT + " "}, 'mandatory field "logicalAddress" contains white space in beginning or end'),
        ({"serviceDomain": "riv:crm:scheduling\t"}, 'mandatory field "serviceDomain" contains white space'),
        ({"dataController": "\nSE232100-0016"}, 'mandatory field "dataController" contains white space'),
        ({"categorization": ""}, 'mandatory field "categorization" is missing'),
        ({"businessObjectInstanceIdentifier": ""}, 'mandatory field "businessObjectInstanceIdentifier" is missing'),
        ({"sourceSystem": ""}, 'mandatory field "sourceSystem" is missing'),
        ({"logicalAddress": "L" * 65}, 'Field "logicalAddress" is to long'),
        ({"sourceSystem": "S" * 65}, 'Field "sourceSystem" is to long'),
        ({"dataController": "D" * 65}, 'Field "dataController" is to long'),
        ({"businessObjectInstanceIdentifier": "B" * 129}, 'Field "businessObjectInstanceIdentifier" is to long'),
        ({"clinicalProcessInterestId": "C" * 129}, 'Field "clinicalProcessInterestId" is to long'),
        ({"categorization": "C" * 256}, 'Field "categorization" is to long'),
        ({"mostRecentContent": "20300231120000"}, 'Field "mostRecentContent"'),  # 31 Feb passes the XSD pattern
        ({"creationTime": "20290229000000"}, 'Field "creationTime"'),  # 2029 is not a leap year
        ({"updateTime": "20300431000000"}, 'Field "updateTime"'),
        ({"mostRecentContent": "20300331023000"}, 'Field "mostRecentContent"'),  # skipped by summer time
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else None,
)
def test_ei004_field_rules(stub: Stub, ei: Ei, fields: dict[str, str], expected: str) -> None:
    with pytest.raises(Fault) as excinfo:
        ei.update(save(businessObjectInstanceIdentifier="OK-1"), save(**fields))
    assert fault_of(excinfo).startswith("EI004: The payload does not validate, error messge: ")
    assert expected in fault_of(excinfo)
    assert stub.state()["posts"] == []  # one bad transaction refuses the whole call


@pytest.mark.parametrize(
    "fields",
    [
        {"logicalAddress": "L" * 64, "sourceSystem": "S" * 64, "dataController": "D" * 64},
        {"businessObjectInstanceIdentifier": "B" * 128, "clinicalProcessInterestId": "C" * 128},
        {"mostRecentContent": "20280229235959", "creationTime": "20280101000000", "updateTime": "20281231235959"},
        {"categorization": "Invitation with inner spaces"},
    ],
    ids=["64", "128", "dates", "inner-spaces"],
)
def test_values_at_the_limits_are_accepted(ei: Ei, fields: dict[str, str]) -> None:
    assert ei.update(save(**fields)).ResultCode == "OK"


def test_ei005_and_ei006_reserved_ids(stub: Stub, ei: Ei) -> None:
    with pytest.raises(Fault) as excinfo:
        ei.update(save(businessObjectInstanceIdentifier="OK-1"), save(logicalAddress=EI_HSA_ID))
    assert fault_of(excinfo) == (
        f"EI005: The logicalAddress in EngagementTransaction #2 is reserved and not allowed, hsa-id: {EI_HSA_ID}"
    )
    with pytest.raises(Fault) as excinfo:
        ei.update(save(sourceSystem=EI_HSA_ID))
    assert fault_of(excinfo) == (
        f"EI006: The sourceSystem in EngagementTransaction #1 is reserved and not allowed, hsa-id: {EI_HSA_ID}"
    )
    assert stub.state()["posts"] == []


def test_rules_are_checked_transaction_by_transaction(ei: Ei) -> None:
    # #1 has a reserved logicalAddress, #2 and #3 share a key: the real EI reports #1 first.
    with pytest.raises(Fault) as excinfo:
        ei.update(save(logicalAddress=EI_HSA_ID), save(), save())
    assert fault_of(excinfo).startswith("EI005: ")


def test_fault_is_a_soap11_fault_with_http_500(stub: Stub) -> None:
    xml = update_envelope(
        "<u:Update><u:engagementTransaction><c:deleteFlag>true</c:deleteFlag><c:engagement>"
        f"<c:registeredResidentIdentification>{RESIDENT}</c:registeredResidentIdentification>"
        "<c:serviceDomain>riv:crm:scheduling</c:serviceDomain><c:categorization>NA</c:categorization>"
        f"<c:logicalAddress>{UNIT}</c:logicalAddress>"
        "<c:businessObjectInstanceIdentifier>B1</c:businessObjectInstanceIdentifier>"
        f"<c:clinicalProcessInterestId>NA</c:clinicalProcessInterestId><c:sourceSystem>{SOURCE_SYSTEM}</c:sourceSystem>"
        "<c:dataController>SE232100-0016</c:dataController></c:engagement></u:engagementTransaction></u:Update>",
        logical_address="WRONG",
    )
    status, body = stub.soap("Update", xml)
    assert status == 500
    fault = etree.fromstring(body).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode").endswith(":Server")
    assert fault.findtext("faultstring").startswith("EI003: Invalid routing. Logical address is WRONG")


# -- FindContent -------------------------------------------------------------------------------------


def test_find_content_filters(ei: Ei) -> None:
    ei.update(
        save(businessObjectInstanceIdentifier="A", categorization="Booking", mostRecentContent="20301015093000"),
        save(
            businessObjectInstanceIdentifier="B",
            categorization="Invitation",
            logicalAddress="SE2321000016-A200",
            mostRecentContent="20301101080000",
        ),
        save(businessObjectInstanceIdentifier="C", registeredResidentIdentification="199001019802"),
        save(businessObjectInstanceIdentifier="D", serviceDomain="riv:clinicalprocess:logistics:logistics"),
        save(businessObjectInstanceIdentifier="E", sourceSystem="SE2321000016-OTHR", dataController="SE999999-9999"),
    )

    def ids(**criteria: Any) -> list[str]:
        return sorted(e.businessObjectInstanceIdentifier for e in ei.find(**criteria))

    assert ids() == ["A", "B", "E"]
    assert ids(registeredResidentIdentification="199001019802") == ["C"]
    assert ids(serviceDomain="riv:clinicalprocess:logistics:logistics") == ["D"]
    assert ids(categorization="Invitation") == ["B"]
    assert ids(logicalAddress="SE2321000016-A200") == ["B"]
    assert ids(businessObjectInstanceIdentifier="A") == ["A"]
    assert ids(clinicalProcessInterestId="NA") == ["A", "B", "E"]
    assert ids(clinicalProcessInterestId="OTHER") == []
    assert ids(mostRecentContent="20301020000000") == ["B"]  # at or after
    assert ids(mostRecentContent="20301101080000") == ["B"]
    assert ids(sourceSystem="SE2321000016-OTHR") == ["E"]
    assert ids(dataController="SE232100-0016") == ["A", "B"]
    assert ids(owner=EI_HSA_ID) == ["A", "B", "E"]
    assert ids(owner="SE-OTHER-EI") == []
    assert ids(registeredResidentIdentification="191111111111") == []


def test_find_content_returns_every_field_in_schema_order(stub: Stub, ei: Ei) -> None:
    ei.update(save())
    ei.update(save(mostRecentContent="20301016140000"))  # so updateTime is set too
    xml = (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:itr="{REGISTRY_NS}" '
        f'xmlns:f="{responder_ns("FindContent")}">'
        f"<soapenv:Header><itr:LogicalAddress>{EI_HSA_ID}</itr:LogicalAddress></soapenv:Header><soapenv:Body>"
        f"<f:FindContent><f:registeredResidentIdentification>{RESIDENT}</f:registeredResidentIdentification>"
        "<f:serviceDomain>riv:crm:scheduling</f:serviceDomain></f:FindContent></soapenv:Body></soapenv:Envelope>"
    ).encode()
    status, body = stub.soap("FindContent", xml)
    assert status == 200
    response = assert_official_response("FindContent", body)
    (engagement,) = response
    assert [etree.QName(c).localname for c in engagement] == [
        "registeredResidentIdentification",
        "serviceDomain",
        "categorization",
        "logicalAddress",
        "businessObjectInstanceIdentifier",
        "clinicalProcessInterestId",
        "mostRecentContent",
        "sourceSystem",
        "creationTime",
        "updateTime",
        "dataController",
        "owner",
    ]


def test_find_content_schema_invalid_is_ei001(stub: Stub) -> None:
    xml = (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:f="{responder_ns("FindContent")}"><soapenv:Body>'
        "<f:FindContent><f:serviceDomain>riv:crm:scheduling</f:serviceDomain></f:FindContent>"
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()
    status, body = stub.soap("FindContent", xml)
    assert status == 500 and b"EI001: " in body


# -- recorded messages and the official response schema ----------------------------------------------


def test_recorded_messages_get_official_responses(stub: Stub) -> None:
    fixtures = require_recorded_fixtures()
    update = (fixtures / "Update" / "skltp-soapui-agp-tidbokning__Update_GSOCS_PatientId1.xml").read_bytes()
    status, body = stub.soap("Update", update)
    assert status == 200, body
    assert assert_official_response("Update", body).findtext(f"{{{responder_ns('Update')}}}ResultCode") == "OK"
    assert len(stub.state()["posts"]) == 3
    find = (fixtures / "FindContent" / "skltp-ei__FindContent.xml").read_bytes()
    status, body = stub.soap("FindContent", find)
    assert status == 200, body
    assert len(assert_official_response("FindContent", body)) == 0  # another resident and domain
    find = find.replace(b"191212121212", b"191001209814").replace(b"TEST-DOMAIN", b"riv:crm:scheduling")
    status, body = stub.soap("FindContent", find)
    assert len(assert_official_response("FindContent", body)) == 3


# -- control -----------------------------------------------------------------------------------------


def test_down_answers_503_without_soap_then_recovers(stub: Stub, ei: Ei) -> None:
    assert stub.control(mode="down", remaining=2)["mode"] == "down"
    with pytest.raises((TransportError, requests.ConnectionError)) as excinfo:
        ei.update(save())
    if isinstance(excinfo.value, TransportError):
        assert excinfo.value.status_code == 503
    assert stub.soap("Update", update_envelope("<u:Update/>")) == (503, b"")
    assert ei.update(save()).ResultCode == "OK"
    state = stub.state()
    assert state["update_calls"] == 3 and len(state["posts"]) == 1
    assert {e["call"] for e in state["log"]} == {3}
    assert state["control"]["mode"] == "ok"


def test_down_applies_to_update_only_unless_asked(stub: Stub, ei: Ei) -> None:
    stub.control(mode="down")
    assert ei.find() == []  # FindContent still answers
    stub.control(mode="down", operations=["FindContent"])
    assert ei.update(save()).ResultCode == "OK"
    with pytest.raises((TransportError, requests.ConnectionError)):
        ei.find()


def test_slow_delays_the_answer_but_not_the_stub(stub: Stub, ei: Ei) -> None:
    stub.control(mode="slow", delay_seconds=1.5, remaining=1)
    outcome: dict[str, Any] = {}

    def call() -> None:
        started = time.monotonic()
        outcome["result"] = ei.update(save())
        outcome["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert stub.request("GET", "/health") == (200, b"ok\n")
    assert time.monotonic() - started < 1.0, "a slow call must not block the stub"
    worker.join(10)
    assert outcome["result"].ResultCode == "OK" and outcome["seconds"] >= 1.5
    started = time.monotonic()
    ei.update(save(businessObjectInstanceIdentifier="B2"))
    assert time.monotonic() - started < 1.0  # remaining=1: back to normal


def test_slow_call_that_times_out_has_still_changed_the_index(stub: Stub) -> None:
    stub.control(mode="slow", delay_seconds=2, remaining=1)
    impatient = Ei(official_client("Update", stub.endpoint("Update"), timeout=0.5), None)
    with pytest.raises(requests.exceptions.Timeout):
        impatient.update(save())
    time.sleep(0.2)
    assert len(stub.state()["posts"]) == 1


def test_fault_n_times_then_ok(stub: Stub, ei: Ei) -> None:
    stub.control(mode="fault", fault_code="EI000", remaining=2)
    for _ in range(2):
        with pytest.raises(Fault) as excinfo:
            ei.update(save())
        assert fault_of(excinfo).startswith("EI000: A technical error has occurred")
    assert stub.api("GET", "control")[1]["mode"] == "ok"
    assert ei.update(save()).ResultCode == "OK"
    state = stub.state()
    assert state["update_calls"] == 3 and [e["call"] for e in state["log"]] == [3]


@pytest.mark.parametrize("code", ["EI000", "EI001", "EI002", "EI003", "EI004", "EI005", "EI006"])
def test_fault_mode_answers_with_the_requested_code(stub: Stub, ei: Ei, code: str) -> None:
    stub.control(mode="fault", fault_code=code)
    for _ in range(2):  # no remaining: until changed
        with pytest.raises(Fault) as excinfo:
            ei.update(save())
        assert fault_of(excinfo).startswith(f"{code}: ")
    assert stub.state()["posts"] == []


def test_control_remaining_counts_down(stub: Stub, ei: Ei) -> None:
    assert stub.control(mode="fault", fault_code="EI004", remaining=3)["remaining"] == 3
    with pytest.raises(Fault):
        ei.update(save())
    assert stub.api("GET", "control")[1]["remaining"] == 2
    assert stub.control(mode="ok") == {
        "mode": "ok",
        "delay_seconds": 0.0,
        "fault_code": None,
        "remaining": None,
        "operations": ["Update"],
    }


@pytest.mark.parametrize(
    "payload",
    [
        {"mode": "broken"},
        {"mode": "fault"},
        {"mode": "fault", "fault_code": "EI999"},
        {"mode": "down", "remaining": 0},
        {"mode": "slow", "delay_seconds": -1},
        {"mode": "down", "operations": ["MakeBooking"]},
        {"mode": "down", "surprise": True},
        b"not json",
        [1, 2],
    ],
)
def test_control_refuses_what_it_does_not_understand(stub: Stub, payload: Any) -> None:
    status, data = stub.api("POST", "control", payload)
    assert status == 400 and data["error"]
    assert stub.api("GET", "control")[1]["mode"] == "ok"


def test_reset_and_state(stub: Stub, ei: Ei) -> None:
    ei.update(save(), save(businessObjectInstanceIdentifier="B2"))
    ei.update(delete(businessObjectInstanceIdentifier="B2"))
    ei.find()
    stub.control(mode="down")
    state = stub.state()
    assert state["update_calls"] == 2 and state["find_content_calls"] == 1
    assert [(e["seq"], e["call"], e["deleteFlag"], e["effect"]) for e in state["log"]] == [
        (1, 1, False, "created"),
        (2, 1, False, "created"),
        (3, 2, True, "deleted"),
    ]
    assert state["log"][0]["key"] == {
        "registeredResidentIdentification": RESIDENT,
        "serviceDomain": "riv:crm:scheduling",
        "categorization": "NA",
        "logicalAddress": UNIT,
        "businessObjectInstanceIdentifier": "B1",
        "sourceSystem": SOURCE_SYSTEM,
        "dataController": "SE232100-0016",
        "owner": EI_HSA_ID,
        "clinicalProcessInterestId": "NA",
    }
    assert state["log"][0]["mostRecentContent"] == "20301015093000"
    (only,) = state["posts"]
    assert only["businessObjectInstanceIdentifier"] == "B1" and only["history"] == [1]
    assert state["control"]["mode"] == "down"
    assert stub.api("POST", "reset", {}) == (200, {"reset": True})
    assert stub.state() == {
        "posts": [],
        "update_calls": 0,
        "find_content_calls": 0,
        "log": [],
        "control": {
            "mode": "ok",
            "delay_seconds": 0.0,
            "fault_code": None,
            "remaining": None,
            "operations": ["Update"],
        },
    }
