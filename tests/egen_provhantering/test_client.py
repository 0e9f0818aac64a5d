"""The OfferClient against the EP stub over real HTTP and mutual TLS, and against small HTTP servers
that answer what EP should not: every outcome of the interface, and every failed attempt logged in
one line (no personnummer in clear) and counted by reason, since EP logs none (seed 000)."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from support.ep import EpPki, EpStub, running_ep_stub, start_ep_stub
from support.server import free_port

from egen_provhantering.client import Answer, ClientConfig, GivenOffer, OfferClient, TechnicalError, ValidationError
from egen_provhantering.contract import ADD, DEFAULT_NAMESPACE, SERVICE_PATH, soap_action
from egen_provhantering.stub.rules import NOT_FOLKBOKFORD
from egen_provhantering.stub.service import INJECTED

RESIDENT = "191212121212"  # Tolvan Tolvansson, valid (Luhn) and the seed's example
OTHER = "201212121212"  # valid too; not in the population where a test says so
OFFER = GivenOffer(
    access_unit_id="SE2321000016-14FM",
    hc_professional_id="SE2321000016-3STJ",
    hc_first_name="Anna",
    hc_last_name="Andersson",
    notify_resident=True,
    personal_number=RESIDENT,
    unit_offer_id="6",
)


def failures(reason: str) -> float:
    return REGISTRY.get_sample_value("tidbok_ep_connection_failures_total", {"reason": reason}) or 0.0


def calls(outcome: str, operation: str = ADD.name) -> float:
    return REGISTRY.get_sample_value("tidbok_ep_calls_total", {"operation": operation, "outcome": outcome}) or 0.0


@pytest.fixture
def ep_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="tidbok.ep")
    return caplog


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tidbok.ep"]


def assert_no_personnummer(caplog: pytest.LogCaptureFixture) -> None:
    for line in lines(caplog):
        assert RESIDENT not in line and OTHER not in line, line


# -- the interface's outcomes --------------------------------------------------------------------------


def test_an_offer_is_given_once_then_already_given_within_the_limit(ep: EpStub) -> None:
    with OfferClient(ep.client_config()) as client:
        assert client.add(OFFER, request_id="req-1") == Answer("given")
        assert client.add(OFFER, request_id="req-2") == Answer("already_given")
    (given,) = ep.given(RESIDENT)
    sent = {field.name: getattr(OFFER, field.name) for field in dataclasses.fields(OFFER)}
    assert {key: given[key] for key in sent} == sent
    assert given["request_id"] == "req-1"
    requests = ep.requests()
    assert [r["request_id"] for r in requests] == ["req-1", "req-2"]
    assert {r["soap_action"] for r in requests} == {f'"{soap_action(DEFAULT_NAMESPACE, ADD)}"'}


def test_blank_professional_names_are_sent_as_blanks(ep: EpStub) -> None:
    """The seed allows " " as first and last name (a "function" giving the offer)."""
    with OfferClient(ep.client_config()) as client:
        assert client.add(dataclasses.replace(OFFER, hc_first_name=" ", hc_last_name=" ")).outcome == "given"
    (given,) = ep.given(RESIDENT)
    assert (given["hc_first_name"], given["hc_last_name"]) == (" ", " ")


def test_a_resident_not_in_the_population_register_is_refused_with_the_services_text(
    ep: EpStub, ep_log: pytest.LogCaptureFixture
) -> None:
    ep.set_population([RESIDENT])
    with OfferClient(ep.client_config()) as client:
        answer = client.add(dataclasses.replace(OFFER, personal_number=OTHER))
    assert answer.outcome == "refused"
    assert answer.validation_errors == (
        ValidationError("AddGivenOfferByExternalSystemRequest", "PersonalNumber", NOT_FOLKBOKFORD),
    )
    assert answer.detail == f"PersonalNumber: {NOT_FOLKBOKFORD}"
    assert ep.given() == []
    assert any("refused" in line and "20121212-****" in line for line in lines(ep_log))
    assert_no_personnummer(ep_log)


def test_a_technical_error_list_is_technical_and_the_next_call_goes_through(ep: EpStub) -> None:
    ep.set_faults(mode="technical", remaining=1)
    before, failed_before = calls("technical"), failures("http_status")
    with OfferClient(ep.client_config()) as client:
        answer = client.add(OFFER)
        assert answer.outcome == "technical"
        assert answer.technical_errors == (TechnicalError(INJECTED.header, INJECTED.message),)
        assert INJECTED.message in answer.detail
        assert ep.given() == []
        assert client.add(OFFER).outcome == "given"
    assert calls("technical") == before + 1
    assert failures("http_status") == failed_before  # EP answered: not a failed connection


def test_undo_takes_back_the_latest_identical_offer_then_there_is_nothing_to_undo(ep: EpStub) -> None:
    ep.set_limit(0)  # two identical offers may be given
    with OfferClient(ep.client_config()) as client:
        assert client.add(OFFER, request_id="first").outcome == "given"
        assert client.add(OFFER, request_id="second").outcome == "given"
        assert client.undo(OFFER).outcome == "undone"
        assert [g["request_id"] for g in ep.given(RESIDENT)] == ["first"]  # the latest went first
        assert client.undo(OFFER).outcome == "undone"
        assert client.undo(OFFER) == Answer("nothing_to_undo")
    assert ep.given() == []


# -- failed attempts: logged and counted ---------------------------------------------------------------


def test_ep_answering_503_is_technical_counted_and_logged(ep: EpStub, ep_log: pytest.LogCaptureFixture) -> None:
    ep.set_faults(mode="down")
    before = failures("http_status")
    with OfferClient(ep.client_config()) as client:
        answer = client.add(OFFER, request_id="down-1")
    assert answer.outcome == "technical" and "HTTP 503" in answer.detail
    assert failures("http_status") == before + 1
    (line,) = [line for line in lines(ep_log) if "down-1" in line]
    assert "failed (http_status)" in line and "HTTP 503" in line and "19121212-****" in line
    assert_no_personnummer(ep_log)


def test_a_stopped_ep_is_a_refused_connection_counted_and_logged(
    tmp_path: Path, ep_log: pytest.LogCaptureFixture
) -> None:
    stub = start_ep_stub(tmp_path / "stopped")
    config = stub.client_config()
    with OfferClient(config) as client:
        assert client.add(OFFER).outcome == "given"  # the connection is open and kept
        stub.stop()
        before = failures("connection_refused") + failures("connection_error")
        answer = client.add(OFFER, request_id="stopped-1")
    assert answer.outcome == "technical"
    # the kept connection found closed, then a new one refused: one failed attempt either way
    assert failures("connection_refused") + failures("connection_error") == before + 1
    (line,) = [line for line in lines(ep_log) if "stopped-1" in line]
    assert "failed (connection_" in line
    with OfferClient(config) as fresh:
        before = failures("connection_refused")
        assert "refused" in fresh.add(OFFER).detail
    assert failures("connection_refused") == before + 1
    assert_no_personnummer(ep_log)


def test_a_slow_answer_is_a_timeout_but_the_offer_was_given(ep: EpStub, ep_log: pytest.LogCaptureFixture) -> None:
    """EP carries the call out and answers late: the caller sees a timeout, and its retry learns that
    the offer is there (already_given), so a retry never gives it twice."""
    ep.set_faults(mode="slow", delay_seconds=2, remaining=1)
    before = failures("timeout")
    with OfferClient(ep.client_config(timeout=0.5)) as client:
        answer = client.add(OFFER, request_id="slow-1")
        assert answer.outcome == "technical" and "within 0.5 s" in answer.detail
        assert failures("timeout") == before + 1
        assert [line for line in lines(ep_log) if "slow-1" in line and "failed (timeout)" in line]
        assert len(ep.given(RESIDENT)) == 1
        assert client.add(OFFER).outcome == "already_given"


# -- mutual TLS ------------------------------------------------------------------------------------------


def test_over_mutual_tls_an_offer_is_given(ep_tls: EpStub) -> None:
    assert ep_tls.url.startswith("https://")
    with OfferClient(ep_tls.client_config()) as client:
        assert client.add(OFFER).outcome == "given"
        assert client.undo(OFFER).outcome == "undone"


@pytest.mark.parametrize("certificate", ["stranger", "none"])
def test_a_client_certificate_ep_does_not_accept_is_a_tls_failure(
    ep_tls: EpStub, ep_pki: EpPki, ep_log: pytest.LogCaptureFixture, certificate: str
) -> None:
    cert = (str(ep_pki.stranger.cert), str(ep_pki.stranger.key)) if certificate == "stranger" else (None, None)
    before = failures("tls_handshake")
    with OfferClient(ep_tls.client_config(cert_file=cert[0], key_file=cert[1])) as client:
        answer = client.add(OFFER, request_id=f"tls-{certificate}")
    assert answer.outcome == "technical"
    assert "client certificate" in answer.detail
    assert failures("tls_handshake") == before + 1
    assert [line for line in lines(ep_log) if f"tls-{certificate}" in line and "failed (tls_handshake)" in line]
    assert ep_tls.given() == []


def test_an_ep_certificate_we_do_not_trust_is_a_tls_failure(ep_tls: EpStub, ep_pki: EpPki) -> None:
    """The seed's third cause: the SITHS root is not installed where we call from."""
    before = failures("tls_handshake")
    with OfferClient(ep_tls.client_config(ca_file=str(ep_pki.stranger_ca))) as client:
        answer = client.add(OFFER)
    assert answer.outcome == "technical" and "not trusted" in answer.detail
    assert failures("tls_handshake") == before + 1
    assert ep_tls.given() == []


