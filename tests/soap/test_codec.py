"""Property tests of the codec: whatever a handler returns is written as well-formed XML that reads
back to the same values, in schema order, with empty optional fields left out."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from producer.soap.codec import MissingField, ResponseWriter, decode, escape_text
from producer.soap.contract import Contract, TypePlan, load_contract

CONTRACT: Contract = load_contract()
# Text a resident or a clinic could send: any XML 1.0 character, with markup characters favoured.
xml_text = (
    st.text(
        alphabet=st.one_of(
            st.sampled_from("<>&\"'; åäöÅÄÖé\t\n"),
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff"),
        ),
        min_size=1,
        max_size=40,
    )
    .map(lambda s: "".join(c for c in s if c in "\t\n" or ord(c) >= 0x20))
    .filter(lambda s: s.strip() == s and s)
)


def values_for(plan: TypePlan, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    fields = {}
    for field in plan.fields:
        if field.children is not None:
            item: st.SearchStrategy[Any] = values_for(field.children, depth + 1)
        elif field.kind == "bool":
            item = st.booleans()
        else:
            item = xml_text
        if field.many:
            value = st.lists(item, min_size=1 if field.required else 0, max_size=3 if depth == 0 else 2)
        elif field.required:
            value = item
        else:
            value = st.one_of(st.none(), item)
        fields[field.key] = value
    return st.fixed_dictionaries(fields)


def _without_empty(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_empty(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


@pytest.mark.parametrize("name", sorted(CONTRACT.interactions))
def test_response_round_trip(name: str) -> None:
    interaction = CONTRACT.interactions[name]
    writer = ResponseWriter(interaction.response_qname, interaction.response_plan)

    @settings(max_examples=60, deadline=None)
    @given(values_for(interaction.response_plan))
    def round_trip(data: dict[str, Any]) -> None:
        element = etree.fromstring(writer.write(data).encode())
        assert element.tag == interaction.response_qname
        assert decode(element, interaction.response_plan) == _without_empty(data)

    round_trip()


def test_fields_are_written_in_schema_order_whatever_the_dict_order() -> None:
    interaction = CONTRACT.interactions["GetBookingDetails"]
    writer = ResponseWriter(interaction.response_qname, interaction.response_plan)
    detail = {
        "isInvitation": True,
        "message_allowed": False,
        "bookingId": "B1",
        "healthcare_facility": "SE2321000016-A100",
        "startTimeInclusive": "20261123090000",
        "rebooking_allowed": True,
        "cancel_booking_allowed": True,
        "subject_of_care": "191212121212",
        "purpose": "",
    }
    element = etree.fromstring(writer.write({"timeslotDetail": detail}).encode())
    local_names = [etree.QName(child).localname for child in element[0]]
    assert local_names == [
        "startTimeInclusive",
        "healthcare_facility",
        "bookingId",
        "subject_of_care",
        "cancel_booking_allowed",
        "rebooking_allowed",
        "message_allowed",
        "isInvitation",
    ]
    assert etree.QName(element[0][-1]).namespace == "urn:riv:crm:scheduling:1.1"
    assert interaction.validator is not None


def test_a_missing_required_field_is_a_programming_error_not_silent_output() -> None:
    interaction = CONTRACT.interactions["MakeBooking"]
    writer = ResponseWriter(interaction.response_qname, interaction.response_plan)
    with pytest.raises(MissingField, match="resultCode"):
        writer.write({"bookingId": "B1"})


@given(st.text(max_size=50))
def test_escaped_text_is_always_well_formed_element_content(text: str) -> None:
    element = etree.fromstring(f"<a>{escape_text(text)}</a>".encode())
    kept = "".join(
        c for c in text if c in "\t\n\r" or (0x20 <= ord(c) < 0xD800) or (0xE000 <= ord(c) < 0xFFFE) or ord(c) > 0xFFFF
    )
    assert (element.text or "") == kept


def test_request_decoding_ignores_unknown_extensions_and_keeps_repeats() -> None:
    interaction = CONTRACT.interactions["GetAllTimeTypes"]
    body = etree.fromstring(
        b'<r:GetAllTimeTypes xmlns:r="urn:riv:crm:scheduling:GetAllTimeTypesResponder:1"'
        b' xmlns:e="urn:riv:crm:scheduling:GetAllTimeTypesResponder:1.1" xmlns:x="urn:example:future">'
        b"<r:healthcare_facility> SE2321000016-A100 </r:healthcare_facility>"
        b"<e:careTypeIDs>ALLM</e:careTypeIDs><e:careTypeIDs>LAB</e:careTypeIDs>"
        b"<e:subject_of_care>191212121212</e:subject_of_care><x:future>ignored</x:future>"
        b"</r:GetAllTimeTypes>"
    )
    assert interaction.validator.validate(body)
    assert decode(body, interaction.request_plan) == {
        "healthcare_facility": "SE2321000016-A100",
        "careTypeIDs": ["ALLM", "LAB"],
        "subject_of_care": "191212121212",
    }
