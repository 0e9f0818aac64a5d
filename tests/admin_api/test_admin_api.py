"""The /admin JSON API through real HTTP against a real producer: tokens (401/403), the
traceability headers and log lines, JSON errors that name the field, the OpenAPI description, and
staff actions that residents then see over SOAP and that reach the engagement index."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import psycopg
import pytest
from support.admin import admin_api
from support.calendar import unused_free_slot
from support.ei import EiLoop, publishing_into_a_stub, wait_until_drained
from support.server import ProducerServer

from producer.sweden.wall_time import STOCKHOLM

A100, A200 = "SE2321000016-A100", "SE2321000016-A200"
ALL = "all-units-token-000001"
ONLY_A100 = "a100-only-token-000001"
READER = "all-units-reader-000001"  # a machine token acting for no staff member
STAFF = "SE2321000016-S042"
RESIDENT = "196408233234"


@pytest.fixture(scope="module")
def server(start_producer: Any) -> ProducerServer:
    tokens = f"{ALL}=*@{STAFF} {ONLY_A100}={A100.lower()}@{STAFF} {READER}=*"
    return start_producer("admin", {"TIDBOK_ADMIN_TOKENS": tokens})


@pytest.fixture(scope="module")
def ei(server: ProducerServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EiLoop]:
    with publishing_into_a_stub(server.database_url, tmp_path_factory.mktemp("admin-ei")) as loop:
        yield loop


def api(
    server: ProducerServer,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = ALL,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    return admin_api(server, method, path, body, token, headers)


def two_free_slots(server: ProducerServer, unit: str) -> tuple[str, str]:
    """Two distinct free LAK slots (by construction, whatever the day: not "the first after N days"
    twice, which is one and the same Monday slot when both days fall on a weekend)."""
    used: set[int] = set()
    with server.connect() as conn:
        return unused_free_slot(conn, unit, used).ref, unused_free_slot(conn, unit, used).ref


@pytest.mark.parametrize("token", [None, "not-a-token-at-all-xx"])
def test_without_a_valid_token_the_answer_is_401(server: ProducerServer, token: str | None) -> None:
    status, headers, body = api(server, "GET", f"/admin/units/{A100}/bookings?date=2026-12-01", token=token)
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    assert "token" in body["error"]["message"]


def test_a_token_for_another_unit_is_403(server: ProducerServer) -> None:
    status, _, body = api(server, "GET", f"/admin/units/{A200}/bookings?date=2026-12-01", token=ONLY_A100)
    assert status == 403 and body["error"]["field"] == "unit"
    status, _, _ = api(server, "GET", f"/admin/units/{A100.lower()}/bookings?date=2026-12-01", token=ONLY_A100)
    assert status == 200  # HSA-ids compare case-insensitively


def test_request_and_context_ids_are_echoed_and_logged(server: ProducerServer) -> None:
    ids = {"X-Request-ID": "req-4711-abc", "X-Context-ID": "ctx-0815"}
    status, headers, _ = api(server, "GET", f"/admin/units/{A100}/bookings?date=2026-12-01", headers=ids)
    assert status == 200
    assert headers["x-request-id"] == "req-4711-abc" and headers["x-context-id"] == "ctx-0815"
    _, generated, _ = api(server, "GET", f"/admin/units/{A100}/bookings?date=2026-12-01", token=None)
    assert len(generated["x-request-id"]) == 36 and "x-context-id" not in generated
    deadline = time.monotonic() + 10
    while "request req-4711-abc context ctx-0815" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "request req-4711-abc context ctx-0815" in server.output()


def test_errors_are_json_naming_the_field(server: ProducerServer) -> None:
    cases = [
        ("GET", f"/admin/units/{A100}/bookings", None, "date"),
        ("GET", f"/admin/units/{A100}/bookings?date=2026-13-40", None, "date"),
        ("POST", f"/admin/units/{A100}/bookings", {"staff": STAFF, "resident": "191212121213", "slot": "T1"},
         "resident"),
        ("POST", f"/admin/units/{A100}/bookings", {"resident": RESIDENT, "slot": "T1", "colour": "red"}, "colour"),
        ("POST", f"/admin/units/{A100}/bookings", {"resident": RESIDENT, "slot": "T1", "contact": {"fax": "1"}},
         "contact.fax"),
        ("POST", f"/admin/units/{A100}/bookings", {"staff": STAFF, "resident": RESIDENT}, "slot"),
        ("POST", f"/admin/units/{A100}/invitations",
         {"staff": STAFF, "resident": RESIDENT, "time_type": "PROV", "valid_until": "2027-01-01",
          "purpose": "<article><table/></article>"}, "purpose"),
    ]  # fmt: skip
    for method, path, body, field in cases:
        status, headers, answer = api(server, method, path, body)
        assert status == 400, (path, answer)
        assert headers["content-type"].startswith("application/json")
        assert answer["error"]["field"] == field and answer["error"]["message"]
    status, _, answer = api(server, "GET", "/admin/no/such/thing")
    assert status == 404 and answer["error"]["message"]


def test_openapi_describes_every_route(server: ProducerServer) -> None:
    status, _, spec = api(server, "GET", "/admin/openapi.json", token=None)
    assert status == 200 and spec["openapi"].startswith("3.1")
    operations = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert ("/admin/units/{unit}/bookings", "post") in operations
    assert ("/admin/units/{unit}/bookings/{booking_id}", "delete") in operations
    assert ("/admin/units/{unit}/invitation-batches", "post") in operations
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_staff_actions_through_the_api_reach_soap_and_ei(server: ProducerServer, ei: EiLoop, official: Any) -> None:
    index = ei.ei
    first, second = two_free_slots(server, A100)
    assert first != second
    status, _, made = api(
        server, "POST", f"/admin/units/{A100}/bookings",
        {"staff": STAFF, "resident": RESIDENT, "slot": first, "contact": {"first_name": "Anna", "last_name": "Test"}},
    )  # fmt: skip
    assert status == 201, made
    booking_id = made["booking"]["booking_id"]
    schedule = official.caller(server.base_url)(
        "GetSubjectOfCareSchedule", A100, actor=(RESIDENT, "subject_of_care"),
        healthcare_facility=A100, subject_of_care=RESIDENT,
    )  # fmt: skip
    assert [t.bookingId for t in schedule.timeslotDetail] == [booking_id]

    status, _, moved = api(
        server, "PUT", f"/admin/units/{A100}/bookings/{booking_id}", {"staff": STAFF, "slot": second}
    )
    assert status == 200 and moved["booking"]["slot"] == second
    status, _, history = api(server, "GET", f"/admin/units/{A100}/bookings/{booking_id}/history")
    assert [(e["action"], e["channel"], e["actor_id"]) for e in history["events"]][:2] == [
        ("book", "staff", STAFF),
        ("rebook", "staff", STAFF),
    ]
    wait_until_published(server)
    (post,) = index.find(registeredResidentIdentification=RESIDENT)
    assert post.businessObjectInstanceIdentifier == booking_id and post.logicalAddress == A100

    status, _, cancelled = api(server, "DELETE", f"/admin/units/{A100}/bookings/{booking_id}?staff={STAFF}")
    assert status == 200 and cancelled["booking"]["status"] == "cancelled"
    wait_until_published(server)
    assert index.find(registeredResidentIdentification=RESIDENT) == []


def test_invitations_and_batches_through_the_api(server: ProducerServer, official: Any) -> None:
    valid = (datetime.now(STOCKHOLM) + timedelta(days=30)).strftime("%Y-%m-%d")
    status, _, invited = api(
        server, "POST", f"/admin/units/{A100}/invitations",
        {"staff": STAFF, "resident": "197010632391", "time_type": "PROV", "valid_until": valid,
         "purpose": "<article><title>Kallelse</title><para>Välkommen.</para></article>"},
    )  # fmt: skip
    assert status == 201, invited
    details = official.caller(server.base_url)(
        "GetBookingDetails", A100, actor=None, healthcare_facility=A100, bookingId=invited["booking"]["booking_id"]
    )
    assert details.timeslotDetail.isInvitation is True and details.timeslotDetail.startTimeInclusive is None
    batch = {"staff": STAFF, "csv": "191212121212\n191212121213\n", "time_type": "PROV", "campaign": "screening-2027",
             "purpose": "Välkommen till provtagning.", "valid_until": valid}  # fmt: skip
    status, _, report = api(server, "POST", f"/admin/units/{A100}/invitation-batches", batch)
    assert status == 200 and len(report["invited"]) == 1 and len(report["invalid"]) == 1
    status, _, again = api(server, "POST", f"/admin/units/{A100}/invitation-batches", batch)
    assert status == 200 and again["invited"] == [] and len(again["already_invited"]) == 1


def wait_until_published(server: ProducerServer, seconds: float = 20) -> None:
    with server.connect() as conn:
        wait_until_drained(conn, seconds=seconds)


def load(server: ProducerServer, body: bytes, content_type: str, token: str = ALL, query: str = "") -> tuple[int, Any]:
    parts = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
        conn.request("POST", f"/admin/load{query}", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_loading_over_http(server: ProducerServer) -> None:
    unit = b"units:\n  - hsa_id: SE2321000016-L100\n    name: Mottagningen Laddad\n"
    status, report = load(server, unit, "application/yaml", query="?dry_run=true")
    assert status == 200 and report["ok"] and report["dry_run"]
    with psycopg.connect(server.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM care_unit WHERE hsa_id = 'SE2321000016-L100'").fetchone()[0] == 0
    status, report = load(server, unit, "application/yaml")
    assert status == 200 and report["ok"] and not report["dry_run"]
    status, report = load(server, unit, "application/yaml", token=ONLY_A100)
    assert status == 403 and report["error"]["field"] == "Authorization"
    status, report = load(server, b"{}", "application/pdf")
    assert status == 415 and report["error"]["field"] == "Content-Type"
    status, report = load(server, b"unit,start,time_type\nSE2321000016-L100,2020-01-01 08:00,NOPE\n", "text/csv")
    assert status == 422 and not report["ok"] and report["problems"]


def admin_counts(server: ProducerServer) -> dict[tuple[str, str], float]:
    """tidbok_admin_requests_total by (route, status), as a scrape reads it."""
    from prometheus_client.parser import text_string_to_metric_families

    conn = http.client.HTTPConnection(urlsplit(server.base_url).hostname or "", urlsplit(server.base_url).port)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return {
        (s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "tidbok_admin_requests_total"
    }


def test_admin_requests_are_counted_per_route_and_status(server: ProducerServer) -> None:
    """The label is the route's template, never the path (a booking id or a date is not a label)."""
    day = "GET /admin/units/{unit}/bookings"
    before = admin_counts(server)
    assert api(server, "GET", f"/admin/units/{A100}/bookings?date=2030-01-02")[0] == 200
    assert api(server, "GET", f"/admin/units/{A100}/bookings?date=2030-01-03", token=None)[0] == 401
    assert api(server, "GET", f"/admin/units/{A200}/bookings?date=2030-01-03", token=ONLY_A100)[0] == 403
    assert api(server, "GET", "/admin/nothing-here")[0] == 404
    after = admin_counts(server)
    for key in ((day, "200"), (day, "403"), ("unmatched", "404")):
        assert after.get(key, 0) - before.get(key, 0) == 1, key
    assert after.get((day, "401"), 0) - before.get((day, "401"), 0) == 1
    assert not any("2030" in route or A100 in route for route, _ in after)


