"""contracts/ (our rendition) versus the official crm:scheduling 1.1 release TD_SCHEDULING_1_1_1_R.

The official files live next to the repository in ../shared/reference-contracts/crm_scheduling_1.1.
Schemas are compared through xmlschema's component model (not as text): every particle of every
request/response/header element, recursively, in order. WSDLs are compared as parsed lxml trees
with all QName-valued attributes resolved, so prefixes and formatting do not matter (the helpers
are in tests/support/contracts.py).

The one intended difference is the SubjectOfCareIdType (personnummer) pattern, see contracts/README.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import xmlschema
import zeep
from support.contracts import (
    PNR_OFFICIAL,
    PNR_OURS,
    SUBJECT_OF_CARE_ID_TYPE,
    ModelDescriber,
    assert_official_personnummer_pattern_is_defective,
    assert_our_personnummer_pattern,
    assert_plain_text,
    assert_rendition_header,
    assert_rivtabp21_binding,
    contract_files,
    copies,
    load_schema,
    user_components,
    wsdl_summary,
)
from support.reference import require_official
from xmlschema.validators import XsdSimpleType

from producer.soap.scheduling import INTERACTIONS

REPO = Path(__file__).resolve().parents[2]
OURS_ROOT = REPO / "contracts"
OURS = OURS_ROOT / "crm_scheduling_1.1"

CORE_NS = "urn:riv:crm:scheduling:1"
CORE_EXT_NS = "urn:riv:crm:scheduling:1.1"
IH_NS = "urn:riv:interoperability:headers:1"
ITR_NS = "urn:riv:itintegration:registry:1"

CORE_XSD = Path("core_components/crm_scheduling_1.1.xsd")
HEADERS_XSD = Path("core_components/interoperability_headers_1.0.xsd")
REGISTRY_XSD = Path("core_components/itintegration_registry_1.0.xsd")


def responder_xsd(op: str) -> Path:
    return Path("interactions", f"{op}Interaction", f"{op}Responder_1.1.xsd")


def interaction_wsdl(op: str) -> Path:
    return Path("interactions", f"{op}Interaction", f"{op}Interaction_1.1_RIVTABP21.wsdl")


SCHEMA_FILES = sorted(p for p in contract_files(OURS) if p.suffix == ".xsd")


@pytest.fixture(scope="session")
def official() -> Path:
    """The official release's crm:scheduling 1.1 folder; without it, the comparison tests skip."""
    return require_official() / "crm_scheduling_1.1"


OURS_MODEL = ModelDescriber(PNR_OURS)
OFFICIAL_MODEL = ModelDescriber(PNR_OFFICIAL)


def describe_element(schema: xmlschema.XMLSchema10, qname: str, describer: ModelDescriber) -> list[str]:
    return list(describer.element(schema.maps.elements[qname]))


# --- schema tests ----------------------------------------------------------------------------------------------


def test_same_file_set(official: Path) -> None:
    assert contract_files(OURS) == contract_files(official)


@pytest.mark.parametrize("op", INTERACTIONS)
def test_request_and_response_models_match_official(op: str, official: Path) -> None:
    ours = load_schema(OURS / responder_xsd(op))
    theirs = load_schema(official / responder_xsd(op))
    namespace = f"urn:riv:crm:scheduling:{op}Responder:1"
    assert ours.target_namespace == theirs.target_namespace == namespace
    for local_name in (op, f"{op}Response"):
        qname = f"{{{namespace}}}{local_name}"
        assert describe_element(ours, qname, OURS_MODEL) == describe_element(theirs, qname, OFFICIAL_MODEL)


@pytest.mark.parametrize("rel", SCHEMA_FILES, ids=str)
def test_all_global_components_match_official(rel: Path, official: Path) -> None:
    """All global element/type names seen from each schema file, and the model of every global element."""
    ours = load_schema(OURS / rel)
    theirs = load_schema(official / rel)
    assert ours.target_namespace == theirs.target_namespace
    assert user_components(ours) == user_components(theirs)
    elements, _ = user_components(ours)
    for qname in elements:
        assert describe_element(ours, qname, OURS_MODEL) == describe_element(theirs, qname, OFFICIAL_MODEL)


