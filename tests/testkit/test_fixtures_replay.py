"""Record and replay (`TIDBOK_RECORD_DIR`, `tidbok fixtures replay`): what a producer records, replayed
against a reset demo, gets the same answers; next month's demo week too (dates moved); differences,
faults and masked personnummer are reported on one line each. Real producers, real HTTP, the CLI.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from support import DEMO_RESIDENT, Caller, Official, ProducerServer, envelope, reference, run_cli, soap_post
from support.calendar import today

A100 = "SE2321000016-A100"
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
LINE = re.compile(r"^(ok|FAIL|skip) +(\S+) +(\S+?)(?:: (.*))?$")


def replay(directory: Path, server: ProducerServer, *args: str) -> tuple[int, list[tuple[str, ...]], str]:
    """`tidbok fixtures replay`: exit status, the fixture lines as (verdict, outcome, name, detail), the output."""
    result = run_cli(["fixtures", "replay", str(directory), "--url", server.base_url, *args], {}, check=False)
    lines = [LINE.match(line) for line in result.stdout.splitlines()]
    parsed = [tuple(m.group(1, 2, 3)) + (m.group(4) or "",) for m in lines if m]
    return result.returncode, parsed, result.stdout + result.stderr


def reset(server: ProducerServer, *args: str) -> None:
    run_cli(["demo", "reset", *args], {"DATABASE_URL": server.database_url})


def pairs(directory: Path) -> list[tuple[Path, Path]]:
    requests = sorted(directory.glob("*__request.xml"))
    return [(r, r.with_name(r.name.replace("__request.xml", "__response.xml"))) for r in requests]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recorded")


@pytest.fixture(scope="module")
def recorder(start_producer: Callable[..., ProducerServer], recorded: Path) -> ProducerServer:
    """A producer that records every call; nobody else calls it."""
    return start_producer("recorder", {"TIDBOK_RECORD_DIR": str(recorded)})


def mondays() -> set[date]:
    return {day - timedelta(days=day.weekday()) for day in (today(),)}


@pytest.fixture(scope="module")
def flow(
    recorder: ProducerServer, recorded: Path, official: Official, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[tuple[str, int, bytes]]]:
    """A resident's flow through the recording producer: times, book, details, cancel, and a fault.
    SSK: the demo resident holds the one upcoming LAK booking the demo allows (B1).
    Returns a copy of what was recorded (the producer goes on recording the replays) and what the
    client got: (interaction, HTTP status, body) per call."""
    call: Caller = official.caller(recorder.base_url)
    first = today() + timedelta(days=2)  # changeable: 24 hours' notice
    window = {"startDateInclusive": f"{first:%Y%m%d}", "endDateInclusive": f"{first + timedelta(days=6):%Y%m%d}"}
    got = []

    def post(interaction: str, body: str) -> Any:
        status, _headers, data = soap_post(recorder.base_url, interaction, envelope(A100, body))
        got.append((interaction, status, data))
        return etree.fromstring(data, PARSER)

    ns = "urn:riv:crm:scheduling:{}Responder:1"
    times = post(
        "GetAvailableTimeslots",
        f'<r:GetAvailableTimeslots xmlns:r="{ns.format("GetAvailableTimeslots")}"'
        f' xmlns:x="{ns.format("GetAvailableTimeslots")}.1"><r:healthcare_facility>{A100}</r:healthcare_facility>'
        f"<r:startDateInclusive>{window['startDateInclusive']}</r:startDateInclusive>"
        f"<r:endDateInclusive>{window['endDateInclusive']}</r:endDateInclusive><r:timeTypeID>SSK</r:timeTypeID>"
        f"<x:subject_of_care>{DEMO_RESIDENT}</x:subject_of_care></r:GetAvailableTimeslots>",
    )
    slot = times.find(".//{*}timeslotDetail")
    value = {child.tag.split("}")[1]: child.text for child in slot}
    booked = post(
        "MakeBooking",
        f'<r:MakeBooking xmlns:r="{ns.format("MakeBooking")}" xmlns:c="urn:riv:crm:scheduling:1"'
        ' xmlns:e="urn:riv:crm:scheduling:1.1">'
        f"<r:healthcare_facility_med>{A100}</r:healthcare_facility_med><r:requestedTimeslot>"
        f"<c:startTimeInclusive>{value['startTimeInclusive']}</c:startTimeInclusive>"
        f"<c:endTimeExclusive>{value['endTimeExclusive']}</c:endTimeExclusive>"
        f"<c:healthcare_facility>{A100}</c:healthcare_facility><c:performer>{value['performer']}</c:performer>"
        f"<c:bookingId>{value['bookingId']}</c:bookingId><c:subject_of_care>{DEMO_RESIDENT}</c:subject_of_care>"
        "<c:timeTypeID>SSK</c:timeTypeID></r:requestedTimeslot><r:subject_of_care_info>"
        "<e:firstName>Tolvan</e:firstName><e:lastName>Tolvansson</e:lastName></r:subject_of_care_info></r:MakeBooking>",
    )
    booking_id = booked.findtext(".//{*}bookingId")
    assert booked.findtext(".//{*}resultCode") == "OK" and booking_id
    details = f'<r:GetBookingDetails xmlns:r="{ns.format("GetBookingDetails")}"><r:healthcare_facility>{A100}'
    post(
        "GetBookingDetails",
        f"{details}</r:healthcare_facility><r:bookingId>{booking_id}</r:bookingId></r:GetBookingDetails>",
    )
    cancel = f'<r:CancelBooking xmlns:r="{ns.format("CancelBooking")}"><r:healthcare_facility>{A100}'
    post("CancelBooking", f"{cancel}</r:healthcare_facility><r:bookingId>{booking_id}</r:bookingId></r:CancelBooking>")
    post(
        "GetBookingDetails",
        f"{details}</r:healthcare_facility><r:bookingId>B999999</r:bookingId></r:GetBookingDetails>",
    )
    assert got[-1][1] == 500  # the unknown booking: a fault, recorded too
    call("GetAllTimeTypes", A100, healthcare_facility=A100, subject_of_care=DEMO_RESIDENT)  # through zeep, too
    copy = tmp_path_factory.mktemp("flow")
    for request, response in pairs(recorded):
        shutil.copy(request, copy)
        shutil.copy(response, copy)
    return copy, got


def test_every_call_is_recorded_as_a_pair_in_call_order(flow: tuple[Path, list[tuple[str, int, bytes]]]) -> None:
    recorded, got = flow
    found = pairs(recorded)
    named = [re.fullmatch(r"[0-9T.]+Z-[0-9]+-[0-9]{6}-(\w+?)_v1\.1-envelope__request\.xml", r.name) for r, _ in found]
    assert all(named), [r.name for r, _ in found]
    assert [m.group(1) for m in named if m] == [
        "GetAvailableTimeslots", "MakeBooking", "GetBookingDetails", "CancelBooking", "GetBookingDetails",
        "GetAllTimeTypes",
    ]  # fmt: skip
    for (request, response), (interaction, _status, body) in zip(found, got, strict=False):
        assert response.read_bytes() == body  # the answer exactly as the client got it
        text = request.read_text(encoding="utf-8")
        mark = re.search(rf"<!-- tidbok-record interaction={interaction} recorded=\S+ demo-week=(\S+) -->", text)
        assert mark and date.fromisoformat(mark.group(1)) in mondays(), text[:300]
        assert DEMO_RESIDENT in text  # not masked unless asked
    assert not list(found[0][0].parent.glob(".*"))


def test_a_reset_demo_answers_a_recorded_flow_the_same(flow: tuple[Path, Any], recorder: ProducerServer) -> None:
    """The point of the fixed demo: the booking gets the same id, the slots are the same."""
    recorded, _got = flow
    reset(recorder)
    status, lines, output = replay(recorded, recorder)
    assert status == 0, output
    assert [(v, o) for v, o, _n, _d in lines] == [("ok", "same")] * 6, output
    assert output.strip().endswith("all as expected"), output


def test_next_months_demo_answers_it_the_same_with_the_dates_moved(
    flow: tuple[Path, Any], recorder: ProducerServer
) -> None:
    recorded, _got = flow
    later = today() + timedelta(days=28)
    reset(recorder, "--date", later.isoformat())
    try:
        status, lines, output = replay(recorded, recorder, "--date", later.isoformat(), "--verbose")
        assert status == 0, output
        assert "date(s) moved +28 days" in output
        assert [(v, o) for v, o, _n, _d in lines] == [("ok", "same")] * 6, output
        # without the demo week, the old dates are sent: no slots of this week in a demo four weeks on
        status, lines, output = replay(recorded, recorder)
        assert status == 1 and ("FAIL", "differs") in [(v, o) for v, o, _n, _d in lines], output
    finally:
        reset(recorder)


def test_a_difference_is_reported_at_the_first_element_that_differs(
    flow: tuple[Path, Any], recorder: ProducerServer, tmp_path: Path
) -> None:
    copy = tmp_path / "edited"
    shutil.copytree(flow[0], copy)
    _request, response = pairs(copy)[2]  # GetBookingDetails
    response.write_text(response.read_text(encoding="utf-8").replace("Bertil", "Berit"), encoding="utf-8")
    reset(recorder)
    status, lines, output = replay(copy, recorder)
    assert status == 1, output
    verdict, outcome, _name, detail = lines[2]
    assert (verdict, outcome) == ("FAIL", "differs")
    where = "GetBookingDetailsResponse/timeslotDetail/performerName"
    assert f"{where}: recorded 'Sjuksköterska Berit Berg'" in detail, detail
    assert "got 'Sjuksköterska Bertil Berg'" in detail, detail
    rules = tmp_path / "rules.toml"
    rules.write_text('ignore = ["timeslotDetail/performerName"]\n', encoding="utf-8")
    reset(recorder)
    status, lines, output = replay(copy, recorder, "--rules", str(rules))
    assert status == 0, output


def test_replay_masks_personnummer_in_what_it_prints(
    flow: tuple[Path, Any], recorder: ProducerServer, tmp_path: Path
) -> None:
    copy = tmp_path / "edited"
    shutil.copytree(flow[0], copy)
    _request, response = pairs(copy)[2]
    response.write_text(response.read_text(encoding="utf-8").replace(DEMO_RESIDENT, "191212121213"), encoding="utf-8")
    reset(recorder)
    _status, _lines, output = replay(copy, recorder)
    assert "191212121213" in output
    reset(recorder)
    status, lines, output = replay(copy, recorder, "--mask")
    assert status == 1 and lines[2][1] == "differs", output
    assert "19121212-****" in output and "191212121213" not in output and DEMO_RESIDENT not in output


def test_rules_can_expect_a_fault(flow: tuple[Path, Any], recorder: ProducerServer, tmp_path: Path) -> None:
    """An unpaired request is expected to get an answer; the rules file can expect a fault instead."""
    unpaired = tmp_path / "unpaired"
    unpaired.mkdir()
    request, _response = pairs(flow[0])[4]  # the unknown booking
    shutil.copy(request, unpaired / "unknown-booking.xml")
    status, lines, output = replay(unpaired, recorder)
    assert status == 1 and lines == [("FAIL", "fault", "unknown-booking.xml", lines[0][3])], output
    rules = tmp_path / "rules.toml"
    expect = '[[expect]]\nfixtures = "unknown-*"\noutcome = "fault"\nfault_contains = "{}"\n'
    rules.write_text(expect.format("No booking or invitation"), "utf-8")
    status, lines, output = replay(unpaired, recorder, "--rules", str(rules))
    assert status == 0 and lines[0][:2] == ("ok", "fault"), output
    rules.write_text(expect.format("another fault"), "utf-8")
    status, lines, output = replay(unpaired, recorder, "--rules", str(rules))
    assert status == 1 and lines[0][:2] == ("FAIL", "fault"), output


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("ignore = 3\n", "ignore must be a list of strings"),
        ('[[expect]]\nfixtures = "*"\noutcome = "maybe"\n', "outcome must be one of same, answer, fault"),
        ("oops = [\n", "is not valid TOML"),
        ("colour = 1\n", "unknown setting colour"),
    ],
)
def test_a_bad_rules_file_is_named(tmp_path: Path, recorder: ProducerServer, text: str, named: str) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(text, encoding="utf-8")
    status, _lines, output = replay(tmp_path, recorder, "--rules", str(rules))
    assert status == 2 and named in output and str(rules) in output, output


def test_placeholders_and_the_demo_week(tmp_path: Path, recorder: ProducerServer) -> None:
    """${name} from the variables file, ${monday+N…} from the demo week; a name without a value is not sent."""
    reset(recorder)
    monday = today() - timedelta(days=today().weekday())
    body = (
        '<r:GetAvailableTimeslots xmlns:r="urn:riv:crm:scheduling:GetAvailableTimeslotsResponder:1"'
        ' xmlns:x="urn:riv:crm:scheduling:GetAvailableTimeslotsResponder:1.1">'
        "<r:healthcare_facility>${unit}</r:healthcare_facility>"
        "<r:startDateInclusive>${monday+7}</r:startDateInclusive><r:endDateInclusive>${monday+7}</r:endDateInclusive>"
        "<r:timeTypeID>LAK</r:timeTypeID><x:subject_of_care>${who}</x:subject_of_care></r:GetAvailableTimeslots>"
    )
    (tmp_path / "times.xml").write_bytes(envelope("${unit}", body))
    status, lines, output = replay(tmp_path, recorder)
    assert status == 1 and lines[0][1] == "unsent" and "${unit}, ${who}" in lines[0][3], output
    variables = tmp_path / "vars.toml"
    variables.write_text(f'unit = "{A100}"\nwho = "{DEMO_RESIDENT}"\n', encoding="utf-8")
    status, lines, output = replay(tmp_path, recorder, "--vars", str(variables), "--verbose")
    assert status == 0, output
    assert f"${{monday+7}} → {monday + timedelta(days=7):%Y%m%d}" in output
    assert "20 timeslotDetail" in lines[0][3]  # next Monday: 21 LAK slots, one of them the demo's booking B1


def test_a_foreign_envelope_is_addressed_to_the_demo(tmp_path: Path, recorder: ProducerServer) -> None:
    """LogicalAddress, facility and Actor from another platform's test suite are substituted, and said so."""
    body = (
        '<r:GetSubjectOfCareSchedule xmlns:r="urn:riv:crm:scheduling:GetSubjectOfCareScheduleResponder:1">'
        f"<r:healthcare_facility>5565594230</r:healthcare_facility><r:subject_of_care>{DEMO_RESIDENT}</r:subject_of_care>"
        "</r:GetSubjectOfCareSchedule>"
    )
    (tmp_path / "schedule.xml").write_bytes(envelope("5565594230", body, actor=("?", "1.2.752.129.2.1.3.1")))
    reset(recorder)
    status, lines, output = replay(tmp_path, recorder, "--verbose")
    assert status == 0 and "1 timeslotDetail" in lines[0][3], output  # B1 (K2 is at A200, the open K3 untimed)
    for change in ("LogicalAddress 5565594230 → SE2321000016-A100", "actorType 1.2.752.129.2.1.3.1 → subject_of_care"):
        assert change in output


