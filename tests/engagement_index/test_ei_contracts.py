"""contracts/engagementindex_1.0 (our rendition) versus the official EI 1.0 release TD_ENGAGEMENTINDEX_1_0_R.

Only the Update and FindContent interactions (and the core components) are rendered. The official files live
next to the repository in ../shared/reference-contracts/engagementindex_1.0; the comparison tests are skipped
if that directory is missing. The helpers are those of tests/test_contracts.py (in tests/support/contracts.py):
schemas are compared through xmlschema's component model (every particle, recursively, in order), WSDLs as
parsed trees with QNames resolved.

The one intended difference is the RegisteredResidentIdentificationType (personnummer) pattern, the same
correction as in the skltp-ei copy of the contract; see contracts/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import zeep
from lxml import etree
from support.contracts import (
    PNR_OFFICIAL,
    PNR_OURS,
    PNR_PLACEHOLDER,
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
from xmlschema.validators import XsdComplexType, XsdGroup, XsdSimpleType

REPO = Path(__file__).resolve().parents[2]
OURS = REPO / "contracts" / "engagementindex_1.0"

INTERACTIONS = ("Update", "FindContent")

EI_NS = "urn:riv:itintegration:engagementindex:1"
ITR_NS = "urn:riv:itintegration:registry:1"
RRI_TYPE = f"{{{EI_NS}}}RegisteredResidentIdentificationType"

CORE_XSD = Path("core_components/itintegration_engagementindex_1.0.xsd")
REGISTRY_XSD = Path("core_components/itintegration_registry_1.0.xsd")


def responder_ns(op: str) -> str:
    return f"urn:riv:itintegration:engagementindex:{op}Responder:1"


def interaction_ns(op: str) -> str:
    return f"urn:riv:itintegration:engagementindex:{op}:1:rivtabp21"


def responder_xsd(op: str) -> Path:
    return Path("interactions", f"{op}Interaction", f"{op}Responder_1.0.xsd")


def interaction_wsdl(op: str) -> Path:
    return Path("interactions", f"{op}Interaction", f"{op}Interaction_1.0_RIVTABP21.wsdl")


SCHEMA_FILES = sorted(p for p in contract_files(OURS) if p.suffix == ".xsd")


@pytest.fixture(scope="session")
def official_ei() -> Path:
    """The official release's engagementindex 1.0 folder; without it, the comparison tests skip."""
    return require_official() / "engagementindex_1.0"


@dataclass(frozen=True)
class EiModelDescriber(ModelDescriber):
    """test_contracts.ModelDescriber, with RegisteredResidentIdentificationType as the personnummer type."""

    def simple_type(self, st: XsdSimpleType) -> str:
        text = super().simple_type(st)
        patterns = getattr(st, "patterns", None)
        if st.name == RRI_TYPE and patterns is not None and list(patterns.regexps) == [self.personnummer_pattern]:
            text = text.replace(f"patterns={[self.personnummer_pattern]}", f"patterns={[PNR_PLACEHOLDER]}")
        return text


OURS_MODEL = EiModelDescriber(PNR_OURS)
OFFICIAL_MODEL = EiModelDescriber(PNR_OFFICIAL)


def describe(root: Path, rel: Path, qname: str, describer: EiModelDescriber) -> list[str]:
    return list(describer.element(load_schema(root / rel).maps.elements[qname]))


def describe_type(root: Path, rel: Path, qname: str, describer: EiModelDescriber) -> list[str]:
    xsd_type = load_schema(root / rel).maps.types[qname]
    if xsd_type.is_simple():
        return [describer.simple_type(xsd_type)]
    assert isinstance(xsd_type, XsdComplexType)
    assert isinstance(xsd_type.content, XsdGroup)
    return [f"complex {xsd_type.name}", *describer.group(xsd_type.content, 0, frozenset({str(xsd_type.name)}))]


# --- schema tests ----------------------------------------------------------------------------------------------


