"""The staff page in a real Chromium (Debian's `chromium`, driven by Playwright with executable_path):
log in, see the demo week, book Tolvan a time, rebook it, cancel it, a sick day for P001 over two
days, a CSV with one bad line; each change checked over SOAP (zeep, the official WSDLs) and in the
EI stub. Every page is screenshotted into test-artifacts/screenshots/ and checked with axe-core
(no serious or critical violations)."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from staff_page import A100, ALL_PASSWORD, ALL_STAFF, start_web
from support.ei import EiLoop, publishing_into_a_stub, wait_until_drained
from support.server import ProducerServer

from producer.sweden.wall_time import STOCKHOLM

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
TOLVAN = "191212121212"
P001 = "SE2321000016-P001"
OTHER = "197010632391"

if not CHROMIUM.exists():
    pytest.skip("no browser: install Debian's chromium (apt-get install chromium), see README, Testing",
                allow_module_level=True)  # fmt: skip
sync_api = pytest.importorskip("playwright.sync_api")
axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")


@pytest.fixture(scope="module")
def server(start_producer: Any) -> ProducerServer:
    return start_web(start_producer, "browser")


@pytest.fixture(scope="module")
def ei(server: ProducerServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EiLoop]:
    with publishing_into_a_stub(server.database_url, tmp_path_factory.mktemp("browser-ei")) as loop:
        yield loop


@contextlib.contextmanager
def _real_clock() -> Iterator[None]:
    """Playwright's driver and Chromium start without libfaketime (make test-dates preloads it in
    every process): under it the driver never answers. The page has no clock of its own to test:
    every date on it is the server's, and the server runs under the fake clock."""
    faked = {key: os.environ.pop(key) for key in list(os.environ) if key == "LD_PRELOAD" or key.startswith("FAKETIME")}
    try:
        yield
    finally:
        os.environ.update(faked)


@pytest.fixture(scope="module")
def page(server: ProducerServer) -> Iterator[Any]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    manager = sync_api.sync_playwright()
    with _real_clock():  # only while the driver and the browser start: they keep what they were given
        playwright = manager.__enter__()
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="sv-SE", bypass_csp=True)
        context.set_default_timeout(20_000)
        tab = context.new_page()
        tab.goto(server.base_url + "/staff/login")
        tab.get_by_label("HSA-id").fill(ALL_STAFF)
        tab.get_by_label("Lösenord").fill(ALL_PASSWORD)
        tab.get_by_role("button", name="Logga in").click()
        tab.wait_for_url("**/staff/")
        yield tab
        context.close()
        browser.close()
    finally:
        manager.__exit__(None, None, None)


def check(page: Any, name: str) -> None:
    """A screenshot of the page as a test artifact, and axe-core: no serious or critical violation."""
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    results = axe_module.Axe().run(page)
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in results.response["violations"]
           if v["impact"] in ("serious", "critical")]  # fmt: skip
    assert bad == [], f"{name}: {bad}"


def free_slot(
    server: ProducerServer, code: str, performer: str | None, after: datetime, skip: set[int]
) -> tuple[int, str]:
    """A free slot of A100 of this type (and performer) starting after `after`: constructed, not assumed."""
    with server.connect() as conn:
        row = conn.execute(
            "SELECT id, starts_at FROM slot_named WHERE unit_hsa_id = %s AND time_type_code = %s AND booking_pk IS NULL"
            " AND (%s::text IS NULL OR performer_hsa_id = %s) AND starts_at > %s AND NOT id = ANY(%s)"
            " ORDER BY starts_at, id LIMIT 1",
            (A100, code, performer, performer, after, list(skip)),
        ).fetchone()
    assert row is not None, f"no free {code} slot"
    return row[0], row[1].astimezone(STOCKHOLM).date().isoformat()


def schedule(official: Any, server: ProducerServer, resident: str) -> list[Any]:
    answer = official.caller(server.base_url)(
        "GetSubjectOfCareSchedule", A100, actor=(resident, "subject_of_care"),
        healthcare_facility=A100, subject_of_care=resident,
    )  # fmt: skip
    return list(answer.timeslotDetail or [])


def published(server: ProducerServer, ei: EiLoop, resident: str) -> set[str]:
    with server.connect() as conn:
        wait_until_drained(conn, seconds=30)
    return {post.businessObjectInstanceIdentifier for post in ei.ei.find(registeredResidentIdentification=resident)}