# -- masked recording ------------------------------------------------------------------------------------


def test_a_masked_recording_holds_no_personnummer_and_replays_with_them_given(
    start_producer: Callable[..., ProducerServer], tmp_path_factory: pytest.TempPathFactory, official: Official
) -> None:
    directory = tmp_path_factory.mktemp("masked")
    server = start_producer("recordmasked", {"TIDBOK_RECORD_DIR": str(directory), "TIDBOK_RECORD_MASK": "true"})
    official.call(
        server.base_url, "GetSubjectOfCareSchedule", A100, healthcare_facility=A100, subject_of_care=DEMO_RESIDENT
    )
    official.call(server.base_url, "GetBookingDetails", A100, healthcare_facility=A100, bookingId="B1")
    recorded = tmp_path_factory.mktemp("masked-copy")
    for pair in pairs(directory):
        for path in pair:
            shutil.copy(path, recorded)
    directory = recorded
    texts = [path.read_text(encoding="utf-8") for pair in pairs(directory) for path in pair]
    assert len(texts) == 4
    assert not any(DEMO_RESIDENT in text for text in texts)
    assert all("${pnr_19121212}" in text for text in texts)  # requests and answers alike
    status, lines, output = replay(directory, server)
    assert status == 1 and [o for _v, o, _n, _d in lines] == ["unsent", "unsent"], output
    variables = tmp_path_factory.mktemp("vars") / "vars.toml"
    variables.write_text(f'pnr_19121212 = "{DEMO_RESIDENT}"\n', encoding="utf-8")
    status, lines, output = replay(directory, server, "--vars", str(variables))
    assert status == 0 and [o for _v, o, _n, _d in lines] == ["same", "same"], output


