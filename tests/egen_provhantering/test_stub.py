"""The EP stub's rules, driven with raw SOAP (what any tester's tool sends) and with zeep built from
the WSDL it serves; every answer it gives is read by the client's parser, which checks it against our
XSD. The rules are seed 000's: the population register, known UnitOfferIDs, every member required,
identical offers refused within the limit, Undo of the latest, and a WCF service's way of reading."""

from __future__ import annotations

import http.client
import ssl
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import zeep
from lxml import etree
from support.ep import EpPki, EpStub
from support.server import REPO, subprocess_env

from egen_provhantering.contract import ADD, DEFAULT_NAMESPACE, REQUEST_FIELDS, SERVICE_PATH, UNDO, Operation
from egen_provhantering.messages import FaultAnswer, Result, read_answer
from egen_provhantering.stub.rules import (
    MISSING,
    NOT_A_NUMBER,
    NOT_FOLKBOKFORD,
    NOT_HSA_ID,
    NOT_PERSONNUMMER,
    UNKNOWN_OFFER,
)
from egen_provhantering.stub.service import INJECTED

NS = DEFAULT_NAMESPACE
RESIDENT = "191212121212"
OTHER = "201212121212"
SAMORDNINGSNUMMER = "198001710006"  # day 11 + 60, valid check digit
MEMBERS = {
    "AccessUnitID": "SE2321000016-14FM",
    "HCProfessionalFirstName": "Screeningverksamheten",
    "HCProfessionalID": "SE2321000016-RCC1",
    "HCProfessionalLastName": "RCC Syd",
    "NotifyResident": "true",
    "PersonalNumber": RESIDENT,
    "UnitOfferID": "6",
}


def body(
    operation: Operation, members: dict[str, str | None] | None = None, order: list[str] | None = None, extra: str = ""
) -> bytes:
    values = {**MEMBERS, **(members or {})}
    names = order or [name for name, _ in REQUEST_FIELDS]
    fields = "".join(f"<off:{n}>{values[n]}</off:{n}>" for n in names if values.get(n) is not None)
    return (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        f'<off:{operation.request} xmlns:off="{NS}">{fields}{extra}</off:{operation.request}>'
        "</s:Body></s:Envelope>"
    ).encode()


def send(stub: EpStub, operation: Operation, members: dict[str, str | None] | None = None, **options: Any) -> Result:
    status, data = stub.soap(body(operation, members, **options))
    assert status == 200, data
    return read_answer(operation, data, NS)  # hardened parse + our XSD: raises on anything else


def refused(result: Result, operation: Operation = ADD) -> list[tuple[str, str]]:
    assert result.has_error
    assert all(e.container == operation.request for e in result.validation_errors)
    return [(e.element, e.text) for e in result.validation_errors]


def fault(stub: EpStub, data: bytes, action: str | None = None) -> str:
    status, answer = stub.soap(data, action)
    assert status == 500, answer
    with pytest.raises(FaultAnswer) as caught:
        read_answer(ADD, answer, NS)
    return caught.value.text


# -- what is refused ---------------------------------------------------------------------------------


def test_a_valid_request_gives_the_offer(ep: EpStub) -> None:
    result = send(ep, ADD)
    assert result == Result(has_error=False, validation_errors=(), technical_errors=(), flag=False)
    (given,) = ep.given(RESIDENT)
    assert (given["unit_offer_id"], given["notify_resident"], given["hc_last_name"]) == ("6", True, "RCC Syd")


def test_a_resident_outside_the_population_register_is_refused(ep: EpStub) -> None:
    ep.set_population([RESIDENT])
    assert refused(send(ep, ADD, {"PersonalNumber": OTHER})) == [("PersonalNumber", NOT_FOLKBOKFORD)]
    assert send(ep, ADD).has_error is False
    assert [g["personal_number"] for g in ep.given()] == [RESIDENT]


@pytest.mark.parametrize("number", ["191212121213", "19121212121", "191312121212", "19121212T123", "abc"])
def test_an_invalid_personnummer_is_refused(ep: EpStub, number: str) -> None:
    assert refused(send(ep, ADD, {"PersonalNumber": number})) == [("PersonalNumber", NOT_PERSONNUMMER)]


