"""GetAllTimeTypes, GetAllCareTypes, GetAllPerformers, GetAllHealthcareFacilities over the demo data.

Every call goes through a zeep client built from the OFFICIAL WSDL, so each answer is also checked
against the official schema. The module's own producer ("catalogue") is never booked on, and the
only data added (a sender-only unit) touches neither demo unit, so their answers stay the demo's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from support import DEMO_RESIDENT, Caller, Official, ProducerServer
from support.official import as_data, client_fault
from support.server import booking_ids_by_kind

from producer.sweden.wall_time import STOCKHOLM, format_dt

A100, A200 = "SE2321000016-A100", "SE2321000016-A200"
P001, P002, P003 = "SE2321000016-P001", "SE2321000016-P002", "SE2321000016-P003"
OTHER_RESIDENT = "198112289874"  # valid, but holds nothing in the demo
BAD_CHECK_DIGIT = "191212121213"  # Tolvan with the wrong check digit
AGENT = ("SE2321000016-N042", "subject_of_care_agent")


@pytest.fixture(scope="module")
def server(start_producer: Callable[..., ProducerServer]) -> ProducerServer:
    return start_producer("catalogue")


@pytest.fixture(scope="module")
def call(official: Official, server: ProducerServer) -> Caller:
    return official.caller(server.base_url)


@pytest.fixture(scope="module")
def demo_ids(server: ProducerServer) -> dict[str, str]:
    with server.connect() as conn:
        return booking_ids_by_kind(conn, DEMO_RESIDENT)


def time_types(call: Caller, unit: str = A100, **body: Any) -> list[tuple[str, str]]:
    response = call("GetAllTimeTypes", unit, healthcare_facility=unit, subject_of_care=DEMO_RESIDENT, **body)
    return [(t.timeTypeId, t.timeTypeName) for t in response.ListOfTimeTypes]


def care_types(call: Caller, unit: str = A100, **body: Any) -> list[tuple[str, str]]:
    response = call("GetAllCareTypes", unit, healthcare_facility=unit, subject_of_care=DEMO_RESIDENT, **body)
    return [(c.careTypeId, c.careTypeName) for c in response.careTypes]


def performers(call: Caller, unit: str = A100, **body: Any) -> list[dict[str, Any]]:
    response = call("GetAllPerformers", unit, healthcare_facility=unit, subject_of_care=DEMO_RESIDENT, **body)
    # _value_1 is the xs:any extension point, empty here
    return [{k: v for k, v in p.items() if k != "_value_1"} for p in as_data(response.performerInfos)]


def facilities(call: Caller, unit: str = A100, resident: str = DEMO_RESIDENT, **body: Any) -> list[tuple[str, str]]:
    response = call("GetAllHealthcareFacilities", unit, healthcare_facility=unit, subject_of_care=resident, **body)
    return [(f.healthcare_facility, f.healthcare_facility_name) for f in response.healthcareFacilityInfos]


# -- GetAllTimeTypes ---------------------------------------------------------------------------------


def test_all_time_types_at_a100_with_names(call: Caller) -> None:
    assert sorted(time_types(call)) == [("LAK", "Läkarbesök"), ("PROV", "Provtagning"), ("SSK", "Sjuksköterskebesök")]


@pytest.mark.parametrize(
    ("unit", "care_type_ids", "expected"),
    [
        (A100, ["ALLM"], {"LAK", "SSK"}),
        (A100, ["LAB"], {"PROV"}),
        (A100, ["ALLM", "LAB"], {"LAK", "SSK", "PROV"}),
        (A100, ["NOSUCH"], set()),
        (A200, [], {"PROV"}),
        (A200, ["LAB"], {"PROV"}),
    ],
)
def test_time_types_filtered_by_care_type(call: Caller, unit: str, care_type_ids: list[str], expected: set) -> None:
    assert {code for code, _ in time_types(call, unit, careTypeIDs=care_type_ids)} == expected


# -- GetAllCareTypes ---------------------------------------------------------------------------------


def test_all_care_types_at_a100(call: Caller) -> None:
    assert sorted(care_types(call)) == [("ALLM", "Allmänmedicin"), ("LAB", "Laboratoriemedicin")]
    assert care_types(call, A200) == [("LAB", "Laboratoriemedicin")]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"timeTypeIDs": ["LAK"]}, {"ALLM"}),
        ({"timeTypeIDs": ["SSK"]}, {"ALLM"}),
        ({"timeTypeIDs": ["PROV"]}, {"LAB"}),
        ({"timeTypeIDs": ["LAK", "PROV"]}, {"ALLM", "LAB"}),
        ({"performer": [P001]}, {"ALLM"}),
        ({"performer": [P002]}, {"ALLM"}),
        ({"performer": [P003]}, set()),  # P003 works at A200
        ({"performer": [P001], "timeTypeIDs": ["PROV"]}, set()),
    ],
)
def test_care_types_filtered(call: Caller, body: dict[str, Any], expected: set) -> None:
    assert {code for code, _ in care_types(call, **body)} == expected


def test_care_types_performer_filter_ignores_hsa_id_case(call: Caller) -> None:
    """HSA-ids compare case-insensitively (A.2)."""
    assert {code for code, _ in care_types(call, performer=[P001.lower()])} == {"ALLM"}


# -- GetAllPerformers --------------------------------------------------------------------------------


def test_all_performers_with_titles_and_names(call: Caller) -> None:
    # The element is `perfomer`, misspelt as in the official contract.
    assert performers(call) == [
        {"perfomer": P001, "firstName": "Anna", "lastName": "Andersson", "title": "Läkare"},
        {"perfomer": P002, "firstName": "Bertil", "lastName": "Berg", "title": "Sjuksköterska"},
    ]
    assert [p["perfomer"] for p in performers(call, A200)] == [P003]
    assert performers(call, A200)[0]["title"] == "Biomedicinsk analytiker"


@pytest.mark.parametrize(
    ("unit", "body", "expected"),
    [
        (A100, {"timeTypeIDs": ["LAK"]}, [P001]),
        (A100, {"timeTypeIDs": ["SSK"]}, [P002]),
        (A100, {"timeTypeIDs": ["LAK", "SSK"]}, [P001, P002]),
        (A100, {"careTypeIDs": ["ALLM"]}, [P001, P002]),
        # PROV at A100 is booked on the resource PROVRUM1, not on a performer.
        (A100, {"careTypeIDs": ["LAB"]}, []),
        (A100, {"timeTypeIDs": ["PROV"]}, []),
        (A200, {"careTypeIDs": ["LAB"]}, [P003]),
        (A100, {"timeTypeIDs": ["LAK"], "careTypeIDs": ["LAB"]}, []),
    ],
)
def test_performers_filtered(call: Caller, unit: str, body: dict[str, Any], expected: list[str]) -> None:
    assert [p["perfomer"] for p in performers(call, unit, **body)] == expected


# -- GetAllHealthcareFacilities ------------------------------------------------------------------------


def test_facilities_without_booking_id_list_the_unit_first(call: Caller) -> None:
    assert facilities(call) == [(A100, "Vårdcentralen Exempel"), (A200, "Provtagningen Exempel")]


def test_facilities_for_the_open_prov_invitation(call: Caller, demo_ids: dict[str, str]) -> None:
    """A PROV invitation at A100 may be booked at A100 or at A200."""
    assert [h for h, _ in facilities(call, bookingId=demo_ids["open_invitation"])] == [A100, A200]


def test_facilities_for_the_lak_booking_are_the_unit_only(call: Caller, demo_ids: dict[str, str]) -> None:
    assert facilities(call, bookingId=demo_ids["booking"]) == [(A100, "Vårdcentralen Exempel")]


def test_facilities_for_the_timed_invitation_at_a200(call: Caller, demo_ids: dict[str, str]) -> None:
    """Asked at A200 (the invitation's own unit), A200 comes first, then its alternative A100."""
    assert [h for h, _ in facilities(call, A200, bookingId=demo_ids["timed_invitation"])] == [A200, A100]


def test_facilities_with_an_unknown_booking_id_is_a_fault(call: Caller) -> None:
    client_fault(lambda: facilities(call, bookingId="B999999"))


def test_facilities_with_another_residents_booking_id_is_a_fault(call: Caller, demo_ids: dict[str, str]) -> None:
    """Tolvan's booking id, quoted by somebody else, must not reveal anything."""
    fault = client_fault(lambda: facilities(call, resident=OTHER_RESIDENT, bookingId=demo_ids["booking"]))
    assert OTHER_RESIDENT not in (fault.message or "")


def test_facilities_with_a_booking_of_another_unit_is_a_fault(call: Caller, demo_ids: dict[str, str]) -> None:
    """The timed PROV invitation belongs to A200; asking A100 about it is an unknown bookingId there."""
    client_fault(lambda: facilities(call, A100, bookingId=demo_ids["timed_invitation"]))


SENDER = "SE2321000016-S100"


@pytest.fixture(scope="module")
def sender_unit(server: ProducerServer) -> Iterator[str]:
    """A screening sender unit: it sends PROV invitations but has no slots; A200 takes the bookings.

    Returns the bookingId of an open invitation it sent to Tolvan. Nothing at A100/A200 changes.
    """
    with server.connect() as conn:
        conn.execute("INSERT INTO care_unit (hsa_id, name) VALUES (%s, 'Screeningenheten')", (SENDER,))
        conn.execute(
            "INSERT INTO care_type (unit_hsa_id, code, name) VALUES (%s, 'LAB', 'Laboratoriemedicin')", (SENDER,)
        )
        conn.execute(
            "INSERT INTO time_type (unit_hsa_id, code, name, duration_minutes, care_type_code)"
            " VALUES (%s, 'PROV', 'Provtagning', 10, 'LAB')",
            (SENDER,),
        )
        conn.execute(
            "INSERT INTO unit_alternative (unit_hsa_id, time_type_code, alternative_hsa_id) VALUES (%s, 'PROV', %s)",
            (SENDER, A200),
        )
        pk = conn.execute(
            "INSERT INTO booking (booking_id, unit_hsa_id, kind, subject_of_care, purpose, time_type_code,"
            " care_type_code, invitation_date, valid_until) VALUES ('pending', %s, 'open_invitation', %s,"
            " 'Screening', 'PROV', 'LAB', current_date, now() + interval '30 days') RETURNING pk",
            (SENDER, DEMO_RESIDENT),
        ).fetchone()[0]
        conn.execute("UPDATE booking SET booking_id = %s WHERE pk = %s", (f"K{pk}", pk))
        yield f"K{pk}"


def test_a_sender_only_unit_lists_only_where_its_invitation_can_be_booked(call: Caller, sender_unit: str) -> None:
    assert [h for h, _ in facilities(call, SENDER, bookingId=sender_unit)] == [A200]


def test_a_sender_only_unit_does_not_list_itself(call: Caller, sender_unit: str) -> None:
    """TKB: the unit must not list itself if it is only a virtual sender unit (it offers no times)."""
    assert [h for h, _ in facilities(call, SENDER)] == [A200]


def test_hsa_ids_in_the_body_compare_case_insensitively(call: Caller) -> None:
    lower = call("GetAllTimeTypes", A100, healthcare_facility=A100.lower(), subject_of_care=DEMO_RESIDENT)
    assert sorted(t.timeTypeId for t in lower.ListOfTimeTypes) == ["LAK", "PROV", "SSK"]


# -- faults common to the query contracts ------------------------------------------------------------


def _window() -> dict[str, str]:
    start = datetime.now(STOCKHOLM).date() + timedelta(days=3)
    return {"startDateInclusive": format_dt(start), "endDateInclusive": format_dt(start + timedelta(days=13))}


QUERY_BODIES: dict[str, Callable[[], dict[str, Any]]] = {
    "GetAllTimeTypes": dict,
    "GetAllCareTypes": dict,
    "GetAllPerformers": dict,
    "GetAllHealthcareFacilities": dict,
    "GetAvailableDates": _window,
    "GetAvailableTimeslots": _window,
    "GetSubjectOfCareSchedule": dict,
}


@pytest.mark.parametrize("operation", QUERY_BODIES)
def test_invalid_personnummer_is_a_client_fault_that_does_not_echo_it(call: Caller, operation: str) -> None:
    body = QUERY_BODIES[operation]()
    fault = client_fault(
        lambda: call(operation, A100, healthcare_facility=A100, subject_of_care=BAD_CHECK_DIGIT, **body)
    )
    shown = f"{fault.message} {fault.detail if fault.detail is not None else ''}"
    assert "personnummer" in shown or "subject_of_care" in shown
    for fragment in (BAD_CHECK_DIGIT, BAD_CHECK_DIGIT[2:], BAD_CHECK_DIGIT[:8] + "-" + BAD_CHECK_DIGIT[8:]):
        assert fragment not in shown


@pytest.mark.parametrize("operation", QUERY_BODIES)
def test_body_unit_other_than_logical_address_is_a_fault(call: Caller, operation: str) -> None:
    body = QUERY_BODIES[operation]()
    fault = client_fault(lambda: call(operation, A100, healthcare_facility=A200, subject_of_care=DEMO_RESIDENT, **body))
    assert "healthcare_facility" in fault.message


# -- agents get the resident's answers (TKB §3.5) ------------------------------------------------------


def _agent_cases(demo_ids: dict[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    window = _window()
    return [
        ("GetAllTimeTypes", A100, {}),
        ("GetAllTimeTypes", A100, {"careTypeIDs": ["ALLM"]}),
        ("GetAllCareTypes", A100, {}),
        ("GetAllCareTypes", A100, {"performer": [P001]}),
        ("GetAllPerformers", A100, {}),
        ("GetAllPerformers", A200, {"timeTypeIDs": ["PROV"]}),
        ("GetAllHealthcareFacilities", A100, {}),
        ("GetAllHealthcareFacilities", A100, {"bookingId": demo_ids["open_invitation"]}),
        ("GetAllHealthcareFacilities", A100, {"bookingId": demo_ids["booking"]}),
        ("GetAvailableDates", A100, {**window, "timeTypeID": "LAK"}),
        ("GetAvailableDates", A200, {**window, "bookingId": demo_ids["open_invitation"]}),
        ("GetAvailableTimeslots", A100, {**window, "timeTypeID": "SSK"}),
        ("GetAvailableTimeslots", A100, {**window, "bookingId": demo_ids["booking"]}),
    ]


def test_agent_gets_the_same_answers_as_the_resident(call: Caller, demo_ids: dict[str, str]) -> None:
    for operation, unit, body in _agent_cases(demo_ids):
        request = {"healthcare_facility": unit, "subject_of_care": DEMO_RESIDENT, **body}
        as_resident = as_data(call(operation, unit, **request))
        as_agent = as_data(call(operation, unit, actor=AGENT, **request))
        assert as_agent == as_resident, (operation, body)
        # a non-empty answer, so that the comparison means something
        assert any(isinstance(v, list) and v for v in as_resident.values()), (operation, body)
