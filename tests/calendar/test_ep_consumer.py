"""Egen provhantering (EP) as a consumer of the scheduling contracts: the demo's consumer rule lets
EP cancel a sampling time until its start, so an order the resident undoes always frees its time,
while a resident's own cancellation through 1177 keeps the unit's change deadline (24 hours).

EP calls through the national platform with its own HSA-id: the platform's certificate identifies
the caller, and x-rivta-original-serviceconsumer-hsaid names EP. That header is believed only from
a platform listed in TIDBOK_PLATFORMS (and in the open mode, where nobody is identified); from any
other caller the caller itself is the consumer. Both modes are tested here, over SOAP with zeep
clients built from the OFFICIAL WSDLs. A time booked by EP carries its consumer: in the booking's
history, and for staff in the day list (API), the booking (API) and the staff page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from support import ProducerServer
from support.admin import admin_api
from support.calendar import STOCKHOLM, CalendarDb, Slot, insert_slot
from support.official import OfficialClient, zeep_client
from support.pki import Authority, Issued
from support.residents import Residents, as_resident
from support.server import client_tls

from producer.calendar import resident_texts as texts

A200 = "SE2321000016-A200"  # Provtagningen Exempel: the demo's sampling unit (24 h change deadline)
EP = "SE2321000016-EP01"  # the demo's EP consumer: may cancel until the start at A100 and A200
EP_NAME = "Egen provhantering"
P1177 = "SE2321000016-1177"  # 1177 Vårdguidens e-tjänster, as the platform names the original consumer
PLATFORM = "SE2321000016-A2G2"  # the national service platform (its certificate)
OTHER = "SE2321000016-B7NR"  # a consumer calling directly, not a platform
CONSUMER_HEADER = "x-rivta-original-serviceconsumer-hsaid"
TOKEN = "ep-consumer-token-000001"
STAFF = "SE2321000016-S017"
PASSWORD = "ep-consumer-password"

new_resident = Residents(date(1931, 2, 1), "628")  # nobody else uses these


class Sampling(CalendarDb):
    """A producer's calendar with fresh sampling slots an hour ahead at A200, and its SOAP clients."""

    def __init__(self, server: ProducerServer, session: Callable[[str], requests.Session] | None = None) -> None:
        super().__init__(server)
        self._session = session
        self._clients: dict[tuple[str, str, str | None], OfficialClient] = {}

    def soon(self, minutes: int = 60) -> Slot:
        """A new free PROV slot at A200 starting `minutes` from now, on no performer (nothing overlaps)."""
        start = (datetime.now(UTC) + timedelta(minutes=minutes)).replace(second=0, microsecond=0)
        slot_id = insert_slot(self.db, A200, start, start + timedelta(minutes=10), "PROV", "LAB")
        self.claim(slot_id)
        return self.slot(slot_id)

    def client(self, op: str, consumer: str | None, who: str = "") -> OfficialClient:
        key = (op, who, consumer)
        if key not in self._clients:
            headers = {CONSUMER_HEADER: consumer} if consumer else {}
            session = self._session(who) if self._session else None
            self._clients[key] = zeep_client(op, self.server.base_url, http_headers=headers, session=session)
        return self._clients[key]

    def book(self, resident: str, slot: Slot, consumer: str | None, who: str = "") -> Any:
        return self.client("MakeBooking", consumer, who).call(
            A200,
            as_resident(resident),
            healthcare_facility_med=A200,
            requestedTimeslot=slot.timeslot(resident, slot.ref),
            subject_of_care_info={"firstName": "Prov", "lastName": "Tagningsson"},
        )

    def cancel(self, resident: str, booking_id: str, consumer: str | None, who: str = "") -> Any:
        return self.client("CancelBooking", consumer, who).call(
            A200, as_resident(resident), healthcare_facility=A200, bookingId=booking_id
        )

    def state(self, booking_id: str) -> dict[str, Any]:
        return self.one(
            "SELECT b.status, b.consumer, s.booking_pk IS NOT NULL AS holds FROM booking b"
            " LEFT JOIN slot s ON s.booking_pk = b.pk WHERE b.booking_id = %s ORDER BY b.pk DESC LIMIT 1",
            booking_id,
        )