def test_a_samordningsnummer_is_a_resident(ep: EpStub) -> None:
    assert send(ep, ADD, {"PersonalNumber": SAMORDNINGSNUMMER}).has_error is False


def test_unit_offer_ids_must_be_known_whole_numbers(ep: EpStub) -> None:
    ep.set_unit_offers(["6"])
    assert refused(send(ep, ADD, {"UnitOfferID": "7"})) == [("UnitOfferID", UNKNOWN_OFFER.format(value="7"))]
    assert refused(send(ep, ADD, {"UnitOfferID": "sex"})) == [("UnitOfferID", NOT_A_NUMBER)]
    assert send(ep, ADD).has_error is False


def test_hsa_ids_must_be_hsa_ids(ep: EpStub) -> None:
    result = send(ep, ADD, {"AccessUnitID": "14FM", "HCProfessionalID": "SE2321000016 RCC1"})
    assert refused(result) == [("AccessUnitID", NOT_HSA_ID), ("HCProfessionalID", NOT_HSA_ID)]


def test_every_problem_is_reported_at_once_in_member_order(ep: EpStub) -> None:
    ep.set_population([RESIDENT])
    result = send(ep, UNDO, {"HCProfessionalLastName": "", "PersonalNumber": OTHER, "UnitOfferID": "x"})
    assert refused(result, UNDO) == [
        ("HCProfessionalLastName", MISSING),
        ("PersonalNumber", NOT_FOLKBOKFORD),
        ("UnitOfferID", NOT_A_NUMBER),
    ]


@pytest.mark.parametrize("member", [name for name, _ in REQUEST_FIELDS])
def test_a_missing_member_is_named(ep: EpStub, member: str) -> None:
    assert refused(send(ep, ADD, {member: None})) == [(member, MISSING)]
    assert ep.given() == []


def test_a_blank_name_is_allowed_an_empty_one_is_not(ep: EpStub) -> None:
    assert send(ep, ADD, {"HCProfessionalFirstName": " ", "HCProfessionalLastName": " "}).has_error is False
    assert refused(send(ep, ADD, {"HCProfessionalFirstName": ""})) == [("HCProfessionalFirstName", MISSING)]


def test_members_are_read_as_wcf_reads_them(ep: EpStub) -> None:
    """In order (the seed's examples'): a member out of order is not seen, hence missing; an unknown
    element and a nil member are ignored the same way."""
    table_order = [
        "AccessUnitID",
        "HCProfessionalID",
        "HCProfessionalFirstName",
        "HCProfessionalLastName",
        "NotifyResident",
        "PersonalNumber",
        "UnitOfferID",
    ]
    assert refused(send(ep, ADD, order=table_order)) == [("HCProfessionalFirstName", MISSING)]
    unknown = "<off:Comment>hej</off:Comment>"
    assert send(ep, ADD, extra=unknown).has_error is False
    nil = {"UnitOfferID": None}
    result = send(
        ep, ADD, nil, extra='<off:UnitOfferID xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:nil="true"/>'
    )
    assert refused(result) == [("UnitOfferID", MISSING)]


# -- what EP cannot read: SOAP faults ------------------------------------------------------------------


def test_messages_ep_cannot_read_are_soap_faults(ep: EpStub) -> None:
    assert "cannot be parsed as the type 'Boolean'" in fault(ep, body(ADD, {"NotifyResident": "yes"}))
    assert "ContractFilter mismatch" in fault(ep, body(ADD), action="urn:wrong/IOfferInteraction/Add")
    wrong_element = body(ADD).replace(b"AddGivenOfferByExternalSystemRequest", b"AddGivenOffer")
    assert "ContractFilter mismatch" in fault(ep, wrong_element)
    assert "OperationFormatter" in fault(ep, body(UNDO), action=f"{NS}/IOfferInteraction/{ADD.name}")
    assert "SOAP 1.2" in fault(
        ep, body(ADD).replace(b"schemas.xmlsoap.org/soap/envelope/", b"www.w3.org/2003/05/soap-envelope")
    )
    assert "not well-formed" in fault(ep, b"<s:Envelope")
    dtd = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "1">]>' + body(ADD)
    assert "DTD" in fault(ep, dtd)
    assert ep.given() == []
    assert {line["outcome"] for line in ep.state()["log"]} == {"fault"}