def test_same_file_set(official_ei: Path) -> None:
    """Everything official except the ProcessNotification and GetUpdates interactions."""
    rendered = {f"{op}Interaction" for op in INTERACTIONS}
    expected = {p for p in contract_files(official_ei) if p.parts[0] == "core_components" or p.parts[1] in rendered}
    assert len(expected) == 6
    assert contract_files(OURS) == expected


@pytest.mark.parametrize("op", INTERACTIONS)
def test_request_and_response_models_match_official(op: str, official_ei: Path) -> None:
    ours = load_schema(OURS / responder_xsd(op))
    theirs = load_schema(official_ei / responder_xsd(op))
    assert ours.target_namespace == theirs.target_namespace == responder_ns(op)
    for local_name in (op, f"{op}Response"):
        qname = f"{{{responder_ns(op)}}}{local_name}"
        ours_lines = describe(OURS, responder_xsd(op), qname, OURS_MODEL)
        assert ours_lines == describe(official_ei, responder_xsd(op), qname, OFFICIAL_MODEL)
        assert ours_lines[0].startswith(f"element {qname} [1..1] local complex")


@pytest.mark.parametrize("rel", SCHEMA_FILES, ids=str)
def test_all_global_components_match_official(rel: Path, official_ei: Path) -> None:
    """Global element/type names seen from each schema file, and the model of every one of them."""
    ours = load_schema(OURS / rel)
    theirs = load_schema(official_ei / rel)
    assert ours.target_namespace == theirs.target_namespace
    assert user_components(ours) == user_components(theirs)
    elements, types = user_components(ours)
    for qname in elements:
        assert describe(OURS, rel, qname, OURS_MODEL) == describe(official_ei, rel, qname, OFFICIAL_MODEL)
    for qname in types:
        assert describe_type(OURS, rel, qname, OURS_MODEL) == describe_type(official_ei, rel, qname, OFFICIAL_MODEL)


def test_logical_address_header_matches_official(official_ei: Path) -> None:
    qname = f"{{{ITR_NS}}}LogicalAddress"
    ours = describe(OURS, REGISTRY_XSD, qname, OURS_MODEL)
    assert ours == describe(official_ei, REGISTRY_XSD, qname, OFFICIAL_MODEL)
    assert ours[0].startswith(f"element {qname} [1..1] local simple {{{ITR_NS}}}LogicalAddressType")


def child_names(lines: list[str], depth: int) -> list[str]:
    """'name [min..max]' of the particles at one indentation depth ('any' for wildcards)."""
    out = []
    for line in lines:
        if line.startswith("  " * depth) and not line.startswith("  " * depth + " "):
            words = line.split()
            out.append("any " + words[-1] if words[0] == "any" else f"{etree.QName(words[1]).localname} {words[2]}")
    return out


def test_shapes_for_client_and_stub() -> None:
    """The element names, order and cardinality the EI client and stub rely on (independent of the official files)."""
    engagement = [
        "registeredResidentIdentification [1..1]",
        "serviceDomain [1..1]",
        "categorization [1..1]",
        "logicalAddress [1..1]",
        "businessObjectInstanceIdentifier [1..1]",
        "clinicalProcessInterestId [1..1]",
        "mostRecentContent [0..1]",
        "sourceSystem [1..1]",
        "creationTime [0..1]",
        "updateTime [0..1]",
        "dataController [1..1]",
        "owner [0..1]",
        "any [0..*]",
    ]
    update = describe(OURS, responder_xsd("Update"), f"{{{responder_ns('Update')}}}Update", OURS_MODEL)
    assert child_names(update, 2) == ["engagementTransaction [1..*]", "any [0..*]"]
    assert child_names(update, 4) == ["deleteFlag [1..1]", "engagement [1..1]", "any [0..*]"]
    assert child_names(update, 6) == engagement
    # engagementTransaction is in the responder namespace, everything inside it in the core namespace
    assert update[2].split()[1] == f"{{{responder_ns('Update')}}}engagementTransaction"
    assert all(ln.split()[1].startswith(f"{{{EI_NS}}}") for ln in update[4:] if ln.split()[0] == "element")

    response = describe(OURS, responder_xsd("Update"), f"{{{responder_ns('Update')}}}UpdateResponse", OURS_MODEL)
    assert child_names(response, 2) == ["ResultCode [1..1]", "comment [0..1]", "any [0..*]"]
    assert "enumeration=['OK', 'ERROR', 'INFO']" in response[2]

    find = describe(OURS, responder_xsd("FindContent"), f"{{{responder_ns('FindContent')}}}FindContent", OURS_MODEL)
    assert child_names(find, 2) == [
        "registeredResidentIdentification [1..1]",
        "serviceDomain [1..1]",
        "categorization [0..1]",
        "logicalAddress [0..1]",
        "businessObjectInstanceIdentifier [0..1]",
        "clinicalProcessInterestId [0..1]",
        "mostRecentContent [0..1]",
        "sourceSystem [0..1]",
        "dataController [0..1]",
        "owner [0..1]",
        "any [0..*]",
    ]
    found = describe(
        OURS, responder_xsd("FindContent"), f"{{{responder_ns('FindContent')}}}FindContentResponse", OURS_MODEL
    )
    assert child_names(found, 2) == ["engagement [0..*]", "any [0..*]"]
    assert child_names(found, 4) == engagement