def test_a_recording_that_cannot_be_written_does_not_fail_the_call(
    start_producer: Callable[..., ProducerServer], tmp_path_factory: pytest.TempPathFactory, official: Official
) -> None:
    blocker = tmp_path_factory.mktemp("blocked") / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    server = start_producer("recordblocked", {"TIDBOK_RECORD_DIR": str(blocker / "recorded")})
    answer = official.call(
        server.base_url, "GetAllTimeTypes", A100, healthcare_facility=A100, subject_of_care=DEMO_RESIDENT
    )
    assert answer.ListOfTimeTypes
    assert "cannot record SOAP calls" in server.output()


# -- the shared fixtures ------------------------------------------------------------------------------------

SHARED = {  # README "For integration testers": what each request of ../shared/recorded-fixtures gets
    "GetSubjectOfCareSchedule/agp-soapui_v1.1-envelope__GetSubjectOfCareSchedule_121212121212_Tolvan.xml": "answered",
    "GetSubjectOfCareSchedule/agp_v1.1-envelope__aggregated-tidbokningar-request.xml": "fault",
    # its Actor is one resident, its subject_of_care another: a resident sees only their own schedule
    "GetSubjectOfCareSchedule/agp_v1.1-envelope__gatling_GetSubjectOfCareSchedule_Positive_Response.xml": "fault",
    "GetSubjectOfCareSchedule/agp_v1.1-envelope__gatling_GetSubjectOfCareSchedule_VP004.xml": "fault",
    "GetSubjectOfCareSchedule/skltp-soapui-agp-tidbokning_v1.1-envelope__4.18.3_request.xml": "fault",
    "MakeBooking/rivta-bp21-refapp-wiki_v1.1-envelope__request.xml": "answered",
}


def test_the_shared_fixtures_give_what_the_readme_says(start_producer: Callable[..., ProducerServer]) -> None:
    fixtures = reference.require_recorded_fixtures()
    server = start_producer("engine")  # the SOAP engine tests' producer: these requests change nothing
    examples = reference.REPO / "examples"
    status, lines, output = replay(
        fixtures,
        server,
        "--vars",
        str(examples / "shared-fixtures.vars.toml"),
        "--rules",
        str(examples / "shared-fixtures.rules.toml"),
    )
    assert status == 0, output
    sent = {name: outcome for verdict, outcome, name, _d in lines if verdict != "skip"}
    assert sent == SHARED, output
    assert all(verdict == "ok" for verdict, _o, _n, _d in lines if verdict != "skip"), output
    assert "resultCode ERROR: Personnumret är inte giltigt" in output
