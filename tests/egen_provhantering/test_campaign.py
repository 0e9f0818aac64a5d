"""Running a campaign as EP offers, as staff do it: the /admin API (JSON errors naming the field),
`tidbok staff` and the staff page (Swedish), each resident's status as the publisher gets EP's
answers from the stub over HTTP: pending (väntar), given (tilldelat), already given (redan
tilldelat), refused with EP's text (avvisat), and parked offers retried by staff after fixing them.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from support import ProducerServer, http_get, run_cli
from support.admin import admin_api
from support.ep import EpStub
from support.ep_outbox import EpPublisher, start_ep_publisher, wait_until_sent
from support.residents import Residents

A100, A200 = "SE2321000016-A100", "SE2321000016-A200"
STAFF = "SE2321000016-S042"
PASSWORD = "ep-campaign-password"
TOKEN = "ep-campaign-token-00001"
A200_TOKEN = "ep-campaign-a200-token1"
FUNCTION = ("SE2321000016-RCC1", "Screeningverksamheten", "RCC Syd")  # [ep] giver_* of this producer
NOT_FOLKBOKFORD = "Invånaren finns inte i folkbokföringsregistret."

new_resident = Residents(date(1945, 6, 1), "824")


@pytest.fixture(scope="module")
def producer(start_producer: Callable[..., ProducerServer]) -> ProducerServer:
    return start_producer("epcampaign", {
        "TIDBOK_ADMIN_TOKENS": f"{TOKEN}=*@{STAFF} {A200_TOKEN}={A200}@{STAFF}",
        "TIDBOK_STAFF_ACCOUNTS": f"{STAFF}={A100}:{PASSWORD}",
        "TIDBOK_EP_GIVER_ID": FUNCTION[0],
        "TIDBOK_EP_GIVER_FIRST_NAME": FUNCTION[1],
        "TIDBOK_EP_GIVER_LAST_NAME": FUNCTION[2],
    })  # fmt: skip


@pytest.fixture
def db(producer: ProducerServer) -> Iterator[psycopg.Connection]:
    with producer.connect(dict_rows=True) as conn:
        conn.execute("DELETE FROM ep_offer WHERE state = 'pending'")  # each test judges its own
        yield conn


@pytest.fixture
def publisher(producer: ProducerServer, ep: EpStub, tmp_path: Path) -> Iterator[EpPublisher]:
    running = start_ep_publisher(producer.database_url, ep, tmp_path / "ep-publisher.log")
    yield running
    running.kill()


def call(producer: ProducerServer, method: str, path: str, body: Any = None, token: str = TOKEN) -> tuple[int, Any]:
    status, _, answer = admin_api(producer, method, path, body, token=token)
    return status, answer


def batch(residents: list[str], campaign: str, time_type: str = "PROV", **ep_offer: Any) -> dict[str, Any]:
    return {
        "csv": "\n".join(residents), "time_type": time_type, "campaign": campaign, "purpose": "Välkommen.",
        "valid_until": str(date.today() + timedelta(days=30)), "ep_offer": ep_offer,
    }  # fmt: skip


def campaign_rows(db: psycopg.Connection, campaign: str) -> tuple[int, int]:
    """(invitations, offer rows) the campaign has."""
    row = db.execute(
        "SELECT (SELECT count(*) FROM booking WHERE campaign = %s) AS invited,"
        " (SELECT count(*) FROM ep_offer WHERE campaign = %s) AS offers",
        (campaign, campaign),
    ).fetchone()
    return row["invited"], row["offers"]


# -- the API: what it refuses, naming the field --------------------------------------------------------


def test_the_api_refuses_an_offer_it_cannot_send_and_writes_nothing(producer: ProducerServer, db) -> None:
    residents = [new_resident(), new_resident()]
    path = f"/admin/units/{A100}/invitation-batches"
    # LAK names no offer in EP (the demo's PROV does): the UnitOfferID is missing
    status, answer = call(producer, "POST", path, batch(residents, "no-offer", "LAK"))
    assert (status, answer["error"]["field"]) == (400, "ep_offer.unit_offer_id"), answer
    assert campaign_rows(db, "no-offer") == (0, 0), "neither the invitations nor the offers were written"

    status, answer = call(producer, "POST", path, batch(residents, "bad", fax="1"))
    assert (status, answer["error"]) == (400, {"message": "unknown field", "field": "ep_offer.fax"})
    status, answer = call(producer, "POST", path, batch(residents, "bad", giver_id="Anna"))
    assert (status, answer["error"]["field"]) == (400, "ep_offer.giver_id")
    status, answer = call(producer, "POST", path, batch(residents, "bad", unit_offer_id="6 7"))
    assert (status, answer["error"]["field"]) == (400, "ep_offer.unit_offer_id")
    status, answer = call(producer, "POST", path, batch(residents, "bad", giver_id="SE2321000016-P777"))
    assert (status, answer["error"]["field"]) == (400, "ep_offer.giver_first_name"), "a named giver needs a name"
    assert campaign_rows(db, "bad") == (0, 0)

    status, answer = call(producer, "POST", f"/admin/units/{A100}/ep-offers", {"csv": "", "campaign": "x"}, A200_TOKEN)
    assert (status, answer["error"]["field"]) == (403, "unit")
    status, answer = call(producer, "GET", f"/admin/units/{A100}/ep-offers?campaign=nobody")
    assert (status, answer["error"]["field"]) == (404, "campaign")


def test_every_resident_of_a_campaign_gets_the_same_offer(producer: ProducerServer, db) -> None:
    """The campaign's terms are fixed by its first batch (the configured function gives it, the
    time type names the offer, the care unit with medical responsibility gives it): a later batch
    that leaves the offer out gets the same, one that names another is refused (409) and writes nothing."""
    first, second, third = new_resident(), new_resident(), new_resident()
    path = f"/admin/units/{A100}/invitation-batches"
    status, report = call(producer, "POST", path, batch([first], "same-offer"))
    assert status == 200, report
    status, found = call(producer, "GET", f"/admin/units/{A100}/ep-offers?campaign=same-offer")
    assert found["terms"] == {
        "access_unit_id": "SE2321000016-V100", "unit_offer_id": "6", "hc_professional_id": FUNCTION[0],
        "hc_first_name": FUNCTION[1], "hc_last_name": FUNCTION[2], "notify_resident": True,
    }  # fmt: skip
    status, report = call(producer, "POST", path, batch([second], "same-offer"))
    assert status == 200 and [o["resident"] for o in report["offers"]["queued"]] == [second], report
    status, answer = call(producer, "POST", path, batch([third], "same-offer", unit_offer_id="7"))
    assert (status, answer["error"]["field"]) == (409, "ep_offer"), answer
    assert campaign_rows(db, "same-offer") == (2, 2)
    status, campaigns = call(producer, "GET", f"/admin/units/{A100}/ep-campaigns")
    (listed,) = [c for c in campaigns if c["campaign"] == "same-offer"]
    assert (listed["counts"]["pending"], listed["residents"]) == (2, [])


# -- statuses as EP answers ----------------------------------------------------------------------------


def test_staff_follow_each_resident_through_the_api(producer: ProducerServer, ep: EpStub, publisher, db) -> None:
    """Known residents are given their offer, an unknown one is refused with EP's text, a resident
    EP had already given the identical offer (within its time limit) is "already given"."""
    known, unknown, earlier = [new_resident() for _ in range(3)], new_resident(), new_resident()
    ep.set_population([*known, earlier])
    status, _ = call(
        producer, "POST", f"/admin/units/{A100}/ep-offers", {"csv": earlier, "campaign": "earlier", "time_type": "PROV"}
    )
    assert status == 200
    wait_until_sent(db, publisher)
    status, report = call(producer, "POST", f"/admin/units/{A100}/invitation-batches",
                          batch([*known, unknown, earlier], "follow"))  # fmt: skip
    assert status == 200 and len(report["offers"]["queued"]) == 5, report
    wait_until_sent(db, publisher)
    status, found = call(producer, "GET", f"/admin/units/{A100}/ep-offers?campaign=follow")
    assert status == 200, found
    by_resident = {r["resident"]: r for r in found["residents"]}
    assert {r: by_resident[r]["status"] for r in [*known, unknown, earlier]} == {
        **dict.fromkeys(known, "given"), unknown: "refused", earlier: "already_given",
    }  # fmt: skip
    assert by_resident[unknown]["detail"] == NOT_FOLKBOKFORD
    assert found["counts"] == {**found["counts"], "given": 3, "refused": 1, "already_given": 1, "pending": 0}
    status, refused = call(producer, "GET", f"/admin/units/{A100}/ep-offers?campaign=follow&status=refused")
    assert [r["resident"] for r in refused["residents"]] == [unknown]
    assert len(ep.given(earlier)) == 1, "the identical offer of the other campaign was not given twice"

    ep.set_population("*")  # the resident is found now (moved to Sweden): staff retry
    status, retried = call(producer, "POST", f"/admin/units/{A100}/ep-offers/retry",
                           {"campaign": "follow", "residents": [unknown]})  # fmt: skip
    assert (status, retried["queued"]) == (200, 1), retried
    wait_until_sent(db, publisher)
    status, found = call(producer, "GET", f"/admin/units/{A100}/ep-offers?campaign=follow")
    assert Counter(r["status"] for r in found["residents"]) == {"given": 4, "already_given": 1}

    metrics = scrape(producer)
    assert metrics["tidbok_ep_outbox_pending"] == 0
    assert metrics["tidbok_ep_publisher_connections"] >= 1, "the running publisher is seen"
    assert metrics["tidbok_ep_outbox_parked"] >= 0


def scrape(producer: ProducerServer) -> dict[str, float]:
    _, _, body = http_get(f"{producer.base_url}/metrics")
    return {s.name: s.value for f in text_string_to_metric_families(body.decode()) for s in f.samples}


# -- the command line ------------------------------------------------------------------------------------


def staff_cli(producer: ProducerServer, *args: str, check: bool = True) -> Any:
    return run_cli(["staff", *args], {"DATABASE_URL": producer.database_url, **producer.extra_env}, check=check)


def test_staff_run_a_campaign_from_the_command_line(
    producer: ProducerServer, ep: EpStub, publisher, db, tmp_path: Path
) -> None:
    residents = [new_resident() for _ in range(3)]
    ep.set_population(residents[:2])
    csv = tmp_path / "lista.csv"
    csv.write_text("personnummer\n" + "\n".join(residents) + "\n19800101-1234\n", encoding="utf-8")
    acting = ["--staff", STAFF, "--unit", A200, "--campaign", "cli-offers"]
    done = staff_cli(producer, "offer-batch", *acting, "--time-type", "PROV", "--json", str(csv))
    report = json.loads(done.stdout)
    assert (len(report["offers"]["queued"]), report["offers"]["unit_offer_id"]) == (3, "7")  # A200's PROV offer
    assert [line["line"] for line in report["invalid"]] == [5]
    wait_until_sent(db, publisher)

    listed = staff_cli(producer, "offers", A200, "cli-offers").stdout.splitlines()
    assert "EP offer 7 from SE2321000016-V100" in listed[0] and "given 2, refused 1" in listed[0], listed
    assert f"{residents[2]}  refused  {NOT_FOLKBOKFORD}" in listed
    only = staff_cli(producer, "offers", A200, "cli-offers", "--status", "refused").stdout.splitlines()
    assert [line.split()[0] for line in only[1:]] == [residents[2]]

    refused = staff_cli(producer, "offer-batch", *acting, "--ep-unit-offer", "8", str(csv), check=False)
    assert refused.returncode == 1 and "\ntidbok staff: ep: campaign cli-offers gives UnitOfferID 7" in refused.stderr
    withdrawn = staff_cli(producer, "offer-withdraw", *acting, "--resident", residents[0])
    assert "undo queued (withdrawing)" in withdrawn.stdout
    ep.set_population("*")
    retried = staff_cli(producer, "offers-retry", *acting)
    assert "1 offer row(s) queued again" in retried.stdout
    wait_until_sent(db, publisher)
    final = staff_cli(producer, "offers", A200, "cli-offers", "--json").stdout
    assert Counter(r["status"] for r in json.loads(final)["residents"]) == {"withdrawn": 1, "given": 2}
    assert ep.given(residents[0]) == [] and len(ep.given(residents[2])) == 1


# -- the staff page ----------------------------------------------------------------------------------------


class Page:
    def __init__(self, producer: ProducerServer) -> None:
        self.base = producer.base_url
        self.session = requests.Session()
        login = self.session.get(f"{self.base}/staff/login", timeout=30)
        token = re.search(r'name="login_token" value="([^"]+)"', login.text)
        assert token is not None
        self.session.post(f"{self.base}/staff/login", timeout=30,
                          data={"login_token": token.group(1), "hsa_id": STAFF, "password": PASSWORD})  # fmt: skip
        self.csrf = ""

    def get(self, path: str) -> str:
        response = self.session.get(f"{self.base}{path}", timeout=30)
        assert response.status_code == 200, response.text
        self.csrf = re.search(r'name="csrf" value="([^"]+)"', response.text).group(1)  # type: ignore[union-attr]
        return response.text

    def post(self, path: str, data: dict[str, str], files: dict[str, Any] | None = None) -> requests.Response:
        return self.session.post(f"{self.base}{path}", data={"csrf": self.csrf, **data}, files=files, timeout=60)


def words(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_staff_run_and_follow_a_campaign_on_the_page(producer: ProducerServer, ep: EpStub, publisher, db) -> None:
    """The screening form gives offers too; the page shows each resident in Swedish with EP's text,
    and staff retry the refused one after EP knows the resident, and withdraw a given one."""
    known, unknown = new_resident(), new_resident()
    ep.set_population([known])
    page = Page(producer)
    page.get(f"/staff/units/{A100}/invitations")
    sent = page.post(f"/staff/units/{A100}/invitations/batch", {
        "time_type": "PROV", "campaign": "page-offers", "purpose": "Välkommen.",
        "valid_until": str(date.today() + timedelta(days=30)), "ep_offer": "on", "ep_notify": "on",
    }, files={"csv": ("lista.csv", f"{known}\n{unknown}\n".encode())})  # fmt: skip
    assert sent.status_code == 200, sent.text
    assert "Erbjudande 6 i Egen provhantering från SE2321000016-V100: köade 2" in words(sent.text)
    wait_until_sent(db, publisher)

    shown = words(page.get(f"/staff/units/{A100}/offers?campaign=page-offers"))
    assert f"{known} Tilldelat" in shown and f"{unknown} Avvisat" in shown and NOT_FOLKBOKFORD in shown
    assert f"Tilldelas av {FUNCTION[1]} {FUNCTION[2]} ({FUNCTION[0]})" in shown

    ep.set_population("*")
    retried = page.post(f"/staff/units/{A100}/offers/retry", {"campaign": "page-offers", "resident": unknown})
    assert retried.status_code == 200 and "1 erbjudande(n) skickas igen." in words(retried.text)
    wait_until_sent(db, publisher)
    withdrawn = page.post(f"/staff/units/{A100}/offers/withdraw", {"campaign": "page-offers", "resident": known})
    assert "Erbjudandet tas bort i Egen provhantering." in words(withdrawn.text)
    wait_until_sent(db, publisher)
    shown = words(page.get(f"/staff/units/{A100}/offers?campaign=page-offers"))
    assert f"{known} Återtaget" in shown and f"{unknown} Tilldelat" in shown
    assert ep.given(known) == [] and len(ep.given(unknown)) == 1

    refused = page.post(f"/staff/units/{A100}/offers/batch", {"campaign": "page-offers", "ep_unit_offer": "9"},
                        files={"csv": ("lista.csv", f"{new_resident()}\n".encode())})  # fmt: skip
    assert refused.status_code == 400
    assert "Egen provhantering: kampanjen page-offers ger erbjudande 6 till alla sina invånare" in words(refused.text)