def test_the_soap_action_is_checked_when_sent(ep: EpStub) -> None:
    status, data = ep.soap(body(UNDO), action=f"{NS}/IOfferInteraction/{UNDO.name}")
    assert status == 200 and read_answer(UNDO, data, NS).flag is False


# -- identical offers and Undo ----------------------------------------------------------------------------


def test_an_identical_offer_is_refused_within_the_limit_and_given_after_it(ep: EpStub) -> None:
    ep.set_limit(0.5)
    assert send(ep, ADD).flag is False
    assert send(ep, ADD).flag is True
    time.sleep(0.6)
    assert send(ep, ADD).flag is False
    assert len(ep.given(RESIDENT)) == 2


def test_identical_means_the_same_unit_resident_and_offer_by_default(ep: EpStub) -> None:
    assert send(ep, ADD).flag is False
    other_giver = {
        "HCProfessionalID": "SE2321000016-3STJ",
        "HCProfessionalFirstName": "Anna",
        "NotifyResident": "false",
    }
    assert send(ep, ADD, other_giver).flag is True
    assert send(ep, ADD, {"UnitOfferID": "7"}).flag is False
    assert send(ep, ADD, {"AccessUnitID": "SE2321000016-15FM"}).flag is False
    assert send(ep, ADD, {"PersonalNumber": OTHER}).flag is False
    ep.configure(identical_fields=[name for name, _ in REQUEST_FIELDS])  # all seven
    assert send(ep, ADD, other_giver).flag is False
    assert len(ep.given()) == 5


def test_undo_takes_back_the_latest_identical_offer_first(ep: EpStub) -> None:
    ep.set_limit(0)
    send(ep, ADD, {"NotifyResident": "false"})
    send(ep, ADD, {"NotifyResident": "true"})
    send(ep, ADD, {"UnitOfferID": "7"})
    result = send(ep, UNDO)
    assert (result.has_error, result.flag) == (False, True)
    assert [(g["unit_offer_id"], g["notify_resident"]) for g in ep.given(RESIDENT)] == [("6", False), ("7", True)]
    assert send(ep, UNDO).flag is True
    assert send(ep, UNDO).flag is False  # "anropa tills resultatet blir false"
    assert [g["unit_offer_id"] for g in ep.given(RESIDENT)] == ["7"]
    assert [u["unit_offer_id"] for u in ep.state()["undone"]] == ["6", "6"]


def test_identical_offers_sent_at_once_are_given_once(ep: EpStub) -> None:
    with ThreadPoolExecutor(8) as pool:
        flags = list(pool.map(lambda _: send(ep, ADD).flag, range(8)))
    assert sorted(flags) == [False] + [True] * 7
    assert len(ep.given(RESIDENT)) == 1


def test_an_offer_taken_back_no_longer_blocks_a_new_one(ep: EpStub) -> None:
    send(ep, ADD)
    assert send(ep, UNDO).flag is True
    assert send(ep, ADD).flag is False


# -- fault injection --------------------------------------------------------------------------------------


def test_technical_errors_for_the_next_calls_then_ok(ep: EpStub) -> None:
    ep.set_faults(mode="technical", remaining=2)
    for _ in range(2):
        result = send(ep, ADD)
        assert result.has_error and [(e.header, e.message) for e in result.technical_errors] == [
            (INJECTED.header, INJECTED.message)
        ]
        assert result.validation_errors == ()
    assert send(ep, ADD).has_error is False
    assert ep.api("GET", "control")[1]["mode"] == "ok"
    assert [line["outcome"] for line in ep.state()["log"]] == ["technical", "technical", "given"]


def test_a_fraction_of_calls_fail_the_same_way_for_the_same_seed(ep: EpStub) -> None:
    def run() -> list[bool]:
        ep.reset()
        ep.set_limit(0)
        ep.set_faults(mode="technical", fraction=0.5, seed=7)
        return [bool(send(ep, ADD).technical_errors) for _ in range(30)]

    first = run()
    assert 0 < sum(first) < 30
    assert run() == first
    assert len(ep.given()) == 30 - sum(first)


