"""The EP outbox end to end: campaigns queue offers through the /admin API of a real producer, real
publisher processes (`python -m producer ep publish`) send them over HTTP (and mutual TLS) to the EP
stub, and the stub's record of what it gave is compared with the outbox: every resident's offer
given exactly once, whatever failed on the way.

- given, already given within the time limit (a repeat after a lost answer), refused with EP's
  ValidationErrorList (parked, never sent again until staff retry), technical errors (retried);
- withdrawals: an undo behind its add, in order, also from racing publishers; dropped when the
  offer was never sent;
- a 1,000-resident campaign with invalid, unknown and repeated lines; technical faults, an outage,
  slow answers past the client's timeout and a publisher killed mid-campaign, nothing lost or doubled.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support import ProducerServer
from support.admin import admin_api
from support.ep import EpStub
from support.ep_outbox import EpPublisher, offer_rows, start_ep_publisher, wait_until_sent
from support.residents import Residents

A100 = "SE2321000016-A100"
MEDICAL_UNIT = "SE2321000016-V100"  # the demo units' care unit with medical responsibility: AccessUnitID
STAFF = "SE2321000016-S031"
TOKEN = "ep-publisher-token-0001"
GIVER = {"giver_id": "SE2321000016-RCC1", "giver_first_name": "Screeningverksamheten", "giver_last_name": "RCC Syd"}
NOT_FOLKBOKFORD = "Invånaren finns inte i folkbokföringsregistret."  # the stub's text (its rules.py)

new_resident = Residents(date(1940, 1, 1), "713")  # 1,000-resident campaigns: one birth date each


@pytest.fixture(scope="module")
def producer(start_producer: Callable[..., ProducerServer]) -> ProducerServer:
    return start_producer("epoffers", {"TIDBOK_ADMIN_TOKENS": f"{TOKEN}=*@{STAFF}"})


@pytest.fixture
def db(producer: ProducerServer) -> Iterator[psycopg.Connection]:
    with producer.connect(dict_rows=True) as conn:
        yield conn


class Publishers:
    """Publisher processes a test starts; killed at its end."""

    def __init__(self, producer: ProducerServer, stub: EpStub, log_dir: Path) -> None:
        self.producer, self.stub, self.log_dir = producer, stub, log_dir
        self.started: list[EpPublisher] = []

    def start(self, **env: str) -> EpPublisher:
        log = self.log_dir / f"ep-publisher-{len(self.started) + 1}.log"
        publisher = start_ep_publisher(self.producer.database_url, self.stub, log, env)
        self.started.append(publisher)
        return publisher


@pytest.fixture
def publishers(producer: ProducerServer, ep: EpStub, tmp_path: Path) -> Iterator[Publishers]:
    """No offer of an earlier test left to send (each test judges its own), a reset stub, and the
    publishers the test starts, killed at its end."""
    with producer.connect() as conn:
        conn.execute("DELETE FROM ep_offer WHERE state = 'pending'")
    running = Publishers(producer, ep, tmp_path)
    yield running
    for publisher in running.started:
        publisher.kill()


def api(producer: ProducerServer, method: str, path: str, body: Any = None) -> Any:
    status, _, answer = admin_api(producer, method, f"/admin/units/{A100}/{path}", body, token=TOKEN, timeout=120)
    assert status == 200, (status, answer)
    return answer


def screening(producer: ProducerServer, campaign: str, lines: list[str], **ep_offer: Any) -> dict[str, Any]:
    """A screening batch at A100 (open PROV invitations) whose residents also get an EP offer."""
    return api(producer, "POST", "invitation-batches", {
        "csv": "personnummer\n" + "\n".join(lines) + "\n", "time_type": "PROV", "campaign": campaign,
        "purpose": "Välkommen till screening.", "valid_until": str(date.today() + timedelta(days=60)),
        "ep_offer": {**GIVER, **ep_offer},
    })  # fmt: skip


def offers_only(producer: ProducerServer, campaign: str, residents: list[str], **ep_offer: Any) -> dict[str, Any]:
    body = {"csv": "\n".join(residents), "campaign": campaign, "time_type": "PROV", "ep_offer": {**GIVER, **ep_offer}}
    return api(producer, "POST", "ep-offers", body)


def statuses(producer: ProducerServer, campaign: str) -> dict[str, dict[str, Any]]:
    found = api(producer, "GET", f"ep-offers?campaign={campaign}")
    return {r["resident"]: r for r in found["residents"]}


def given_by_resident(stub: EpStub) -> Counter[str]:
    return Counter(offer["personal_number"] for offer in stub.given())


def assert_given_once(stub: EpStub, db: psycopg.Connection, campaign: str, residents: list[str]) -> None:
    """The stub holds exactly one offer per resident, with the campaign's fields; the outbox says each
    add was answered given or already given, once and only once per resident."""
    held = given_by_resident(stub)
    assert {r: held[r] for r in residents} == dict.fromkeys(residents, 1), "each resident's offer given once"
    wanted = set(residents)
    rows = [r for r in offer_rows(db, campaign) if r["action"] == "add" and r["resident"] in wanted]
    assert sorted(r["resident"] for r in rows) == sorted(residents), "one add per resident"
    assert {(r["state"], r["outcome"]) for r in rows} <= {("sent", "given"), ("sent", "already_given")}
    for offer in stub.given():
        if offer["personal_number"] in residents:
            assert (offer["access_unit_id"], offer["unit_offer_id"], offer["hc_professional_id"]) == (
                MEDICAL_UNIT, "6", GIVER["giver_id"],
            )  # fmt: skip
            assert (offer["hc_first_name"], offer["hc_last_name"], offer["notify_resident"]) == (
                GIVER["giver_first_name"], GIVER["giver_last_name"], True,
            )  # fmt: skip


# -- a campaign of 1,000 ----------------------------------------------------------------------------------


def test_a_campaign_of_a_thousand_residents(producer: ProducerServer, ep: EpStub, publishers: Publishers, db) -> None:
    """1,000 lines: 960 residents EP knows, 20 it does not (refused with its text, parked), 10 with a
    wrong check digit and 10 repeated lines (reported, never sent). Every known resident's offer is
    given once, with the campaign's fields."""
    known = [new_resident() for _ in range(960)]
    unknown = [new_resident() for _ in range(20)]
    invalid = [new_resident(bad_check_digit=True) for _ in range(10)]
    lines = known[:500] + unknown + invalid + known[500:] + known[:10]
    assert len(lines) == 1000
    ep.set_population(known + [new_resident() for _ in range(5)])
    started = time.monotonic()
    report = screening(producer, "cervix-1000", lines)
    assert (len(report["invited"]), len(report["already_invited"]), len(report["invalid"])) == (980, 10, 10)
    offers = report["offers"]
    assert (len(offers["queued"]), len(offers["already_offered"]), offers["not_offered"]) == (980, 0, [])
    assert (offers["unit_offer_id"], offers["access_unit_id"]) == ("6", MEDICAL_UNIT)  # PROV's, and V100

    publisher = publishers.start()
    wait_until_sent(db, publisher, seconds=60)
    elapsed = time.monotonic() - started
    assert_given_once(ep, db, "cervix-1000", known)
    assert not set(given_by_resident(ep)) & set(unknown + invalid)
    found = statuses(producer, "cervix-1000")
    assert Counter(r["status"] for r in found.values()) == {"given": 960, "refused": 20}
    for resident in unknown:
        assert found[resident]["detail"] == NOT_FOLKBOKFORD
        assert found[resident]["validation_errors"] == [
            {"container": "AddGivenOfferByExternalSystemRequest", "element": "PersonalNumber", "text": NOT_FOLKBOKFORD}
        ]
    assert all(found[r]["booking_id"] == i["booking_id"] for i in report["invited"] for r in [i["resident"]])
    calls = Counter(line["operation"] for line in ep.state()["log"])
    assert calls == {"AddGivenOfferByExternalSystem": 980}, "no refused offer is sent again blindly"
    assert elapsed < 30, f"the campaign took {elapsed:.1f} s"