@pytest.mark.parametrize(
    ("rel", "qname"),
    [(HEADERS_XSD, f"{{{IH_NS}}}Actor"), (REGISTRY_XSD, f"{{{ITR_NS}}}LogicalAddress")],
    ids=["Actor", "LogicalAddress"],
)
def test_header_elements_match_official(rel: Path, qname: str, official: Path) -> None:
    ours = describe_element(load_schema(OURS / rel), qname, OURS_MODEL)
    assert ours == describe_element(load_schema(official / rel), qname, OFFICIAL_MODEL)
    assert ours[0].startswith(f"element {qname} [1..1]")


def test_namespace_layout_of_a_timeslot() -> None:
    """TimeslotType children live in the core namespace, except isInvitation (1.1 ext); no wildcard."""
    lines = describe_element(
        load_schema(OURS / responder_xsd("GetBookingDetails")),
        "{urn:riv:crm:scheduling:GetBookingDetailsResponder:1}GetBookingDetailsResponse",
        OURS_MODEL,
    )
    # depth 0 GetBookingDetailsResponse, 1 sequence, 2 timeslotDetail, 3 sequence, 4 TimeslotType particles
    timeslot = [ln.strip() for ln in lines if ln.startswith(" " * 8) and not ln.startswith(" " * 9)]
    assert len(timeslot) == 20
    assert timeslot[0].startswith(f"element {{{CORE_NS}}}startTimeInclusive [0..1] local")
    assert timeslot[-1].startswith(f"element {{{CORE_EXT_NS}}}isInvitation [0..1] ref")
    assert not any(ln.startswith("any ") for ln in timeslot)


# --- personnummer ---------------------------------------------------------------------------------------------


def subject_of_care_id_type(root: Path) -> XsdSimpleType:
    return load_schema(root / CORE_XSD).maps.types[SUBJECT_OF_CARE_ID_TYPE]


def test_our_personnummer_pattern() -> None:
    assert_our_personnummer_pattern(subject_of_care_id_type(OURS))


def test_official_personnummer_pattern_is_defective(official: Path) -> None:
    assert_official_personnummer_pattern_is_defective(subject_of_care_id_type(official))


GET_SCHEDULE_REQUEST = """\
<GetSubjectOfCareSchedule xmlns="urn:riv:crm:scheduling:GetSubjectOfCareScheduleResponder:1">
  <healthcare_facility>SE2321000016-1234</healthcare_facility>
  <subject_of_care>191212121212</subject_of_care>
</GetSubjectOfCareSchedule>
"""

# Three namespaces in one request: the responder's (top-level children), the core one (children of
# TimeslotType/SubjectOfCareType, declared in crm_scheduling_1.1.xsd) and the 1.1 ext one (firstName etc.).
MAKE_BOOKING_REQUEST = """\
<mb:MakeBooking xmlns:mb="urn:riv:crm:scheduling:MakeBookingResponder:1"
    xmlns:c="urn:riv:crm:scheduling:1" xmlns:x="urn:riv:crm:scheduling:1.1">
  <mb:healthcare_facility_med>SE2321000016-1234</mb:healthcare_facility_med>
  <mb:requestedTimeslot>
    <c:startTimeInclusive>20250301090000</c:startTimeInclusive>
    <c:endTimeExclusive>20250301093000</c:endTimeExclusive>
    <c:healthcare_facility>SE2321000016-1234</c:healthcare_facility>
    <c:subject_of_care>191212121212</c:subject_of_care>
    <x:isInvitation>false</x:isInvitation>
  </mb:requestedTimeslot>
  <mb:subject_of_care_info>
    <c:phone>070-1234567</c:phone>
    <x:firstName>Tolvan</x:firstName>
    <x:lastName>Tolvansson</x:lastName>
  </mb:subject_of_care_info>
</mb:MakeBooking>
"""


