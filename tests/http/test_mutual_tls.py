"""Mutual TLS and consumer authorization, through real TLS handshakes with certificates made here.

The producer serves HTTPS and requires a client certificate from the configured CA; the consumer
is the HSA-id in the certificate subject's SERIALNUMBER, authorized by the configuration file's
[[consumer]] tables (one consumer narrowed to a contract and a care unit). Calls go through a
zeep client built from the OFFICIAL WSDL, over a requests session carrying the certificate.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import zeep.exceptions
from prometheus_client.parser import text_string_to_metric_families
from support import DEMO_RESIDENT, ProducerServer, http_get, soap_post
from support.calendar import CalendarDb
from support.official import OfficialClient, zeep_client
from support.pki import Authority, Issued
from support.residents import Residents, as_resident
from support.server import client_tls

A100, A200 = "SE2321000016-A100", "SE2321000016-A200"
PLATFORM = "SE2321000016-A2G2"  # the national platform's consumer id (seed 000's example)
NARROW = "SE2321000016-B7NR"  # may only call GetAllTimeTypes for A100
STRANGER = "SE2321000016-ZZ99"  # a valid certificate from the right CA, not configured
new_resident = Residents(__import__("datetime").date(1961, 3, 1), "481")


class Pki:
    def __init__(self, directory: Path) -> None:
        self.ca = Authority(directory, "siths")
        self.server = self.ca.server()
        self.platform = self.ca.function_certificate(PLATFORM, "platform")
        self.narrow = self.ca.function_certificate(NARROW, "narrow")
        self.stranger = self.ca.function_certificate(STRANGER, "stranger")
        self.anonymous = self.ca.function_certificate(None, "anonymous")
        self.expired = self.ca.function_certificate(PLATFORM, "expired", expired=True)
        self.rogue = Authority(directory, "rogue").function_certificate(PLATFORM, "rogue")

    def context(self, issued: Issued | None) -> ssl.SSLContext:
        if issued is None:
            return ssl.create_default_context(cafile=str(self.ca.bundle))
        return client_tls(issued.cert, issued.key, self.ca.bundle)

    def session(self, issued: Issued) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would replace `verify`
        session.cert = issued.pair
        session.verify = str(self.ca.bundle)
        return session


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server(start_producer: Callable[..., ProducerServer], pki: Pki, tmp_path_factory: pytest.TempPathFactory):
    config = tmp_path_factory.mktemp("config") / "tidbok.toml"
    config.write_text(
        f"""
[tls]
cert = "{pki.server.cert}"
key = "{pki.server.key}"
ca = "{pki.ca.bundle}"

[[consumer]]
hsa_id = "{PLATFORM.lower()}"

[[consumer]]
hsa_id = "{NARROW}"
contracts = ["GetAllTimeTypes"]
units = ["{A100}"]
"""
    )
    return start_producer("mtls", {"TIDBOK_CONFIG": str(config), "TIDBOK_WORKERS": "2"}, pki.context(pki.platform))


def client(server: ProducerServer, pki: Pki, issued: Issued, interaction: str, **headers: str) -> OfficialClient:
    return zeep_client(interaction, server.base_url, http_headers=headers, session=pki.session(issued))


def time_types(server: ProducerServer, pki: Pki, issued: Issued, unit: str = A100) -> object:
    return client(server, pki, issued, "GetAllTimeTypes").call(
        unit, None, healthcare_facility=unit, subject_of_care=DEMO_RESIDENT
    )


def refused_at_handshake(server: ProducerServer, context: ssl.SSLContext) -> str:
    """Open a TLS connection and send a request; return how it failed (it must fail)."""
    with socket.create_connection(("127.0.0.1", int(server.base_url.rsplit(":", 1)[1])), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                # TLS 1.3: the client's handshake ends before the server has judged its certificate;
                # the refusal arrives as an alert on the first read.
                tls.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                data = tls.recv(100)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
            return type(exc).__name__ + ": " + str(exc)
    assert not data.startswith(b"HTTP/"), f"the producer answered over a connection it should have refused: {data!r}"
    return "closed without an answer"


def metric(server: ProducerServer, pki: Pki, name: str, **labels: str) -> float:
    _, _, body = http_get(f"{server.base_url}/metrics", tls=pki.context(pki.platform))
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def server_log(server: ProducerServer) -> str:
    return server.output(limit=2_000_000)


# -- the handshake -------------------------------------------------------------------------------


def test_an_authorized_consumer_calls_through_the_official_wsdl(server: ProducerServer, pki: Pki) -> None:
    answer = time_types(server, pki, pki.platform)
    assert [t.timeTypeId for t in answer.ListOfTimeTypes], "the demo unit has time types"


def test_plain_http_is_not_served(server: ProducerServer) -> None:
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        http_get(server.base_url.replace("https://", "http://") + "/health", timeout=5)


@pytest.mark.parametrize("who", ["no certificate", "untrusted CA", "expired certificate"])
def test_a_connection_without_a_valid_certificate_is_refused_at_the_handshake(
    server: ProducerServer, pki: Pki, who: str
) -> None:
    before = metric(server, pki, "tidbok_refused_calls_total", reason="handshake")
    issued = {"no certificate": None, "untrusted CA": pki.rogue, "expired certificate": pki.expired}[who]
    how = refused_at_handshake(server, pki.context(issued))
    assert how
    deadline = time.monotonic() + 5
    while metric(server, pki, "tidbok_refused_calls_total", reason="handshake") < before + 1:
        assert time.monotonic() < deadline, "the refused handshake was not counted"
        time.sleep(0.1)
    assert "TLS handshake from 127.0.0.1 refused" in server_log(server)


def test_the_producer_certificate_is_checked_by_the_client(server: ProducerServer, pki: Pki, tmp_path: Path) -> None:
    """A client trusting another CA refuses the producer: the server certificate is the CA's, not self-made."""
    rogue = Authority(tmp_path, "elsewhere")
    context = ssl.create_default_context(cafile=str(rogue.bundle))
    context.load_cert_chain(*pki.platform.pair)
    with pytest.raises(ssl.SSLCertVerificationError):
        http_get(f"{server.base_url}/health", timeout=5, tls=context)