# -- answers EP should not give ----------------------------------------------------------------------------


class Canned(BaseHTTPRequestHandler):
    """Answers every POST with the server's canned status, content type and body, keeping the
    connection open (HTTP/1.1) and noting the caller's port."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.peers.append(self.client_address[1])  # type: ignore[attr-defined]
        status, content_type, body = self.server.canned  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        stall = getattr(self.server, "stall", 0)
        if stall:  # half the answer, then silence
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(stall)
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    server.peers = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def envelope(inner: str) -> bytes:
    return (
        f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>{inner}</s:Body></s:Envelope>'
    ).encode()


GOOD = (
    f'<AddGivenOfferByExternalSystemResponse xmlns="{DEFAULT_NAMESPACE}"><ResultOfCall><HasError>false</HasError>'
    "</ResultOfCall><OfferAlreadyGivenWithinTimeLimitTryLater>false</OfferAlreadyGivenWithinTimeLimitTryLater>"
    "</AddGivenOfferByExternalSystemResponse>"
)
BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    + envelope(GOOD.replace("false</HasError>", "&b;</HasError>"))
)


@pytest.mark.parametrize(
    ("status", "body", "reason", "said"),
    [
        (200, envelope(GOOD), None, None),
        (200, b"<html>It works</html", "unparsable", "not well-formed"),
        (200, BOMB, "unparsable", "document type declaration"),
        (200, envelope(GOOD.replace("</ResultOfCall>", "</ResultOfCall><Extra/>")), "unparsable", "not expected"),
        (200, envelope(GOOD.replace(DEFAULT_NAMESPACE, "urn:someone:else")), "unparsable", "TIDBOK_EP_NAMESPACE"),
        (200, envelope(GOOD.replace("<HasError>false", "<HasError>maybe")), "unparsable", "HasError"),
        (200, b"<x>" + b"a" * 1_100_000 + b"</x>", "unparsable", "larger than"),
        (
            500,
            envelope("<s:Fault><faultcode>s:Client</faultcode><faultstring>Bad 191212121212</faultstring></s:Fault>"),
            "soap_fault",
            "Bad 19121212-****",
        ),
        (502, b"<html>Bad gateway</html>", "http_status", "HTTP 502"),
    ],
    ids=[
        "valid",
        "not XML",
        "DTD with entities",
        "extra element",
        "other namespace",
        "not a boolean",
        "too large",
        "SOAP fault",
        "502",
    ],
)
def test_answers_that_are_not_eps_are_technical_and_counted(
    canned: ThreadingHTTPServer,
    ep_log: pytest.LogCaptureFixture,
    status: int,
    body: bytes,
    reason: str | None,
    said: str | None,
) -> None:
    canned.canned = (status, "text/xml; charset=utf-8", body)  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{canned.server_address[1]}{SERVICE_PATH}"
    before = failures(reason or "unparsable")
    with OfferClient(config_for(url)) as client:
        answer = client.add(OFFER)
    if reason is None:
        assert answer == Answer("given")
        return
    assert answer.outcome == "technical"
    assert said in answer.detail, answer.detail
    assert failures(reason) == before + 1
    assert "aaaaaaaaaa" not in answer.detail
    assert_no_personnummer(ep_log)


def config_for(url: str) -> ClientConfig:
    return ClientConfig(url=url, timeout=5)


def test_an_answer_stalling_halfway_is_a_timeout(canned: ThreadingHTTPServer) -> None:
    canned.canned = (200, "text/xml; charset=utf-8", envelope(GOOD))  # type: ignore[attr-defined]
    canned.stall = 2  # type: ignore[attr-defined]
    before = failures("timeout")
    with OfferClient(ClientConfig(url=f"http://127.0.0.1:{canned.server_address[1]}/", timeout=0.5)) as client:
        answer = client.add(OFFER)
    assert answer.outcome == "technical" and "within 0.5 s" in answer.detail, answer.detail
    assert failures("timeout") == before + 1


def test_calls_share_one_kept_connection(canned: ThreadingHTTPServer) -> None:
    canned.canned = (200, "text/xml; charset=utf-8", envelope(GOOD))  # type: ignore[attr-defined]
    with OfferClient(config_for(f"http://127.0.0.1:{canned.server_address[1]}{SERVICE_PATH}")) as client:
        assert [client.add(OFFER).outcome for _ in range(5)] == ["given"] * 5
    assert len(canned.peers) == 5 and len(set(canned.peers)) == 1  # type: ignore[attr-defined]


def test_a_closed_port_is_a_refused_connection() -> None:
    before = failures("connection_refused")
    with OfferClient(config_for(f"http://127.0.0.1:{free_port()}{SERVICE_PATH}")) as client:
        answer = client.undo(OFFER)
    assert answer.outcome == "technical" and "refused" in answer.detail
    assert failures("connection_refused") == before + 1
    assert calls("technical", "UndoGivenOfferByExternalSystem") >= 1


# -- the namespace an operator sets ---------------------------------------------------------------------


def test_the_configured_namespace_is_the_one_spoken(tmp_path: Path) -> None:
    theirs = "http://schemas.example.se/ep/offer/2021/04"
    with running_ep_stub(tmp_path / "ns", args=["--namespace", theirs]) as stub:
        with OfferClient(stub.client_config(namespace=theirs)) as client:
            assert client.add(OFFER).outcome == "given"
        before = failures("soap_fault")
        with OfferClient(stub.client_config()) as client:  # our placeholder namespace: EP cannot dispatch it
            answer = client.add(OFFER)
        assert answer.outcome == "technical" and "ContractFilter mismatch" in answer.detail
        assert failures("soap_fault") == before + 1
        assert len(stub.given(RESIDENT)) == 1