def booked(response: Any) -> str:
    assert response.resultCode == "OK", response.resultText
    return response.bookingId


def refused_too_late(response: Any) -> None:
    assert (response.resultCode, response.resultText) == ("ERROR", texts.TOO_LATE_TO_CANCEL)


# -- the open mode: the header is taken at its word ------------------------------------------------------


@pytest.fixture(scope="module")
def sampling(start_producer: Callable[..., ProducerServer]) -> Iterator[Sampling]:
    server = start_producer(
        "epconsumer",
        {"TIDBOK_ADMIN_TOKENS": f"{TOKEN}=*@{STAFF}", "TIDBOK_STAFF_ACCOUNTS": f"{STAFF}=*:{PASSWORD}"},
    )
    calendar = Sampling(server)
    yield calendar
    calendar.close()


def test_ep_cancels_a_sampling_time_an_hour_before_its_start_and_1177_may_not(sampling: Sampling) -> None:
    """EP's booking an hour ahead is cancelled by EP (its order was undone): the slot is free at once.
    The resident's own booking through 1177 is refused (24 hours), and so is the resident's cancel
    of EP's booking through 1177: the deadline is the caller's, not the booker's."""
    by_ep, by_resident = new_resident(), new_resident()
    ep_slot, own_slot = sampling.soon(), sampling.soon()
    ep_booking = booked(sampling.book(by_ep, ep_slot, EP))
    own_booking = booked(sampling.book(by_resident, own_slot, P1177))

    refused_too_late(sampling.cancel(by_resident, own_booking, P1177))
    refused_too_late(sampling.cancel(by_ep, ep_booking, P1177))
    assert sampling.state(own_booking) == {"status": "active", "consumer": P1177, "holds": True}
    assert sampling.state(ep_booking) == {"status": "active", "consumer": EP, "holds": True}

    cancelled = sampling.cancel(by_ep, ep_booking, EP)
    assert cancelled.resultCode == "OK", cancelled.resultText
    assert sampling.state(ep_booking) == {"status": "cancelled", "consumer": EP, "holds": False}
    assert sampling.holder(ep_slot.id) is None, "the undone order freed its time"


def test_the_flags_tell_each_consumer_what_it_may_do(sampling: Sampling) -> None:
    """GetBookingDetails of the same booking, an hour ahead: cancel and rebooking allowed for EP, not for 1177."""
    resident, slot = new_resident(), sampling.soon()
    booking_id = booked(sampling.book(resident, slot, EP))
    for consumer, allowed in ((EP, True), (P1177, False)):
        details = sampling.client("GetBookingDetails", consumer).call(
            A200, as_resident(resident), healthcare_facility=A200, bookingId=booking_id
        )
        flags = (details.timeslotDetail.cancel_booking_allowed, details.timeslotDetail.rebooking_allowed)
        assert flags == (allowed, allowed), consumer


def test_staff_see_a_time_booked_by_ep_as_such(sampling: Sampling) -> None:
    """The history names EP as the consumer of the booking; the day list and the booking (API) carry
    it with its name from the consumer rule; the staff page's day and booking say "via Egen provhantering"."""
    resident, slot = new_resident(), sampling.soon(90)
    booking_id = booked(sampling.book(resident, slot, EP))
    status, _, history = admin_api(sampling.server, "GET", f"/admin/units/{A200}/bookings/{booking_id}/history",
                                   token=TOKEN)  # fmt: skip
    assert status == 200, history
    (book,) = [e for e in history["events"] if e["action"] == "book"]
    assert (book["channel"], book["details"]["service_consumer"], book["details"]["consumer"]) == ("soap", EP, EP)
    assert (history["booking"]["consumer"], history["booking"]["consumer_name"]) == (EP, EP_NAME)

    day = slot.starts_at.astimezone(STOCKHOLM).date()
    status, _, listed = admin_api(sampling.server, "GET", f"/admin/units/{A200}/bookings?date={day}", token=TOKEN)
    assert status == 200, listed
    (held,) = [s for s in listed if s["slot"] == slot.ref]
    assert (held["booking"]["booking_id"], held["booking"]["consumer_name"]) == (booking_id, EP_NAME)

    page = StaffPage(sampling.server)
    assert f"via {EP_NAME}" in page.text(f"/staff/units/{A200}/day?date={day}")
    booking_page = page.text(f"/staff/units/{A200}/bookings/{booking_id}")
    assert f"Bokad via {EP_NAME} ({EP})" in booking_page
    assert f"{EP_NAME} ({EP})" in booking_page.split("Historik", 1)[1], "the history row names EP"