# --- personnummer ---------------------------------------------------------------------------------------------


def registered_resident_type(root: Path) -> XsdSimpleType:
    return load_schema(root / CORE_XSD).maps.types[RRI_TYPE]


def test_our_personnummer_pattern() -> None:
    assert_our_personnummer_pattern(registered_resident_type(OURS))


def test_official_personnummer_pattern_is_defective(official_ei: Path) -> None:
    assert_official_personnummer_pattern_is_defective(registered_resident_type(official_ei))


def test_same_pattern_as_the_skltp_ei_variant(official_ei: Path) -> None:
    variant = official_ei.parent / "engagementindex_1.0_skltp-ei-variant"
    if not variant.is_dir():
        pytest.skip(f"skltp-ei variant not found at {variant}")
    assert list(registered_resident_type(variant).patterns.regexps) == [PNR_OURS]


FIND_CONTENT_REQUEST = """\
<FindContent xmlns="urn:riv:itintegration:engagementindex:FindContentResponder:1">
  <registeredResidentIdentification>191212121212</registeredResidentIdentification>
  <serviceDomain>riv:crm:scheduling</serviceDomain>
  <sourceSystem>SE2321000016-TIDB</sourceSystem>
</FindContent>
"""

# Update: engagementTransaction in the responder namespace, its content in the core namespace.
UPDATE_REQUEST = """\
<u:Update xmlns:u="urn:riv:itintegration:engagementindex:UpdateResponder:1"
    xmlns:ei="urn:riv:itintegration:engagementindex:1">
  <u:engagementTransaction>
    <ei:deleteFlag>false</ei:deleteFlag>
    <ei:engagement>
      <ei:registeredResidentIdentification>191212121212</ei:registeredResidentIdentification>
      <ei:serviceDomain>riv:crm:scheduling</ei:serviceDomain>
      <ei:categorization>Booking</ei:categorization>
      <ei:logicalAddress>SE2321000016-A100</ei:logicalAddress>
      <ei:businessObjectInstanceIdentifier>b-1</ei:businessObjectInstanceIdentifier>
      <ei:clinicalProcessInterestId>NA</ei:clinicalProcessInterestId>
      <ei:mostRecentContent>20250301090000</ei:mostRecentContent>
      <ei:sourceSystem>SE2321000016-TIDB</ei:sourceSystem>
      <ei:dataController>SE2321000016-A100</ei:dataController>
    </ei:engagement>
  </u:engagementTransaction>
</u:Update>
"""

REQUESTS = {"FindContent": FIND_CONTENT_REQUEST, "Update": UPDATE_REQUEST}


@pytest.mark.parametrize("op", INTERACTIONS)
def test_requests_with_real_personnummer(op: str) -> None:
    load_schema(OURS / responder_xsd(op)).validate(REQUESTS[op])


