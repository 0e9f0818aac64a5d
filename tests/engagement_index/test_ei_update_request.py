"""The Update request the publisher writes as text (engagement_index.update_request) is, element for
element, what zeep renders from our Update WSDL for the same transactions, and valid by the OFFICIAL
Update schema: also for values that need escaping, surrounding white space and Swedish letters."""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree
from support.ei import CORE_XSD, OFFICIAL, SOAP_ENV, official_schema

from engagement_index.client import BINDING, UPDATE_WSDL
from engagement_index.config import EiSettings
from engagement_index.transactions import Transaction, engagement
from engagement_index.update_request import update_request

SETTINGS = EiSettings()


def post(booking_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "subject_of_care": "191212121212",
        "unit": "SE2321000016-A100",
        "booking_id": booking_id,
        "kind": "booking",
        "most_recent_content": "20301015093000",
    } | changes


TRANSACTIONS = [
    Transaction(True, engagement(post("B1"), SETTINGS, with_content=False)),
    Transaction(False, engagement(post("B2"), SETTINGS, with_content=True)),
    Transaction(False, engagement(post("A&B <1> \"'", kind="invitation"), SETTINGS, with_content=True)),
    Transaction(False, engagement(post(" Öppen\r\ntid\t"), SETTINGS, with_content=True)),
    Transaction(False, engagement(post("K9", most_recent_content=None), SETTINGS, with_content=True)),
]


def zeep_rendering(transactions: list[Transaction], logical_address: str) -> etree._Element:
    import zeep

    client = zeep.Client(str(UPDATE_WSDL))
    service = client.create_service(BINDING, "http://127.0.0.1:1/Update/1/rivtabp21")
    return client.create_message(
        service,
        "Update",
        engagementTransaction=[t.as_zeep() for t in transactions],
        _soapheaders={"LogicalAddress": logical_address},
    )


def shape(element: etree._Element) -> tuple[Any, ...]:
    """An element as names, text and children: what a reader sees, whatever the prefixes."""
    children = tuple(shape(child) for child in element if isinstance(child.tag, str))
    return (element.tag, None if children else (element.text or ""), children)


@pytest.mark.parametrize("logical_address", ["5565594230", "EI & <test>"])
def test_the_request_is_what_zeep_renders_from_the_wsdl(logical_address: str) -> None:
    written = etree.fromstring(update_request(TRANSACTIONS, logical_address))
    assert shape(written) == shape(zeep_rendering(TRANSACTIONS, logical_address))


def test_values_keep_their_characters() -> None:
    """Escaped on the way out, the same characters on the way in (CR included, which a parser
    would otherwise turn into LF)."""
    written = etree.fromstring(update_request(TRANSACTIONS, "5565594230"))
    ids = [e.text for e in written.iter("{urn:riv:itintegration:engagementindex:1}businessObjectInstanceIdentifier")]
    assert ids == ["B1", "B2", "A&B <1> \"'", " Öppen\r\ntid\t", "K9"]


@pytest.mark.skipif(not CORE_XSD.is_file(), reason=f"official EI contract not found at {OFFICIAL}")
def test_the_request_is_valid_by_the_official_schema() -> None:
    written = etree.fromstring(update_request(TRANSACTIONS[:3], "5565594230"))
    (update,) = written.find(f"{{{SOAP_ENV}}}Body")
    schema = official_schema("Update")
    assert schema.validate(update), "\n".join(e.message for e in schema.error_log)