def test_faults_can_be_limited_to_one_operation(ep: EpStub) -> None:
    ep.set_faults(mode="technical", operations=[UNDO.name])
    assert send(ep, ADD).has_error is False
    assert send(ep, UNDO).technical_errors


def test_down_answers_503_with_no_body(ep: EpStub) -> None:
    ep.set_faults(mode="down", remaining=1)
    assert ep.soap(body(ADD)) == (503, b"")
    assert send(ep, ADD).has_error is False


def test_slow_answers_late_but_has_given_the_offer(ep: EpStub) -> None:
    ep.set_faults(mode="slow", delay_seconds=1, remaining=1)
    started = time.monotonic()
    assert send(ep, ADD).flag is False
    assert time.monotonic() - started >= 1
    assert len(ep.given()) == 1


@pytest.mark.parametrize(
    ("path", "spec", "named"),
    [
        ("control", {"mode": "broken"}, "mode"),
        ("control", {"mode": "slow", "delay_seconds": -1}, "delay_seconds"),
        ("control", {"mode": "technical", "fraction": 2}, "fraction"),
        ("control", {"mode": "down", "remaining": 0}, "remaining"),
        ("control", {"mode": "down", "operations": ["Book"]}, "operations"),
        ("control", {"mood": "ok"}, "mood"),
        ("config", {"residents": "everyone"}, "residents"),
        ("config", {"limit_seconds": "soon"}, "limit_seconds"),
        ("config", {"identical_fields": ["Name"]}, "identical_fields"),
        ("config", {"colour": 1}, "colour"),
    ],
)
def test_the_test_api_names_what_it_does_not_understand(
    ep: EpStub, path: str, spec: dict[str, Any], named: str
) -> None:
    status, data = ep.api("POST", path, spec)
    assert status == 400 and named in data["error"], data


# -- the WSDL, as a tester's tool uses it, and mutual TLS --------------------------------------------------


def test_zeep_from_the_served_wsdl_gives_and_takes_back(ep: EpStub) -> None:
    client = zeep.Client(f"{ep.url}?wsdl")
    members = {name: MEMBERS[name] for name, _ in REQUEST_FIELDS} | {"NotifyResident": True}
    added = client.service.AddGivenOfferByExternalSystem(**members)
    assert (added.ResultOfCall.HasError, added.OfferAlreadyGivenWithinTimeLimitTryLater) == (False, False)
    undone = client.service.UndoGivenOfferByExternalSystem(**members)
    assert undone.GivenOfferFoundAndDeleted is True
    assert ep.requests()[0]["soap_action"].strip('"') == f"{NS}/IOfferInteraction/{ADD.name}"


def test_the_served_wsdl_points_at_the_stub(ep: EpStub) -> None:
    status, data = ep.request("GET", f"{SERVICE_PATH}?wsdl")
    address = etree.fromstring(data).find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert status == 200 and address.get("location") == ep.url


def test_mutual_tls_needs_a_certificate_from_the_clients_ca(ep_tls: EpStub, ep_pki: EpPki) -> None:
    assert ep_tls.request("GET", "/health") == (200, b"ok\n")
    host, port = "127.0.0.1", int(ep_tls.base_url.rsplit(":", 1)[1])
    anonymous = ssl.create_default_context(cafile=str(ep_pki.authority.bundle))
    for context in (anonymous, ep_tls.tls_context(ep_pki.stranger)):
        conn = http.client.HTTPSConnection(host, port, timeout=5, context=context)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            conn.request("GET", "/health")
            conn.getresponse().read()
        conn.close()


def test_the_stub_refuses_a_bad_start(tmp_path: Path) -> None:
    def start(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "egen_provhantering.stub", *args],
            cwd=REPO,
            env=subprocess_env({}),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        return done.stderr

    assert "--port" in start("--port", "70000")
    assert "--tls-cert" in start("--tls-cert", str(tmp_path / "missing.pem"))
    assert "--client-ca needs" in start("--client-ca", str(__file__))
    assert "--namespace" in start("--namespace", "not a uri")