@pytest.mark.parametrize("op", INTERACTIONS)
def test_official_rejects_requests_with_real_personnummer(op: str, official_ei: Path) -> None:
    schema = load_schema(official_ei / responder_xsd(op))
    errors = list(schema.iter_errors(REQUESTS[op]))
    assert errors
    assert all("registeredResidentIdentification" in (e.path or "") for e in errors)


# --- WSDL -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", INTERACTIONS)
def test_wsdl_matches_official(op: str, official_ei: Path) -> None:
    assert wsdl_summary(OURS / interaction_wsdl(op)) == wsdl_summary(official_ei / interaction_wsdl(op))


@pytest.mark.parametrize("op", INTERACTIONS)
def test_wsdl_shape(op: str) -> None:
    """RIVTABP21 as used by EI 1.0: LogicalAddress is the only header (no Actor)."""
    tns = interaction_ns(op)
    responder = responder_ns(op)
    summary = wsdl_summary(OURS / interaction_wsdl(op))
    assert summary["name"] == f"{op}Interaction"
    assert summary["targetNamespace"] == tns
    assert summary["types"] == [
        (tns, [(responder, f"{op}Responder_1.0.xsd"), (ITR_NS, "../../core_components/itintegration_registry_1.0.xsd")])
    ]
    assert summary["messages"] == [
        (
            f"{op}Request",
            [("LogicalAddress", f"{{{ITR_NS}}}LogicalAddress", None), ("parameters", f"{{{responder}}}{op}", None)],
        ),
        (f"{op}Response", [("parameters", f"{{{responder}}}{op}Response", None)]),
    ]
    assert_rivtabp21_binding(summary, OURS / interaction_wsdl(op), op, tns, f"{responder}:{op}", ("LogicalAddress",))


@pytest.mark.parametrize("op", INTERACTIONS)
def test_wsdl_loads_in_zeep(op: str) -> None:
    client = zeep.Client(str(OURS / interaction_wsdl(op)))
    operation = client.wsdl.bindings[f"{{{interaction_ns(op)}}}{op}ResponderBinding"].get(op)
    assert operation.soapaction == f"{responder_ns(op)}:{op}"
    assert operation.input.body.qname == f"{{{responder_ns(op)}}}{op}"
    assert operation.output.body.qname == f"{{{responder_ns(op)}}}{op}Response"
    headers = operation.input.header.signature()
    assert "LogicalAddress:" in headers
    assert "actor:" not in headers
    port = client.wsdl.services[f"{op}ResponderService"].ports[f"{op}ResponderPort"]
    assert port.binding_options["address"] == f"http://localhost/{op}/1/rivtabp21"


def test_zeep_builds_a_valid_find_content_request() -> None:
    client = zeep.Client(str(OURS / interaction_wsdl("FindContent")))
    envelope = client.create_message(
        client.service,
        "FindContent",
        registeredResidentIdentification="191212121212",
        serviceDomain="riv:crm:scheduling",
        _soapheaders={"LogicalAddress": "5565594230"},
    )
    header = envelope.find("{http://schemas.xmlsoap.org/soap/envelope/}Header")
    assert [child.tag for child in header] == [f"{{{ITR_NS}}}LogicalAddress"]
    body = envelope.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")[0]
    load_schema(OURS / responder_xsd("FindContent")).validate(body)


# --- files ----------------------------------------------------------------------------------------------------


def our_files() -> list[Path]:
    return sorted(p for p in OURS.rglob("*") if p.is_file())


def test_no_file_is_a_copy_of_an_official_file(official_ei: Path) -> None:
    assert copies(our_files(), official_ei.parent, OURS) == []


def test_file_encoding_and_formatting() -> None:
    files = our_files()
    assert len(files) == 6
    for path in files:
        data = assert_plain_text(path)
        assert_rendition_header(path, data)
        assert b"Licensed to the Apache" not in data and b"Revisionshistorik" not in data, path