# -- faults ----------------------------------------------------------------------------------------------


def test_technical_faults_an_outage_slow_answers_and_a_killed_publisher_lose_and_double_nothing(
    producer: ProducerServer, ep: EpStub, publishers: Publishers, db
) -> None:
    """300 offers while EP answers a TechnicalErrorList to a third of the calls, then is down (503),
    then gives offers but answers after the client has given up (the retry is answered "already
    given within the time limit"), while two publishers send and one of them is killed mid-way."""
    residents = [new_resident() for _ in range(300)]
    offers_only(producer, "faults", residents)
    ep.set_faults(mode="technical", fraction=0.33, seed=17)
    first = publishers.start(TIDBOK_EP_TIMEOUT="1", TIDBOK_EP_PUBLISHER_THREADS="2")
    second = publishers.start(TIDBOK_EP_TIMEOUT="1", TIDBOK_EP_PUBLISHER_THREADS="2")
    until(lambda: len(ep.given()) >= 60, "a fifth of the offers given", [first, second])
    first.kill()
    ep.set_faults(mode="down")
    until(lambda: sum(line["outcome"] == "down" for line in ep.state()["log"]) >= 5, "calls while EP is down", [second])
    ep.set_faults(mode="slow", delay_seconds=1.5, remaining=4)
    until(lambda: sum(line["outcome"] == "already_given" for line in ep.state()["log"]) >= 1,
          "a slow call answered already given on its retry", [second])  # fmt: skip
    ep.set_faults(mode="technical", fraction=0.2, seed=3)
    third = publishers.start(TIDBOK_EP_TIMEOUT="1")
    until(lambda: len(ep.given()) >= 250, "most offers given", [second, third])
    ep.set_faults(mode="ok")
    wait_until_sent(db, [second, third], seconds=60)

    assert_given_once(ep, db, "faults", residents)
    rows = [r for r in offer_rows(db, "faults") if r["action"] == "add"]
    retried = [r for r in rows if r["attempts"] > 1]
    assert retried, "some offers were sent more than once"
    assert any(r["outcome"] == "already_given" for r in rows), "a repeat after a lost answer counts as given"
    log = ep.state()["log"]
    assert {line["outcome"] for line in log} >= {"given", "technical", "down", "already_given"}
    repeated = sum(r["outcome"] == "already_given" for r in rows)
    shown = Counter(r["status"] for r in statuses(producer, "faults").values())
    assert shown == {"given": 300 - repeated, "already_given": repeated}, "staff see each as given"