def test_the_token_is_who_acts_and_a_body_naming_another_staff_member_is_refused(server: ProducerServer) -> None:
    first, _ = two_free_slots(server, A100)
    status, _, answer = api(
        server, "POST", f"/admin/units/{A100}/bookings",
        {"staff": "SE2321000016-S999", "resident": RESIDENT, "slot": first},
    )  # fmt: skip
    assert status == 403 and answer["error"]["field"] == "staff"
    status, _, answer = api(
        server, "POST", f"/admin/units/{A100}/bookings", {"resident": RESIDENT, "slot": first}, token=READER
    )
    assert status == 403 and answer["error"]["field"] == "staff"  # a token acting for nobody changes nothing
    status, _, answer = api(server, "GET", f"/admin/units/{A100}/bookings?date=2026-12-01", token=READER)
    assert status == 200  # but may read
    status, _, made = api(server, "POST", f"/admin/units/{A100}/bookings", {"resident": RESIDENT, "slot": first})
    assert status == 201, made
    booking_id = made["booking"]["booking_id"]
    status, _, history = api(server, "GET", f"/admin/units/{A100}/bookings/{booking_id}/history")
    assert history["events"][0]["actor_id"] == STAFF
    deadline = time.monotonic() + 10
    line = f"StaffBook OK booking {booking_id} unit {A100} actor staff {STAFF} via api"
    while line not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert line in server.output()  # every staff change writes a tidbok.audit line
    status, _, refused = api(server, "DELETE", f"/admin/units/{A100}/bookings/{booking_id}", {"why": "test"})
    assert status == 400 and refused["error"]["field"] == "why"
    status, _, cancelled = api(server, "DELETE", f"/admin/units/{A100}/bookings/{booking_id}", {"note": "test"})
    assert status == 200 and cancelled["booking"]["status"] == "cancelled"


def test_openapi_names_every_status_and_refuses_unknown_fields(server: ProducerServer) -> None:
    _, _, spec = api(server, "GET", "/admin/openapi.json", token=None)
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            assert {"400", "401", "403", "503"} <= codes, (path, method, codes)
    book = spec["paths"]["/admin/units/{unit}/bookings"]["post"]
    assert set(book["responses"]) >= {"201", "404", "409"}
    schema = book["requestBody"]["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[1]
    assert spec["components"]["schemas"][name]["additionalProperties"] is False
    assert "text/csv" in spec["paths"]["/admin/load"]["post"]["requestBody"]["content"]


def test_the_api_documentation_page_is_served_by_tidbok(server: ProducerServer) -> None:
    parts = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.request("GET", "/admin/swagger")
        response = conn.getresponse()
        page = response.read().decode()
        assert response.status == 200 and "openapi.json" in page
        scripts = [urljoin("/admin/swagger", src.split('"')[0]) for src in page.split('src="')[1:]]
        assert scripts and all(src.startswith("/admin/") for src in scripts), scripts  # no CDN
        conn.request("GET", scripts[0])
        script = conn.getresponse()
        assert script.status == 200 and len(script.read()) > 10_000
    finally:
        conn.close()
