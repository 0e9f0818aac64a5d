"""The staff page's Egen provhantering page in a real Chromium (as tests/web/test_browser.py drives
it): give a list offers, follow them as the publisher gets the EP stub's answers, withdraw one;
keyboard-labelled forms, each page checked with axe-core (no serious or critical violation) and
screenshotted into test-artifacts/screenshots/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from support import ProducerServer
from support.ep import EpStub
from support.ep_outbox import start_ep_publisher, wait_until_sent
from support.residents import Residents

A200 = "SE2321000016-A200"
STAFF, PASSWORD = "SE2321000016-S051", "ep-browser-password"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

if not CHROMIUM.exists():
    pytest.skip("no browser: install Debian's chromium (apt-get install chromium), see README, Testing",
                allow_module_level=True)  # fmt: skip
sync_api = pytest.importorskip("playwright.sync_api")
axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")

new_resident = Residents(date(1947, 3, 1), "935")


@pytest.fixture(scope="module")
def server(start_producer: Any) -> ProducerServer:
    return start_producer("epbrowser", {"TIDBOK_STAFF_ACCOUNTS": f"{STAFF}={A200}:{PASSWORD}"})


@pytest.fixture(scope="module")
def page(server: ProducerServer) -> Iterator[Any]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # the driver and Chromium start without libfaketime (make test-dates), as in tests/web/test_browser.py
    faked = {key: os.environ.pop(key) for key in list(os.environ) if key == "LD_PRELOAD" or key.startswith("FAKETIME")}
    manager = sync_api.sync_playwright()
    try:
        playwright = manager.__enter__()
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
    finally:
        os.environ.update(faked)
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="sv-SE", bypass_csp=True)
        context.set_default_timeout(20_000)
        tab = context.new_page()
        tab.goto(server.base_url + "/staff/login")
        tab.get_by_label("HSA-id").fill(STAFF)
        tab.get_by_label("Lösenord").fill(PASSWORD)
        tab.get_by_role("button", name="Logga in").click()
        tab.wait_for_url("**/staff/units/**")
        yield tab
        context.close()
        browser.close()
    finally:
        manager.__exit__(None, None, None)


def check(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    results = axe_module.Axe().run(page)
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in results.response["violations"]
           if v["impact"] in ("serious", "critical")]  # fmt: skip
    assert bad == [], f"{name}: {bad}"


def test_give_a_list_offers_follow_them_and_withdraw_one(
    server: ProducerServer, page: Any, ep: EpStub, tmp_path: Path
) -> None:
    known, unknown = new_resident(), new_resident()
    ep.set_population([known])
    page.get_by_role("link", name="Egen provhantering").click()
    page.wait_for_url("**/offers")
    check(page, "ep-offers-empty")
    form = page.locator("form").filter(has=page.get_by_role("button", name="Ge erbjudandena"))
    csv = tmp_path / "lista.csv"
    csv.write_text(f"personnummer\n{known}\n{unknown}\n", encoding="utf-8")
    form.get_by_label("CSV-fil").set_input_files(str(csv))
    form.get_by_label("Kampanj").fill("hpv-hemtest")
    form.get_by_label("Tidstyp").select_option("PROV")
    form.get_by_label("Förnamn eller funktion").fill("Screeningverksamheten")
    form.get_by_role("button", name="Ge erbjudandena").click()
    page.wait_for_load_state()
    body = page.locator("main").inner_text()
    assert "Erbjudande 7 i Egen provhantering" in body and "köade 2" in body, body
    assert page.locator("tr.offer").filter(has_text=known).filter(has_text="Väntar").count() == 1
    check(page, "ep-offers-queued")

    publisher = start_ep_publisher(server.database_url, ep, tmp_path / "ep.log")
    try:
        with server.connect() as conn:
            wait_until_sent(conn, publisher)
        page.goto(f"{server.base_url}/staff/units/{A200}/offers?campaign=hpv-hemtest")
        rows = page.locator("tr.offer")
        assert rows.filter(has_text=known).filter(has_text="Tilldelat").count() == 1
        refused = rows.filter(has_text=unknown)
        assert "Avvisat" in refused.inner_text() and "folkbokföringsregistret" in refused.inner_text()
        check(page, "ep-offers-answered")
        page.get_by_role("button", name=f"Återta erbjudandet till {known}").click()
        page.wait_for_load_state()
        assert "Erbjudandet tas bort i Egen provhantering." in page.locator("main").inner_text()
        with server.connect() as conn:
            wait_until_sent(conn, publisher)
    finally:
        publisher.kill()
    page.goto(f"{server.base_url}/staff/units/{A200}/offers?campaign=hpv-hemtest")
    assert page.locator("tr.offer").filter(has_text=known).filter(has_text="Återtaget").count() == 1
    assert ep.given(known) == []
    check(page, "ep-offers-withdrawn")