def until(condition: Callable[[], Any], what: str, running: list[EpPublisher], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        for publisher in running:
            assert publisher.process.poll() is None, publisher.output()
        if time.monotonic() > deadline:
            logs = "\n".join(p.output()[-3000:] for p in running)
            pytest.fail(f"waited {seconds} s for {what}\n{logs}", pytrace=False)
        time.sleep(0.05)


def test_a_call_that_keeps_failing_is_parked_then_retried_by_staff(
    producer: ProducerServer, ep: EpStub, publishers: Publishers, db
) -> None:
    resident = new_resident()
    offers_only(producer, "gave-up", [resident])
    ep.set_faults(mode="technical")
    publisher = publishers.start(TIDBOK_EP_RETRY_MAX_ATTEMPTS="3")
    wait_until_sent(db, publisher)
    (row,) = offer_rows(db, "gave-up")
    assert (row["state"], row["outcome"], row["attempts"]) == ("parked", "technical", 3)
    assert statuses(producer, "gave-up")[resident]["status"] == "failed"
    assert ep.given(resident) == []
    ep.set_faults(mode="ok")
    retried = api(producer, "POST", "ep-offers/retry", {"campaign": "gave-up"})
    assert retried["queued"] == 1
    wait_until_sent(db, publisher)
    assert statuses(producer, "gave-up")[resident]["status"] == "given"
    assert len(ep.given(resident)) == 1


def test_a_refused_campaign_is_retried_with_the_right_offer(
    producer: ProducerServer, ep: EpStub, publishers: Publishers, db
) -> None:
    """EP knows no offer 999: every add is refused with its text and parked; a withdrawal of a refused
    offer drops it (nothing was given); staff correct the UnitOfferID and retry: the rest are given."""
    residents = [new_resident() for _ in range(4)]
    ep.set_unit_offers(["6", "7"])
    offers_only(producer, "wrong-offer", residents, unit_offer_id="999")
    publisher = publishers.start()
    wait_until_sent(db, publisher)
    found = statuses(producer, "wrong-offer")
    assert {r["status"] for r in found.values()} == {"refused"}
    assert {r["detail"] for r in found.values()} == {"Det finns inget erbjudande med UnitOfferID 999."}
    withdrawn = api(producer, "POST", "ep-offers/withdrawals", {"campaign": "wrong-offer", "resident": residents[0]})
    assert (withdrawn["done"], withdrawn["offer"]["status"]) == ("dropped", "withdrawn")

    retried = api(producer, "POST", "ep-offers/retry", {"campaign": "wrong-offer", "ep_offer": {"unit_offer_id": "6"}})
    assert (retried["queued"], retried["terms"]["unit_offer_id"]) == (3, "6")
    wait_until_sent(db, publisher)
    assert_given_once(ep, db, "wrong-offer", residents[1:])
    assert ep.given(residents[0]) == []
    assert statuses(producer, "wrong-offer")[residents[0]]["status"] == "withdrawn"


# -- withdrawals -------------------------------------------------------------------------------------------


def test_withdrawing_undoes_the_offer_in_ep_after_its_add(
    producer: ProducerServer, ep: EpStub, publishers: Publishers, db
) -> None:
    """Three residents of a screening with offers. Staff cancel the first one's invitation (it
    withdraws its offer too) and withdraw the second one's offer, both before any publisher runs:
    the adds and undos then go out in order, from two racing publishers; the third keeps its offer.
    A resident withdrawn before anything was sent never reaches EP."""
    first, second, third, never = (new_resident() for _ in range(4))
    report = screening(producer, "withdrawals", [first, second, third])
    ids = {i["resident"]: i["booking_id"] for i in report["invited"]}
    publisher = publishers.start()
    wait_until_sent(db, publisher)
    publisher.stop()
    assert set(given_by_resident(ep)) == {first, second, third}

    status, _, cancelled = admin_api(producer, "DELETE", f"/admin/units/{A100}/bookings/{ids[first]}", token=TOKEN)
    assert status == 200 and cancelled["booking"]["status"] == "cancelled", cancelled
    withdrawn = api(producer, "POST", "ep-offers/withdrawals", {"campaign": "withdrawals", "resident": second})
    assert withdrawn["done"] == "undo"
    assert statuses(producer, "withdrawals")[first]["status"] == "withdrawing"
    again = api(producer, "POST", "ep-offers/withdrawals", {"campaign": "withdrawals", "resident": second})
    assert again["done"] == "already"

    screening(producer, "withdrawals", [never])  # queued, and withdrawn before it is sent
    dropped = api(producer, "POST", "ep-offers/withdrawals", {"campaign": "withdrawals", "resident": never})
    assert dropped["done"] == "dropped"

    racing = [publishers.start(), publishers.start()]
    wait_until_sent(db, racing)
    assert set(given_by_resident(ep)) == {third}
    log = [(line["operation"], line["personal_number"]) for line in ep.state()["log"]]
    for resident in (first, second):
        assert [op for op, who in log if who == resident] == [
            "AddGivenOfferByExternalSystem", "UndoGivenOfferByExternalSystem",
        ]  # fmt: skip
    assert never not in {who for _, who in log}
    found = statuses(producer, "withdrawals")
    assert {r: found[r]["status"] for r in (first, second, third, never)} == {
        first: "withdrawn", second: "withdrawn", third: "given", never: "withdrawn",
    }  # fmt: skip


def test_an_add_and_its_undo_queued_together_go_out_in_order(
    producer: ProducerServer, ep: EpStub, publishers: Publishers, db
) -> None:
    """Fifty residents' offers withdrawn while three publishers race to send them to a slow EP: the
    ones given get their undo after the add, those still queued are dropped (never sent), the ones
    in flight are undone after they land; nothing stays given."""
    residents = [new_resident() for _ in range(50)]
    offers_only(producer, "in-order", residents)
    ep.set_faults(mode="slow", delay_seconds=0.2)
    racing = [publishers.start(TIDBOK_EP_PUBLISHER_THREADS="3") for _ in range(3)]
    until(lambda: len(ep.given()) >= 5, "the first offers given", racing)
    for resident in residents:
        api(producer, "POST", "ep-offers/withdrawals", {"campaign": "in-order", "resident": resident})
    wait_until_sent(db, racing)
    log = [(line["operation"], line["personal_number"]) for line in ep.state()["log"]]
    pair = ["AddGivenOfferByExternalSystem", "UndoGivenOfferByExternalSystem"]
    sent = {resident: [op for op, who in log if who == resident] for resident in residents}
    assert all(calls in ([], pair) for calls in sent.values()), sent
    assert sum(calls == pair for calls in sent.values()) >= 5, "offers were withdrawn after they were given"
    assert not set(given_by_resident(ep)) & set(residents)
    assert {r["status"] for r in statuses(producer, "in-order").values()} == {"withdrawn"}


# -- mutual TLS ---------------------------------------------------------------------------------------------


def test_offers_are_sent_with_the_function_certificate(
    producer: ProducerServer, ep_tls: EpStub, db, tmp_path: Path
) -> None:
    """EP requires the SITHS function certificate: with it the offers are given; with a certificate
    from another CA the handshake fails, the rows wait (pending, the TLS failure recorded)."""
    with producer.connect() as conn:
        conn.execute("DELETE FROM ep_offer WHERE state = 'pending'")
    residents = [new_resident() for _ in range(5)]
    assert ep_tls.pki is not None
    stranger = {"TIDBOK_EP_CERT": str(ep_tls.pki.stranger.cert), "TIDBOK_EP_KEY": str(ep_tls.pki.stranger.key)}
    refused = start_ep_publisher(producer.database_url, ep_tls, tmp_path / "stranger.log", stranger)
    try:
        offers_only(producer, "tls", residents)
        until(lambda: any(r["attempts"] for r in offer_rows(db, "tls")), "a failed handshake recorded", [refused])
    finally:
        refused.kill()
    tried = [r for r in offer_rows(db, "tls") if r["attempts"]]
    assert tried and all(r["state"] == "pending" and "TLS" in r["last_error"] for r in tried), tried
    assert ep_tls.given() == []
    with producer.connect() as conn:
        conn.execute("UPDATE ep_offer SET next_attempt_at = 'epoch' WHERE campaign = 'tls'")
    publisher = start_ep_publisher(producer.database_url, ep_tls, tmp_path / "function.log")
    try:
        wait_until_sent(db, publisher)
    finally:
        publisher.kill()
    assert_given_once(ep_tls, db, "tls", residents)