class StaffPage:
    """A logged-in staff member's browser, as plain HTTP (the pages work without JavaScript)."""

    def __init__(self, server: ProducerServer) -> None:
        self.base = server.base_url
        self.session = requests.Session()
        login = self.session.get(f"{self.base}/staff/login", timeout=30)
        token = re.search(r'name="login_token" value="([^"]+)"', login.text)
        assert token is not None, login.text
        done = self.session.post(
            f"{self.base}/staff/login",
            data={"login_token": token.group(1), "hsa_id": STAFF, "password": PASSWORD},
            timeout=30,
        )
        assert done.status_code == 200 and "Logga ut" in done.text, done.text

    def text(self, path: str) -> str:
        response = self.session.get(f"{self.base}{path}", timeout=30)
        assert response.status_code == 200, response.text
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text))


# -- mutual TLS: the platform's header believed only from a platform ------------------------------------


class Pki:
    def __init__(self, directory: Path) -> None:
        self.ca = Authority(directory, "siths")
        self.server = self.ca.server()
        self.certificates = {
            "platform": self.ca.function_certificate(PLATFORM, "platform"),
            "ep": self.ca.function_certificate(EP, "ep"),
            "other": self.ca.function_certificate(OTHER, "other"),
        }

    def session(self, who: str) -> requests.Session:
        issued: Issued = self.certificates[who]
        session = requests.Session()
        session.trust_env = False
        session.cert = issued.pair
        session.verify = str(self.ca.bundle)
        return session


@pytest.fixture(scope="module")
def platform(
    start_producer: Callable[..., ProducerServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sampling]:
    pki = Pki(tmp_path_factory.mktemp("ep-pki"))
    config = tmp_path_factory.mktemp("ep-config") / "tidbok.toml"
    config.write_text(
        f"""
[tls]
cert = "{pki.server.cert}"
key = "{pki.server.key}"
ca = "{pki.ca.bundle}"

[bookings]
platforms = ["{PLATFORM}"]

[[consumer]]
hsa_id = "{PLATFORM}"

[[consumer]]
hsa_id = "{EP}"

[[consumer]]
hsa_id = "{OTHER}"
"""
    )
    server = start_producer(
        "epplatform",
        {"TIDBOK_CONFIG": str(config)},
        client_tls(pki.certificates["platform"].cert, pki.certificates["platform"].key, pki.ca.bundle),
    )
    calendar = Sampling(server, pki.session)
    yield calendar
    calendar.close()


@pytest.mark.parametrize(
    ("who", "header", "may"),
    [
        ("platform", EP, True),  # EP through the platform: the platform's header names it
        ("platform", P1177, False),  # the resident through 1177 and the platform
        ("ep", None, True),  # EP calling directly with its own certificate
        ("other", EP, False),  # a consumer that is no platform: its header is not believed
    ],
)
def test_through_the_platform_the_original_consumer_decides(
    platform: Sampling, who: str, header: str | None, may: bool
) -> None:
    resident, slot = new_resident(), platform.soon()
    booking_id = booked(platform.book(resident, slot, header, who))
    expected = EP if may else (P1177 if who == "platform" else OTHER)
    assert platform.state(booking_id)["consumer"] == expected
    response = platform.cancel(resident, booking_id, header, who)
    if may:
        assert response.resultCode == "OK", response.resultText
        assert platform.holder(slot.id) is None
    else:
        refused_too_late(response)
        assert platform.holder(slot.id) is not None
    (book,) = platform.rows(
        "SELECT e.details FROM booking_event e JOIN booking b ON b.pk = e.booking_pk"
        " WHERE b.booking_id = %s AND e.action = 'book'",
        booking_id,
    )
    caller = {"platform": PLATFORM, "ep": EP, "other": OTHER}[who]
    assert (book["details"]["caller"], book["details"]["service_consumer"]) == (caller, expected)