@pytest.mark.parametrize(
    ("op", "document"), [("GetSubjectOfCareSchedule", GET_SCHEDULE_REQUEST), ("MakeBooking", MAKE_BOOKING_REQUEST)]
)
def test_requests_with_real_personnummer(op: str, document: str) -> None:
    load_schema(OURS / responder_xsd(op)).validate(document)


def test_official_rejects_request_with_real_personnummer(official: Path) -> None:
    schema = load_schema(official / responder_xsd("GetSubjectOfCareSchedule"))
    assert not schema.is_valid(GET_SCHEDULE_REQUEST)


# --- WSDL -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", INTERACTIONS)
def test_wsdl_matches_official(op: str, official: Path) -> None:
    assert wsdl_summary(OURS / interaction_wsdl(op)) == wsdl_summary(official / interaction_wsdl(op))


@pytest.mark.parametrize("op", INTERACTIONS)
def test_wsdl_shape(op: str) -> None:
    """The RIVTABP21 conventions, stated explicitly (independent of the official files)."""
    tns = f"urn:riv:crm:scheduling:{op}:1:rivtabp21"
    responder = f"urn:riv:crm:scheduling:{op}Responder:1"
    summary = wsdl_summary(OURS / interaction_wsdl(op))
    assert summary["name"] == f"{op}Interaction"
    assert summary["targetNamespace"] == tns
    assert summary["types"] == [
        (
            tns,
            [
                (responder, f"{op}Responder_1.1.xsd"),
                (ITR_NS, "../../core_components/itintegration_registry_1.0.xsd"),
                (IH_NS, "../../core_components/interoperability_headers_1.0.xsd"),
            ],
        )
    ]
    assert [name for name, _ in summary["messages"]] == [f"{op}Request", f"{op}Response"]
    request_parts = {name: element for name, element, _ in summary["messages"][0][1]}
    assert request_parts == {
        "LogicalAddress": f"{{{ITR_NS}}}LogicalAddress",
        "actor": f"{{{IH_NS}}}Actor",
        "parameters": f"{{{responder}}}{op}",
    }
    assert summary["messages"][1] == (f"{op}Response", [("parameters", f"{{{responder}}}{op}Response", None)])
    assert_rivtabp21_binding(
        summary,
        OURS / interaction_wsdl(op),
        op,
        tns,
        f"urn:riv:crm:scheduling:{op}Responder:1:{op}",
        ("LogicalAddress", "actor"),
    )


@pytest.mark.parametrize("op", INTERACTIONS)
def test_wsdl_loads_in_zeep(op: str) -> None:
    tns = f"urn:riv:crm:scheduling:{op}:1:rivtabp21"
    client = zeep.Client(str(OURS / interaction_wsdl(op)))
    operation = client.wsdl.bindings[f"{{{tns}}}{op}ResponderBinding"].get(op)
    assert operation.soapaction == f"urn:riv:crm:scheduling:{op}Responder:1:{op}"
    assert operation.input.body.qname == f"{{urn:riv:crm:scheduling:{op}Responder:1}}{op}"
    headers = operation.input.header.signature()
    assert "LogicalAddress:" in headers
    assert "actor:" in headers
    port = client.wsdl.services[f"{op}ResponderService"].ports[f"{op}ResponderPort"]
    assert port.binding_options["address"] == f"http://localhost/{op}/1/rivtabp21"


# --- files ----------------------------------------------------------------------------------------------------


def our_files() -> list[Path]:
    return sorted(p for p in OURS_ROOT.rglob("*") if p.is_file())


def test_no_file_is_a_copy_of_an_official_file(official: Path) -> None:
    assert copies(our_files(), official.parent, OURS_ROOT) == []


def test_file_encoding_and_formatting() -> None:
    files = our_files()
    assert len(files) >= 30
    for path in files:
        data = assert_plain_text(path)
        if path.suffix in {".xsd", ".wsdl"}:
            assert_rendition_header(path, data)
