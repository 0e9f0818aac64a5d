"""The staff page through real HTTP without a browser (no JavaScript: every core action is a plain
form): login and sessions, CSRF, unit access (403), logout, the acting staff member, DST days."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from staff_page import A100, A100_PASSWORD, A100_STAFF, A200, ALL_PASSWORD, ALL_STAFF, Client, start_web
from support.calendar import insert_slot, unused_free_slot
from support.server import ProducerServer

from producer.staff import sickday
from producer.staff.sickday import Affected

RESIDENT = "197010632391"


@pytest.fixture(scope="module")
def server(start_producer: Any) -> ProducerServer:
    return start_web(start_producer)


def logged(server: ProducerServer, line: str, seconds: float = 10) -> bool:
    """Whether the server wrote this log line (waiting a little: its log is read from a file)."""
    deadline = time.monotonic() + seconds
    while line not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    return line in server.output()


def logged_in(server: ProducerServer, who: str = A100_STAFF, password: str = A100_PASSWORD) -> Client:
    client = Client(server)
    answer = client.login(who, password)
    assert answer.status_code == 200 and "Inloggad" in answer.text, answer.text[:500]
    return client


def test_without_a_session_every_page_leads_to_the_login(server: ProducerServer) -> None:
    client = Client(server)
    answer = client.get(f"/staff/units/{A100}/week", allow_redirects=False)
    assert answer.status_code == 303 and "/staff/login" in answer.headers["location"]
    page = client.get("/staff/login")
    assert page.status_code == 200 and 'lang="sv"' in page.text and "Logga in" in page.text


def test_a_wrong_password_is_refused_and_a_right_one_sets_a_safe_cookie(server: ProducerServer) -> None:
    client = Client(server)
    assert client.login(A100_STAFF, "fel-losenord-000").status_code == 401
    assert client.login(A100_STAFF, ALL_PASSWORD).status_code == 401  # another account's secret
    page = client.get("/staff/login")
    token = page.text.split('name="login_token" value="')[1].split('"')[0]
    answer = client.post(
        "/staff/login", {"login_token": token, "hsa_id": A100_STAFF, "password": A100_PASSWORD}, allow_redirects=False
    )
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "tidbok_staff=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/staff" in cookie
    assert "Secure" not in cookie  # plain HTTP here; Secure under TLS
    landing = client.get(answer.headers["location"])
    assert landing.status_code == 200 and "Vårdcentralen Exempel" in landing.text


def test_a_form_without_its_csrf_token_is_refused(server: ProducerServer) -> None:
    client = logged_in(server)
    with server.connect() as conn:
        slot = unused_free_slot(conn, A100, set())
    answer = client.post(f"/staff/units/{A100}/slots/{slot.ref}/book", {"resident": RESIDENT})
    assert answer.status_code == 403 and "formulärnyckel" in answer.text
    answer = client.post(f"/staff/units/{A100}/slots/{slot.ref}/book", {"resident": RESIDENT, "csrf": "x" * 43})
    assert answer.status_code == 403
    with server.connect() as conn:
        assert conn.execute("SELECT booking_pk FROM slot WHERE id = %s", (slot.id,)).fetchone()[0] is None


def test_another_units_pages_and_bookings_are_403(server: ProducerServer) -> None:
    client = logged_in(server)
    with server.connect() as conn:
        (booking_id,) = conn.execute(
            "SELECT booking_id FROM booking WHERE unit_hsa_id = %s LIMIT 1", (A200,)
        ).fetchone()
    for path in (f"/staff/units/{A200}/week", f"/staff/units/{A200}/bookings/{booking_id}"):
        assert client.get(path).status_code == 403, path
    csrf = client.csrf()
    answer = client.post(f"/staff/units/{A200}/bookings/{booking_id}/cancel", {"csrf": csrf, "note": "x"})
    assert answer.status_code == 403
    # and through its own unit's path, another unit's booking is not found
    assert client.get(f"/staff/units/{A100}/bookings/{booking_id}").status_code == 404
    with server.connect() as conn:
        status = conn.execute("SELECT status FROM booking WHERE booking_id = %s", (booking_id,)).fetchone()[0]
    assert status == "active"


def test_after_logout_the_session_is_refused(server: ProducerServer) -> None:
    client = logged_in(server)
    cookie = client.http.cookies.get("tidbok_staff")
    csrf = client.csrf()
    assert client.post("/staff/logout", {"csrf": csrf}).status_code == 200
    again = Client(server)
    again.http.cookies.set("tidbok_staff", cookie, path="/staff")
    answer = again.get(f"/staff/units/{A100}/week", allow_redirects=False)
    assert answer.status_code == 303 and "/staff/login" in answer.headers["location"]


def test_the_acting_staff_member_is_always_the_logged_in_one(server: ProducerServer) -> None:
    client = logged_in(server)
    with server.connect() as conn:
        slot = unused_free_slot(conn, A100, set())
    form = {"csrf": client.csrf(), "resident": RESIDENT, "staff": ALL_STAFF, "actor_id": ALL_STAFF}
    answer = client.post(f"/staff/units/{A100}/slots/{slot.ref}/book", form)
    assert answer.status_code == 200 and "Tiden är bokad" in answer.text, answer.text[:3000]
    with server.connect() as conn:
        channel, actor = conn.execute(
            "SELECT e.channel, e.actor_id FROM booking_event e JOIN slot s ON s.booking_pk = e.booking_pk"
            " WHERE s.id = %s ORDER BY e.id LIMIT 1",
            (slot.id,),
        ).fetchone()
    assert (channel, actor) == ("staff", A100_STAFF)
    assert "StaffBook OK" in server.output() and f"actor staff {A100_STAFF} via web" in server.output()


def test_the_week_of_the_spring_dst_change_draws_a_23_hour_day(server: ProducerServer) -> None:
    client = logged_in(server)
    sunday = _last_sunday(date.today().year + 1, 3)
    page = client.get(f"/staff/units/{A100}/week?date={sunday.isoformat()}")
    assert page.status_code == 200 and "dygnet har 23 timmar" in page.text
    autumn = _last_sunday(date.today().year + 1, 10)
    with server.connect() as conn:  # the repeated hour: 02:30 summer time, then 02:30 standard time
        for utc_hour in (0, 1):
            start = datetime(autumn.year, autumn.month, autumn.day, utc_hour, 30, tzinfo=UTC)
            insert_slot(conn, A100, start, start + timedelta(minutes=15), "SSK", "ALLM", "SE2321000016-P002")
    page = client.get(f"/staff/units/{A100}/day?date={autumn.isoformat()}")
    assert page.status_code == 200 and "25 timmar" in page.text
    assert page.text.index("02:30 sommartid") < page.text.index("02:30 normaltid")
    week = client.get(f"/staff/units/{A100}/week?date={autumn.isoformat()}")
    assert "02:30 sommartid" in week.text and "02:30 normaltid" in week.text and "25 timmar" in week.text


def _last_sunday(year: int, month: int) -> date:
    end = date(year, month + 1, 1) - timedelta(days=1)
    return end - timedelta(days=(end.weekday() + 1) % 7)


def test_every_page_of_the_unit_answers_without_javascript(server: ProducerServer) -> None:
    client = logged_in(server, ALL_STAFF, ALL_PASSWORD)
    for path in ("/staff/", f"/staff/units/{A100}/week", f"/staff/units/{A100}/day", f"/staff/units/{A100}/invitations",
                 f"/staff/units/{A100}/sick-day", f"/staff/units/{A100}/schedules", f"/staff/units/{A100}/rules",
                 "/staff/residents?resident=191212121212"):  # fmt: skip
        page = client.get(path)
        assert page.status_code == 200, (path, page.text[:2000])
        assert "<script" not in page.text
        assert page.headers["cache-control"] == "no-store" and "frame-ancestors 'none'" in page.headers[
            "content-security-policy"]  # fmt: skip


def test_an_expired_session_is_refused(server: ProducerServer) -> None:
    client = logged_in(server)
    assert client.get(f"/staff/units/{A100}/week").status_code == 200
    with server.connect() as conn:  # the session's last use 31 minutes ago: past TIDBOK_STAFF_SESSION_MINUTES
        conn.execute("UPDATE staff_session SET expires_at = now() - interval '1 minute' WHERE staff_hsa_id = %s",
                     (A100_STAFF,))  # fmt: skip
    answer = client.get(f"/staff/units/{A100}/week", allow_redirects=False)
    assert answer.status_code == 303 and "/staff/login" in answer.headers["location"]


def test_a_refusal_is_shown_in_swedish_and_nothing_is_booked(server: ProducerServer) -> None:
    client = logged_in(server)
    with server.connect() as conn:
        slot = unused_free_slot(conn, A100, set())
    answer = client.post(
        f"/staff/units/{A100}/slots/{slot.ref}/book", {"csrf": client.csrf(), "resident": "191212121213"}
    )
    assert answer.status_code == 400 and "Personnummer: har fel kontrollsiffra" in answer.text
    assert 'role="alert"' in answer.text and 'value="191212121213"' in answer.text  # the form kept as typed


def test_the_sick_day_list_keeps_a_residents_formula_from_running() -> None:
    when = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
    rows = [Affected("B1", "booking", when, "191212121212", '=HYPERLINK("x")', "+46 70-121 21 21", True)]
    text = sickday.as_csv(rows)
    assert "\"'=HYPERLINK" in text and ";+46 70-121 21 21;" in text


def test_a_booking_cannot_be_moved_to_a_unit_the_staff_member_lacks(server: ProducerServer) -> None:
    client = logged_in(server)  # A100 only; PROV at A100 may be moved to A200
    with server.connect() as conn:
        (mine,) = conn.execute(
            "SELECT id FROM slot_named WHERE unit_hsa_id = %s AND time_type_code = 'PROV' AND booking_pk IS NULL"
            " AND starts_at > now() + interval '3 days' ORDER BY starts_at, id LIMIT 1",
            (A100,),
        ).fetchone()
        (theirs,) = conn.execute(
            "SELECT id FROM slot_named WHERE unit_hsa_id = %s AND time_type_code = 'PROV' AND booking_pk IS NULL"
            " AND starts_at > now() + interval '3 days' ORDER BY starts_at, id LIMIT 1",
            (A200,),
        ).fetchone()
    made = client.post(f"/staff/units/{A100}/slots/T{mine}/book", {"csrf": client.csrf(), "resident": RESIDENT})
    assert made.status_code == 200 and "Tiden är bokad" in made.text
    booking_id = made.url.split("/bookings/")[1].split("?")[0]
    assert f"T{theirs}" not in made.text  # the alternatives list only the staff member's units
    moved = client.post(
        f"/staff/units/{A100}/bookings/{booking_id}/rebook", {"csrf": client.csrf(), "slot": f"T{theirs}"}
    )
    assert moved.status_code == 403
    with server.connect() as conn:
        (slot_id,) = conn.execute(
            "SELECT s.id FROM slot s JOIN booking b ON b.pk = s.booking_pk WHERE b.booking_id = %s", (booking_id,)
        ).fetchone()
    assert slot_id == mine


def test_invitations_timed_and_open_with_their_purpose_checked(server: ProducerServer) -> None:
    client = logged_in(server)
    valid = (date.today() + timedelta(days=30)).isoformat()
    form = {"csrf": client.csrf(), "resident": RESIDENT, "time_type": "PROV", "valid_until": valid,
            "purpose": "<article><table/></article>"}  # fmt: skip
    refused = client.post(f"/staff/units/{A100}/invitations/open", form)
    assert refused.status_code == 400 and "DocBook-elementet &lt;table&gt; är inte tillåtet" in refused.text
    form["purpose"] = "<article><title>Kallelse</title><para>Välkommen.</para></article>"
    invited = client.post(f"/staff/units/{A100}/invitations/open", form)
    assert invited.status_code == 200 and "Kallelsen är skickad" in invited.text and "Öppen kallelse" in invited.text
    with server.connect() as conn:
        slot = unused_free_slot(conn, A100, set())
    form = {"csrf": client.csrf(), "resident": RESIDENT, "purpose": "Välkommen på återbesök."}
    timed = client.post(f"/staff/units/{A100}/slots/{slot.ref}/invite", form)
    assert timed.status_code == 200 and "Tidsatt kallelse" in timed.text
    with server.connect() as conn:
        kind = conn.execute(
            "SELECT b.kind FROM booking b JOIN slot s ON s.booking_pk = b.pk WHERE s.id = %s", (slot.id,)
        ).fetchone()[0]
    assert kind == "timed_invitation"


def test_a_set_up_document_is_dry_run_then_loaded_by_an_all_units_account(server: ProducerServer) -> None:
    document = "units:\n  - hsa_id: SE2321000016-W900\n    name: Mottagningen Sida\n"
    narrow = logged_in(server)
    form = {"csrf": narrow.csrf(), "kind": "yaml", "schedule_text": document}
    assert narrow.post(f"/staff/units/{A100}/schedules", form).status_code == 403  # a load may touch any unit
    client = logged_in(server, ALL_STAFF, ALL_PASSWORD)
    form["csrf"] = client.csrf()
    dry = client.post(f"/staff/units/{A100}/schedules", form)
    assert dry.status_code == 200 and "Provkörning" in dry.text and "Bekräfta" in dry.text
    with server.connect() as conn:
        assert conn.execute("SELECT count(*) FROM care_unit WHERE hsa_id = 'SE2321000016-W900'").fetchone()[0] == 0
    loaded = client.post(f"/staff/units/{A100}/schedules", {**form, "confirm": "yes"})
    assert loaded.status_code == 200 and "Inläst" in loaded.text
    with server.connect() as conn:
        assert conn.execute("SELECT count(*) FROM care_unit WHERE hsa_id = 'SE2321000016-W900'").fetchone()[0] == 1
    assert logged(server, f"StaffLoad OK booking - unit {A100} actor staff {ALL_STAFF} via web")


def test_guessing_a_password_is_throttled(server: ProducerServer) -> None:
    client = Client(server)
    statuses: list[int] = []
    for _ in range(11):  # 5 wrong ones per worker process at most: with 2 workers, the 11th is refused
        statuses.append(client.login("SE2321000016-S777", "gissat-losenord-00").status_code)
        if statuses[-1] == 429:
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}, statuses
    assert client.login(A100_STAFF, A100_PASSWORD).status_code == 200  # another HSA-id is not held up


def test_an_unknown_page_is_answered_in_swedish(server: ProducerServer) -> None:
    answer = Client(server).get("/staff/no/such/page")
    assert answer.status_code == 404 and "Sidan finns inte" in answer.text and 'lang="sv"' in answer.text
    assert Client(server).get("/admin/no/such/thing").json()["error"]["message"]  # /admin keeps its JSON