def test_log_in_and_see_the_demo_week(server: ProducerServer, page: Any) -> None:
    check(page, "01-start")
    page.get_by_role("link", name="Vårdcentralen Exempel").first.click()
    page.wait_for_url("**/week")
    with server.connect() as conn:
        (starts,) = conn.execute(
            "SELECT s.starts_at FROM booking b JOIN slot s ON s.booking_pk = b.pk WHERE b.subject_of_care = %s"
            " AND b.unit_hsa_id = %s AND b.kind = 'booking'",
            (TOLVAN, A100),
        ).fetchone()
    page.goto(f"{server.base_url}/staff/units/{A100}/week?date={starts.astimezone(STOCKHOLM).date().isoformat()}")
    assert page.get_by_text("Tolvan Tolvansson").count() >= 1
    assert page.locator(".slot.free").count() > 50 and page.locator(".slot.booked").count() >= 1
    check(page, "02-week")
    page.get_by_label("Utförare").select_option(P001)
    page.get_by_role("button", name="Visa").click()
    assert page.locator(".slot").count() > 0 and "SSK" not in page.locator(".week").inner_text()
    # the README's picture (docs/week.png): one performer's week, the first screenful
    page.screenshot(path=str(SCREENSHOTS / "02-week-p001.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 760})
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    check(page, "03-week-narrow")
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.get_by_role("heading", level=2).first.get_by_role("link").click()
    page.wait_for_url("**/day?**")
    check(page, "04-day")


def test_book_rebook_and_cancel_tolvan(server: ProducerServer, page: Any, ei: EiLoop, official: Any) -> None:
    slot_id, day = free_slot(server, "SSK", None, datetime.now(STOCKHOLM) + timedelta(days=3), set())
    page.goto(f"{server.base_url}/staff/units/{A100}/week?date={day}")
    page.locator(f'a[href$="/slots/T{slot_id}"]').click()
    page.get_by_label("Sök invånare (personnummer)").fill(TOLVAN)
    page.get_by_role("button", name="Sök").click()
    assert page.get_by_label("Förnamn").first.input_value() == "Tolvan"  # found: the contact filled in
    check(page, "05-slot")
    page.get_by_role("button", name="Boka", exact=True).click()
    page.wait_for_url("**/bookings/**")
    assert page.get_by_text("Tiden är bokad.").is_visible()
    booking_id = page.url.split("/bookings/")[1].split("?")[0]
    check(page, "06-booking")
    mine = {t.bookingId: t for t in schedule(official, server, TOLVAN)}
    assert booking_id in mine and mine[booking_id].timeTypeID == "SSK"
    assert booking_id in published(server, ei, TOLVAN)

    choices = page.locator('input[name="slot"]')
    assert choices.count() >= 2
    last = choices.nth(choices.count() - 1)  # hours ahead, not a slot about to start while the test clicks
    target = last.get_attribute("value")
    last.check()
    page.get_by_label("Anteckning", exact=True).first.fill("Patienten ville ha en senare tid")
    page.get_by_role("button", name="Boka om").click()
    page.wait_for_url("**done=rebooked")
    assert page.get_by_text("Bokningen är flyttad.").is_visible()
    with server.connect() as conn:
        (held, held_start) = conn.execute(
            "SELECT 'T' || s.id, s.starts_at FROM slot s JOIN booking b ON b.pk = s.booking_pk WHERE b.booking_id = %s",
            (booking_id,),
        ).fetchone()
    assert held == target
    detail = official.caller(server.base_url)(
        "GetBookingDetails", A100, actor=None, healthcare_facility=A100, bookingId=booking_id
    )
    assert detail.timeslotDetail.startTimeInclusive == held_start.astimezone(STOCKHOLM).strftime("%Y%m%d%H%M%S")
    assert booking_id in published(server, ei, TOLVAN)

    page.get_by_label("Anteckning (varför)").fill("Patienten ringde och avbokade")
    page.get_by_role("button", name="Avboka").click()
    page.wait_for_url("**done=cancelled")
    assert page.get_by_text("Bokningen är avbokad.").is_visible()
    assert "Patienten ringde och avbokade" in page.locator("table").last.inner_text()  # the history
    check(page, "07-cancelled")
    assert booking_id not in {t.bookingId for t in schedule(official, server, TOLVAN)}
    assert booking_id not in published(server, ei, TOLVAN)


def test_a_sick_day_for_p001_over_two_days(server: ProducerServer, page: Any, ei: EiLoop, official: Any) -> None:
    with server.connect() as conn:
        (tolvan_id, starts) = conn.execute(
            "SELECT b.booking_id, s.starts_at FROM booking b JOIN slot_named s ON s.booking_pk = b.pk"
            " WHERE b.subject_of_care = %s AND s.performer_hsa_id = %s AND b.status = 'active'",
            (TOLVAN, P001),
        ).fetchone()
    first = starts.astimezone(STOCKHOLM).date()
    second = first + timedelta(days=1)
    # a second resident booked with P001 on the second day (through the page, as staff would)
    slot_id, _ = free_slot(server, "LAK", P001, datetime.combine(second, datetime.min.time(), STOCKHOLM), set())
    page.goto(f"{server.base_url}/staff/units/{A100}/slots/T{slot_id}")
    form = page.locator("form", has=page.get_by_role("button", name="Boka", exact=True))
    form.get_by_label("Personnummer").fill(OTHER)
    form.get_by_label("Telefon").fill("070-5556677")
    form.get_by_role("button", name="Boka", exact=True).click()
    page.wait_for_url("**done=booked")
    other_id = page.url.split("/bookings/")[1].split("?")[0]
    assert {tolvan_id} <= published(server, ei, TOLVAN) and other_id in published(server, ei, OTHER)

    page.goto(f"{server.base_url}/staff/units/{A100}/sick-day")
    page.get_by_label("Utförare").select_option(P001)
    page.get_by_label("Första dagen").fill(first.isoformat())
    page.get_by_label("Sista dagen").fill(second.isoformat())
    page.get_by_role("button", name="Visa berörda tider").click()
    table = page.locator("table")
    assert tolvan_id in table.inner_text() and other_id in table.inner_text()
    check(page, "08-sick-day-preview")
    page.get_by_role("button", name="Avboka").click()
    result = page.locator("table").inner_text()
    assert "070-1212121" in result and "070-5556677" in result  # whom to call
    check(page, "09-sick-day-done")
    link = page.get_by_role("link", name="Ladda ner listan (CSV)").get_attribute("href")
    listing = page.request.get(server.base_url + link)
    rows = list(csv.reader(io.StringIO(listing.text().lstrip("\ufeff")), delimiter=";"))
    assert rows[0][:4] == ["tid", "personnummer", "namn", "telefon"]
    assert {row[1] for row in rows[1:]} == {TOLVAN, OTHER}
    assert tolvan_id not in {t.bookingId for t in schedule(official, server, TOLVAN)}
    assert tolvan_id not in published(server, ei, TOLVAN) and other_id not in published(server, ei, OTHER)


def test_a_screening_csv_with_one_bad_line_names_it(
    server: ProducerServer, page: Any, ei: EiLoop, official: Any, tmp_path: Path
) -> None:
    listing = tmp_path / "lista.csv"
    listing.write_text("personnummer\n191212121212\n191212121213\n197010632391\n", encoding="utf-8")
    page.goto(f"{server.base_url}/staff/units/{A100}/invitations")
    batch = page.locator("form", has=page.get_by_role("button", name="Kalla listan"))
    batch.get_by_label("CSV-fil").set_input_files(str(listing))
    batch.get_by_label("Tidstyp").select_option("PROV")
    batch.get_by_label("Kampanj").fill("screening-test")
    batch.get_by_label("Syfte").fill("Välkommen till provtagning.")
    batch.get_by_label("Giltig till").fill((datetime.now(STOCKHOLM) + timedelta(days=30)).date().isoformat())
    batch.get_by_role("button", name="Kalla listan").click()
    problems = page.locator("table.problems").inner_text()
    assert "Rad 3" in problems and "191212121213" not in problems  # the line named, the number not repeated
    check(page, "10-screening-report")
    invited = page.locator("table", has_text="Kallade").first.inner_text()
    assert "Rad 2" in invited and "Rad 4" in invited
    with server.connect() as conn:
        (invitation,) = conn.execute(
            "SELECT booking_id FROM booking WHERE campaign = 'screening-test' AND subject_of_care = %s", (OTHER,)
        ).fetchone()
    detail = official.caller(server.base_url)(
        "GetBookingDetails", A100, actor=None, healthcare_facility=A100, bookingId=invitation
    )
    assert detail.timeslotDetail.isInvitation is True
    assert invitation in published(server, ei, OTHER)


def test_a_schedule_csv_with_one_bad_line_is_named_in_the_dry_run(
    server: ProducerServer, page: Any, tmp_path: Path
) -> None:
    day = (datetime.now(STOCKHOLM) + timedelta(days=120)).date()
    while day.weekday() != 2:  # a Wednesday, beyond the demo's 90 days of slots
        day += timedelta(days=1)
    slots = tmp_path / "schema.csv"
    slots.write_text(
        "unit,start,end,time_type,performer\n"
        f"{A100},{day} 08:00,{day} 08:20,LAK,{P001}\n"
        f"{A100},{day} 08:20,{day} 08:40,NOPE,{P001}\n",
        encoding="utf-8",
    )
    page.goto(f"{server.base_url}/staff/units/{A100}/schedules")
    page.get_by_label("Fil", exact=True).set_input_files(str(slots))
    page.get_by_role("button", name="Provkör").click()
    assert "Rad 3" in page.locator("table.problems").inner_text()
    check(page, "11-schedule-refused")
    slots.write_text(
        "unit,start,end,time_type,performer\n"
        f"{A100},{day} 08:00,{day} 08:20,LAK,{P001}\n"
        f"{A100},{day} 08:20,{day} 08:40,LAK,{P001}\n",
        encoding="utf-8",
    )
    page.get_by_label("Fil", exact=True).set_input_files(str(slots))
    page.get_by_role("button", name="Provkör").click()
    listed = page.locator("table", has_text="skulle skapas").inner_text()
    assert listed.count("Skapas") == 2 and f"{day} 08:20" in listed
    check(page, "12-schedule-dry-run")
    with server.connect() as conn:
        before = conn.execute("SELECT count(*) FROM slot WHERE starts_at::date = %s", (day,)).fetchone()[0]
    assert before == 0  # a dry run writes nothing
    page.get_by_role("button", name="Bekräfta: läs in").click()
    assert page.get_by_role("heading", name="Inläst").is_visible()
    with server.connect() as conn:
        assert conn.execute("SELECT count(*) FROM slot_named WHERE unit_hsa_id = %s AND performer_hsa_id = %s"
                            " AND starts_at >= %s::date AND starts_at < %s::date + 1", (A100, P001, day, day)
                            ).fetchone()[0] == 2  # fmt: skip


def test_rules_and_resident_pages(server: ProducerServer, page: Any) -> None:
    page.goto(f"{server.base_url}/staff/units/{A100}/rules")
    form = page.locator("form", has=page.get_by_role("button", name="Spara SSK"))
    form.get_by_label("Längsta framförhållning").fill("60")
    form.get_by_role("button", name="Spara SSK").click()
    assert page.get_by_text("Reglerna för SSK är sparade.").is_visible()
    check(page, "13-rules")
    with server.connect() as conn:
        horizon = conn.execute(
            "SELECT horizon FROM time_type WHERE unit_hsa_id = %s AND code = 'SSK'", (A100,)
        ).fetchone()[0]
    assert horizon == timedelta(days=60)
    page.get_by_role("link", name="Sök invånare").click()
    page.get_by_label("Personnummer").fill(TOLVAN)
    page.get_by_role("button", name="Sök").click()
    assert page.locator("table").count() == 1 and "Öppen kallelse" in page.locator("table").inner_text()
    check(page, "14-resident")
    page.keyboard.press("Tab")  # the first stop is the skip link
    assert page.evaluate("document.activeElement.textContent") == "Hoppa till innehållet"


def test_a_time_can_be_booked_with_the_keyboard_alone(server: ProducerServer, page: Any) -> None:
    next_week = (datetime.now(STOCKHOLM) + timedelta(days=7)).date().isoformat()  # every slot in the future
    page.goto(f"{server.base_url}/staff/units/{A100}/week?date={next_week}&performer=SE2321000016-P002")
    for _ in range(80):  # Tab through the header, the filters and the pager to the first free time
        page.keyboard.press("Tab")
        if "/slots/" in (page.evaluate("document.activeElement.getAttribute('href')") or ""):
            break
    page.keyboard.press("Enter")
    page.wait_for_url("**/slots/**")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "b_resident":
            break
    page.keyboard.type(TOLVAN)
    page.keyboard.press("Enter")  # submits the booking form
    page.wait_for_url("**done=booked")
    assert page.get_by_text("Tiden är bokad.").is_visible()


def test_logout_ends_the_session(server: ProducerServer, page: Any) -> None:
    page.goto(f"{server.base_url}/staff/units/{A100}/week")
    page.get_by_role("button", name="Logga ut").click()
    page.wait_for_url("**/staff/login**")
    assert page.get_by_text("Du är utloggad.").is_visible()
    check(page, "15-login")
    page.goto(f"{server.base_url}/staff/units/{A100}/week")
    assert "/staff/login" in page.url


def test_the_readme_shows_the_week_view() -> None:
    shown = Path(__file__).resolve().parents[2] / "docs" / "week.png"
    assert shown.exists() and "docs/week.png" in (shown.parents[1] / "README.md").read_text(encoding="utf-8")