# -- authorization -------------------------------------------------------------------------------


def test_a_trusted_but_unlisted_consumer_gets_a_fault_naming_its_hsa_id(server: ProducerServer, pki: Pki) -> None:
    before = metric(server, pki, "tidbok_refused_calls_total", reason="unauthorized")
    with pytest.raises(zeep.exceptions.Fault) as caught:
        time_types(server, pki, pki.stranger)
    assert caught.value.code.endswith("Client")
    assert "not authorized" in caught.value.message and STRANGER in caught.value.message
    assert metric(server, pki, "tidbok_refused_calls_total", reason="unauthorized") >= before + 1
    assert f"refused GetAllTimeTypes: The service consumer {STRANGER} is not authorized" in server_log(server)


def test_a_certificate_without_an_hsa_id_is_refused(server: ProducerServer, pki: Pki) -> None:
    with pytest.raises(zeep.exceptions.Fault) as caught:
        time_types(server, pki, pki.anonymous)
    assert "not authorized" in caught.value.message and "SERIALNUMBER" in caught.value.message


def test_a_narrowed_consumer_calls_its_contract_for_its_unit(server: ProducerServer, pki: Pki) -> None:
    assert time_types(server, pki, pki.narrow, A100).ListOfTimeTypes


def test_a_narrowed_consumer_is_refused_another_unit(server: ProducerServer, pki: Pki) -> None:
    with pytest.raises(zeep.exceptions.Fault) as caught:
        time_types(server, pki, pki.narrow, A200)
    assert "not authorized to call GetAllTimeTypes for this care unit" in caught.value.message


def test_a_narrowed_consumer_is_refused_another_contract(server: ProducerServer, pki: Pki) -> None:
    with pytest.raises(zeep.exceptions.Fault) as caught:
        client(server, pki, pki.narrow, "GetAllCareTypes").call(
            A100, None, healthcare_facility=A100, subject_of_care=DEMO_RESIDENT
        )
    assert f"{NARROW} is not authorized to call GetAllCareTypes" in caught.value.message


def test_the_original_consumer_header_authorizes_nothing(server: ProducerServer, pki: Pki) -> None:
    """x-rivta-original-serviceconsumer-hsaid is recorded, never believed: a stranger naming the
    platform in it is still the stranger."""
    stranger = client(
        server, pki, pki.stranger, "GetAllTimeTypes", **{"x-rivta-original-serviceconsumer-hsaid": PLATFORM}
    )
    with pytest.raises(zeep.exceptions.Fault) as caught:
        stranger.call(A100, None, healthcare_facility=A100, subject_of_care=DEMO_RESIDENT)
    assert STRANGER in caught.value.message


def test_raw_refusal_is_a_soap_11_fault_with_http_500(server: ProducerServer, pki: Pki) -> None:
    status, headers, body = soap_post(server.base_url, "GetAllTimeTypes", b"<x/>", tls=pki.context(pki.stranger))
    assert status == 500 and headers["content-type"].startswith("text/xml")
    assert b"<faultcode>soap:Client</faultcode>" in body and STRANGER.encode() in body


# -- audit ---------------------------------------------------------------------------------------


def test_a_booking_records_the_caller_and_the_platform_headers(server: ProducerServer, pki: Pki) -> None:
    calendar = CalendarDb(server)
    try:
        slot = calendar.free_slot(A100, "LAK")
        resident = new_resident()
        headers = {
            "x-rivta-original-serviceconsumer-hsaid": "SE2321000016-1177",
            "x-skltp-correlation-id": "corr-mtls-0001",
        }
        answer = client(server, pki, pki.platform, "MakeBooking", **headers).call(
            A100,
            as_resident(resident),
            healthcare_facility_med=A100,
            requestedTimeslot=slot.timeslot(resident),
            subject_of_care_info={"firstName": "Testa", "lastName": "Testsson"},
        )
        assert answer.resultCode == "OK"
        event = calendar.rows(
            "SELECT e.details FROM booking_event e JOIN booking b ON b.pk = e.booking_pk"
            " WHERE b.booking_id = %s AND b.subject_of_care = %s",
            answer.bookingId,
            resident,
        )[-1]["details"]
    finally:
        calendar.close()
    assert event["caller"] == PLATFORM
    assert event["consumer"] == "SE2321000016-1177" and event["correlation_id"] == "corr-mtls-0001"
    log = server_log(server)
    audit = [line for line in log.splitlines() if "tidbok.audit" in line and answer.bookingId in line]
    assert audit, "no audit line for the booking"
    assert f"caller {PLATFORM}" in audit[0] and "correlation corr-mtls-0001" in audit[0]
    assert resident not in log, "a personnummer was logged in plain text"
    assert f"{resident[:8]}-****" in audit[0]
