"""Our rendition of EP's OfferInteraction (contracts/offerinteraction_1.0) against seed 000: the
seed's two request examples are valid, each of the seven elements is required, nothing else is
allowed; the answers' shapes from its tables; the namespace is replaceable; the WSDL loads in zeep."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import zeep
from lxml import etree

from egen_provhantering.contract import (
    ADD,
    DEFAULT_NAMESPACE,
    REQUEST_FIELDS,
    UNDO,
    WSDL_PATH,
    Operation,
    namespace_problem,
    schema,
    soap_action,
)

SEED = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "000_cd39a931a59c75c5.txt"
NS = DEFAULT_NAMESPACE
XSI = "http://www.w3.org/2001/XMLSchema-instance"

# The seed's two examples ("Exempel 1", "Exempel 2"), as printed, in the order printed.
EXAMPLE_1 = """
<off:AccessUnitID>SE2321000016-14FM</off:AccessUnitID>
<off:HCProfessionalFirstName>Anna</off:HCProfessionalFirstName>
<off:HCProfessionalID>SE2321000016-3STJ</off:HCProfessionalID>
<off:HCProfessionalLastName>Andersson</off:HCProfessionalLastName>
<off:NotifyResident>true</off:NotifyResident>
<off:PersonalNumber>191212121212</off:PersonalNumber>
<off:UnitOfferID>6</off:UnitOfferID>
"""
EXAMPLE_2 = """
<off:AccessUnitID>SE2321000016-14FM</off:AccessUnitID>
<off:HCProfessionalFirstName>Screeningverksamheten</off:HCProfessionalFirstName>
<off:HCProfessionalID>SE2321000016-RCC1</off:HCProfessionalID>
<off:HCProfessionalLastName>RCC Syd</off:HCProfessionalLastName>
<off:NotifyResident>true</off:NotifyResident>
<off:PersonalNumber>191212121212</off:PersonalNumber>
<off:UnitOfferID>6</off:UnitOfferID>
"""


def request(root: str, fields: str, namespace: str = NS) -> etree._Element:
    return etree.fromstring(f'<off:{root} xmlns:off="{namespace}">{fields}</off:{root}>')


def problem(element: etree._Element, namespace: str = NS) -> str | None:
    return schema(namespace).problem(element, "The message")


def test_the_examples_are_the_seeds_own() -> None:
    """The examples above are copied from the seed, not written to fit the XSD."""
    if not SEED.is_file():
        pytest.skip(f"seed 000 not found at {SEED}")
    text = SEED.read_text(encoding="utf-8")
    for example in (EXAMPLE_1, EXAMPLE_2):
        for line in example.strip().splitlines():
            assert line in text, line


@pytest.mark.parametrize("example", [EXAMPLE_1, EXAMPLE_2], ids=["example 1", "example 2"])
@pytest.mark.parametrize("operation", [ADD, UNDO], ids=lambda op: op.name)
def test_the_seeds_examples_are_valid_requests(example: str, operation: Operation) -> None:
    assert problem(request(operation.request, example)) is None


def test_the_request_elements_are_the_seeds_seven_in_the_examples_order() -> None:
    names = [re.match(r"<off:(\w+)>", line).group(1) for line in EXAMPLE_1.strip().splitlines()]
    assert [name for name, _ in REQUEST_FIELDS] == names


@pytest.mark.parametrize("missing", [name for name, _ in REQUEST_FIELDS])
def test_every_request_element_is_required(missing: str) -> None:
    fields = "".join(line for line in EXAMPLE_1.strip().splitlines() if f"<off:{missing}>" not in line)
    found = problem(request(ADD.request, fields))
    assert found is not None, f"the request without {missing} passed"
    assert "an element is missing" in found or "not expected here" in found, found


def test_an_extra_element_is_refused() -> None:
    found = problem(request(ADD.request, EXAMPLE_1 + "<off:Comment>x</off:Comment>"))
    assert found is not None and "Comment: this element is not expected here" in found, found


def test_a_doubled_element_is_refused() -> None:
    doubled = EXAMPLE_1 + "<off:UnitOfferID>7</off:UnitOfferID>"
    assert problem(request(ADD.request, doubled)) is not None


def test_the_tables_order_is_not_the_wire_order() -> None:
    """The seed's table lists HCProfessionalID before HCProfessionalFirstName; its examples (and a WCF
    DataContract, alphabetical) have it after. The rendition follows the examples."""
    lines = EXAMPLE_1.strip().splitlines()
    swapped = [lines[0], lines[2], lines[1], *lines[3:]]
    assert problem(request(ADD.request, "".join(swapped))) is not None


def test_notify_resident_is_a_boolean() -> None:
    fields = EXAMPLE_1.replace("<off:NotifyResident>true<", "<off:NotifyResident>yes<")
    found = problem(request(ADD.request, fields))
    assert found is not None and "NotifyResident" in found


def test_the_request_in_another_namespace_is_refused() -> None:
    assert problem(request(ADD.request, EXAMPLE_1, "urn:someone:else")) is not None


# -- answers -----------------------------------------------------------------------------------------

RESULT_OK = "<ResultOfCall><HasError>false</HasError></ResultOfCall>"
VALIDATION = (
    "<ValidationErrorList><ValidationError><Container>AddGivenOfferByExternalSystemRequest</Container>"
    "<Element>PersonalNumber</Element><Text>Invånaren finns inte i folkbokföringsregistret.</Text>"
    "</ValidationError></ValidationErrorList>"
)
TECHNICAL = (
    "<TechnicalErrorList><TechnicalError><Header>Fel</Header><Message>Databasen svarar inte</Message>"
    "</TechnicalError></TechnicalErrorList>"
)


def answer(operation: Operation, inner: str, namespace: str = NS) -> etree._Element:
    return etree.fromstring(f'<{operation.response} xmlns="{namespace}" xmlns:i="{XSI}">{inner}</{operation.response}>')


@pytest.mark.parametrize(
    "result",
    [
        RESULT_OK,
        f"<ResultOfCall><HasError>true</HasError>{VALIDATION}</ResultOfCall>",
        f"<ResultOfCall><HasError>true</HasError>{TECHNICAL}</ResultOfCall>",
        f"<ResultOfCall><HasError>true</HasError>{VALIDATION}{TECHNICAL}</ResultOfCall>",
        f"<ResultOfCall><HasError>true</HasError>{TECHNICAL}{VALIDATION}</ResultOfCall>",  # WCF's alphabetical order
        '<ResultOfCall><HasError>false</HasError><ValidationErrorList i:nil="true"/>'
        '<TechnicalErrorList i:nil="true"/></ResultOfCall>',  # WCF's null members
    ],
    ids=["ok", "validation", "technical", "both, table order", "both, alphabetical", "nil lists"],
)
def test_answers_as_the_tables_describe_them_are_valid(result: str) -> None:
    assert (
        problem(
            answer(
                ADD,
                result + "<OfferAlreadyGivenWithinTimeLimitTryLater>false</OfferAlreadyGivenWithinTimeLimitTryLater>",
            )
        )
        is None
    )
    assert problem(answer(UNDO, "<GivenOfferFoundAndDeleted>true</GivenOfferFoundAndDeleted>" + result)) is None


@pytest.mark.parametrize(
    "inner",
    [
        "<OfferAlreadyGivenWithinTimeLimitTryLater>false</OfferAlreadyGivenWithinTimeLimitTryLater>",  # no ResultOfCall
        RESULT_OK,  # no flag
        "<ResultOfCall><ValidationErrorList/></ResultOfCall>"
        "<OfferAlreadyGivenWithinTimeLimitTryLater>false</OfferAlreadyGivenWithinTimeLimitTryLater>",  # no HasError
        RESULT_OK + "<GivenOfferFoundAndDeleted>true</GivenOfferFoundAndDeleted>",  # Undo's flag in Add's answer
        RESULT_OK
        + RESULT_OK
        + "<OfferAlreadyGivenWithinTimeLimitTryLater>false</OfferAlreadyGivenWithinTimeLimitTryLater>",
        "<ResultOfCall><HasError>true</HasError><ValidationErrorList></ValidationErrorList></ResultOfCall>"
        "<OfferAlreadyGivenWithinTimeLimitTryLater>false</OfferAlreadyGivenWithinTimeLimitTryLater>",  # list of 0
        "<ResultOfCall><HasError>true</HasError><TechnicalErrorList><TechnicalError><Header>x</Header>"
        "</TechnicalError></TechnicalErrorList></ResultOfCall>"
        "<OfferAlreadyGivenWithinTimeLimitTryLater>false</OfferAlreadyGivenWithinTimeLimitTryLater>",  # no Message
        RESULT_OK + "<OfferAlreadyGivenWithinTimeLimitTryLater>false</OfferAlreadyGivenWithinTimeLimitTryLater>"
        "<Extra/>",
    ],
    ids=[
        "no ResultOfCall",
        "no flag",
        "no HasError",
        "wrong flag",
        "ResultOfCall twice",
        "empty list",
        "TechnicalError without Message",
        "unknown element",
    ],
)
def test_answers_missing_or_adding_elements_are_refused(inner: str) -> None:
    assert problem(answer(ADD, inner)) is not None


# -- the namespace, SOAPAction and the WSDL ----------------------------------------------------------


def test_the_namespace_is_replaceable() -> None:
    """An operator sets the service's namespace (from the QA ?wsdl); the same rendition then judges it."""
    theirs = "http://schemas.example.se/ep/offer/2021/04"
    assert problem(request(ADD.request, EXAMPLE_1, theirs), theirs) is None
    assert problem(request(ADD.request, EXAMPLE_1, NS), theirs) is not None
    assert soap_action(theirs, ADD) == f"{theirs}/IOfferInteraction/AddGivenOfferByExternalSystem"
    assert soap_action(theirs + "/", UNDO) == f"{theirs}/IOfferInteraction/UndoGivenOfferByExternalSystem"


@pytest.mark.parametrize("bad", ["", "offer", "urn:x y", 'urn:x"', "http://x/<y>", "urn:a&b"])
def test_unusable_namespaces_are_named(bad: str) -> None:
    assert namespace_problem(bad) is not None
    with pytest.raises(ValueError, match="EP namespace"):
        schema(bad)


def test_the_wsdl_loads_in_zeep_with_the_documented_actions() -> None:
    client = zeep.Client(str(WSDL_PATH))
    binding = client.wsdl.bindings[f"{{{NS}}}BasicHttpBinding_IOfferInteraction"]
    for operation in (ADD, UNDO):
        bound = binding.get(operation.name)
        assert bound.soapaction == soap_action(NS, operation)
        assert bound.input.body.qname == etree.QName(NS, operation.request)
        assert bound.output.body.qname == etree.QName(NS, operation.response)
        names = [name for name, _ in bound.input.body.type.elements]
        assert names == [name for name, _ in REQUEST_FIELDS]
