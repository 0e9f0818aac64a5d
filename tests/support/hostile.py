"""Helpers for hostile-input tests: raw sockets, slow clients, valid seed envelopes, and the answer contract.

Every answer a SOAP endpoint gives must be something the VP passes on as is (domain brief A.8): HTTP
200 with a SOAP 1.1 response, or HTTP 500 with a SOAP 1.1 fault that has a SOAP faultcode and a
non-empty faultstring, and never a stack trace, Python exception text or the resident's
personnummer. :func:`check_soap_answer` is that contract, shared by the transport tests and the fuzzer.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from email.message import Message
from pathlib import Path
from urllib.parse import urlsplit

from lxml import etree

from support.official import DEMO_RESIDENT, SOAP_ENV, envelope, responder_namespace, validate_response
from support.server import ProducerServer, soap_post

UNIT = "SE2321000016-A100"
CORE_NS = "urn:riv:crm:scheduling:1"
CORE_EXT_NS = "urn:riv:crm:scheduling:1.1"
FAULT = f"{{{SOAP_ENV}}}Fault"
FAULT_CODES = frozenset({"Client", "Server", "VersionMismatch"})
NO_SUCH_BOOKING = "B999999999"

# Our own parser for what the server sends back: nothing it says may make us fetch or expand anything.
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)

# What Python or lxml internals look like when they leak into an answer. A faultstring is written
# for the consumer, so class names like "XMLSyntaxError", lxml's "(<string>, line 2)", libxml2's
# function names and file paths are all leaks.
INTERNALS = re.compile(
    r"Traceback|File \"|\.py\b|<string>|site-packages|\b[A-Za-z_]*(?:Error|Exception)\b|\blxml\b|\betree\b"
    r"|psycopg|xmlParse|XML_PARSE"
)
# A personnummer, samordningsnummer or reserve number, as the request may carry one anywhere.
PERSONAL_NUMBER = re.compile(r"(?<!\d)(?:\d{8}[-+]?|\d{6}[-+])[0-9pPtTfF]\d{3}(?!\d)")


# -- valid seed requests -------------------------------------------------------------------------


def _ext(interaction: str) -> str:
    return f"urn:riv:crm:scheduling:{interaction}Responder:1.1"


def seed_bodies(booking_id: str, today: date) -> dict[str, str]:
    """One valid request body per interaction, against the demo data (unit A100, the demo resident).

    ``booking_id`` is one of the resident's bookings, so GetBookingDetails and availability for a
    rebooking reach the database; CancelBooking and UpdateBooking name a booking that does not exist,
    so repeating them (as a fuzzer does) changes nothing.
    """
    start, end = today + timedelta(days=1), today + timedelta(days=14)
    window = (
        f"<t:startDateInclusive>{start:%Y%m%d}</t:startDateInclusive>"
        f"<t:endDateInclusive>{end:%Y%m%d}</t:endDateInclusive>"
    )

    def root(interaction: str, content: str) -> str:
        return (
            f'<t:{interaction} xmlns:t="{responder_namespace(interaction)}" xmlns:x="{_ext(interaction)}" '
            f'xmlns:c="{CORE_NS}" xmlns:e="{CORE_EXT_NS}">{content}</t:{interaction}>'
        )

    facility = f"<t:healthcare_facility>{UNIT}</t:healthcare_facility>"
    resident = f"<t:subject_of_care>{DEMO_RESIDENT}</t:subject_of_care>"
    resident_11 = f"<x:subject_of_care>{DEMO_RESIDENT}</x:subject_of_care>"
    slot = (
        "<t:requestedTimeslot><c:startTimeInclusive>20300107090000</c:startTimeInclusive>"
        f"<c:endTimeExclusive>20300107093000</c:endTimeExclusive><c:healthcare_facility>{UNIT}</c:healthcare_facility>"
        "{booking}"
        f"<c:subject_of_care>{DEMO_RESIDENT}</c:subject_of_care></t:requestedTimeslot>"
    )
    person = (
        "<t:subject_of_care_info><e:firstName>Tolvan</e:firstName><e:lastName>Tolvansson</e:lastName>"
        "</t:subject_of_care_info>"
    )
    return {
        "GetAllTimeTypes": root("GetAllTimeTypes", facility + resident_11),
        "GetAllCareTypes": root("GetAllCareTypes", facility + "<t:timeTypeIDs>LAK</t:timeTypeIDs>" + resident),
        "GetAllPerformers": root("GetAllPerformers", facility + resident),
        "GetAllHealthcareFacilities": root(
            "GetAllHealthcareFacilities", facility + resident + f"<t:bookingId>{booking_id}</t:bookingId>"
        ),
        "GetAvailableDates": root("GetAvailableDates", facility + window + resident_11),
        "GetAvailableTimeslots": root(
            "GetAvailableTimeslots", facility + f"<t:bookingId>{booking_id}</t:bookingId>" + window + resident_11
        ),
        "GetBookingDetails": root("GetBookingDetails", facility + f"<t:bookingId>{booking_id}</t:bookingId>"),
        "GetSubjectOfCareSchedule": root("GetSubjectOfCareSchedule", facility + resident),
        "MakeBooking": root(
            "MakeBooking",
            f"<t:healthcare_facility_med>{UNIT}</t:healthcare_facility_med>" + slot.format(booking="") + person,
        ),
        "UpdateBooking": root(
            "UpdateBooking", slot.format(booking=f"<c:bookingId>{NO_SUCH_BOOKING}</c:bookingId>") + person
        ),
        "CancelBooking": root(
            "CancelBooking", facility + f"<t:bookingId>{NO_SUCH_BOOKING}</t:bookingId><t:message>Förhinder</t:message>"
        ),
    }


def seed_envelopes(booking_id: str, today: date) -> dict[str, bytes]:
    return {name: envelope(UNIT, body) for name, body in seed_bodies(booking_id, today).items()}


def time_types_envelope() -> bytes:
    """The cheapest valid request: what "the server still answers" is checked with."""
    return envelope(UNIT, seed_bodies(NO_SUCH_BOOKING, date(2030, 1, 1))["GetAllTimeTypes"])


# -- the answer contract -------------------------------------------------------------------------


@dataclass(frozen=True)
class SoapAnswer:
    status: int
    fault_code: str | None  # local name (Client, Server, VersionMismatch); None for a response
    fault_string: str
    element: etree._Element  # the single element in soap:Body


def check_soap_answer(status: int, headers: Message, body: bytes, interaction: str | None = None) -> SoapAnswer:
    """Assert the contract every SOAP endpoint answer must keep (see the module docstring).

    With ``interaction``, a 200 answer must also be a valid official <interaction>Response.
    """
    shown = body[:600]
    assert status in (200, 500), f"HTTP {status} is neither a SOAP response nor a fault: {shown!r}"
    content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    assert content_type == "text/xml", f"Content-Type {content_type!r} for a SOAP 1.1 answer: {shown!r}"
    text = body.decode("utf-8", errors="replace")
    assert not INTERNALS.search(text), f"the answer shows Python/lxml internals: {shown!r}"
    try:
        root = etree.fromstring(body, SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        raise AssertionError(f"the answer is not well-formed XML ({exc}): {shown!r}") from None
    assert root.tag == f"{{{SOAP_ENV}}}Envelope", f"not a SOAP 1.1 envelope: {root.tag}: {shown!r}"
    soap_body = root.find(f"{{{SOAP_ENV}}}Body")
    assert soap_body is not None, f"no soap:Body: {shown!r}"
    children = [c for c in soap_body if isinstance(c.tag, str)]
    assert len(children) == 1, f"soap:Body must hold exactly one element: {shown!r}"
    element = children[0]
    if status == 200:
        assert element.tag != FAULT, f"a fault with HTTP 200: {shown!r}"
        if interaction is not None:
            validate_response(interaction, element)
        return SoapAnswer(status, None, "", element)
    assert element.tag == FAULT, f"HTTP 500 without a soap:Fault: {shown!r}"
    code_element = element.find("faultcode")
    assert code_element is not None, f"the fault has no faultcode: {shown!r}"
    faultcode = (code_element.text or "").strip()
    prefix, _, local = faultcode.rpartition(":")
    assert code_element.nsmap.get(prefix or None) == SOAP_ENV, f"faultcode {faultcode!r} is not a SOAP 1.1 QName"
    assert local in FAULT_CODES, f"faultcode {faultcode!r} is not one of {sorted(FAULT_CODES)}"
    faultstring = (element.findtext("faultstring") or "").strip()
    assert faultstring, f"the faultstring is empty: {shown!r}"
    assert DEMO_RESIDENT not in faultstring, f"the fault echoes the personnummer: {faultstring!r}"
    assert not PERSONAL_NUMBER.search(faultstring), f"the fault carries a personnummer: {faultstring!r}"
    return SoapAnswer(status, local, faultstring, element)


def assert_alive(server: ProducerServer, within: float = 5.0) -> float:
    """The process runs and a valid request is answered correctly within ``within`` seconds; returns the time."""
    assert server.process.poll() is None, f"the producer exited with {server.process.returncode}\n{server.output()}"
    started = time.monotonic()
    status, headers, body = soap_post(server.base_url, "GetAllTimeTypes", time_types_envelope(), timeout=within)
    elapsed = time.monotonic() - started
    answer = check_soap_answer(status, headers, body, "GetAllTimeTypes")
    assert answer.fault_code is None, f"a valid request got a fault: {answer.fault_string}"
    return elapsed


# -- raw HTTP ------------------------------------------------------------------------------------


def address(server: ProducerServer) -> tuple[str, int]:
    parts = urlsplit(server.base_url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def request_head(
    server: ProducerServer,
    interaction: str,
    content_length: int | None,
    extra: list[tuple[str, str]] | None = None,
    content_type: str = "text/xml; charset=utf-8",
) -> bytes:
    """The request line and headers of a SOAP POST, as bytes, ending with the blank line."""
    host, port = address(server)
    lines = [
        f"POST /{interaction}/1/rivtabp21 HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Type: {content_type}",
        f'SOAPAction: "urn:riv:crm:scheduling:{interaction}Responder:1:{interaction}"',
    ]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    lines += [f"{name}: {value}" for name, value in extra or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Replay(io.BytesIO):
    """What a socket returned, for http.client.HTTPResponse to parse."""

    def makefile(self, *_args: object, **_kwargs: object) -> _Replay:
        return self


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: Message
    body: bytes


def parse_answer(raw: bytes) -> RawAnswer | None:
    """Parse what the server sent on a connection; None if it sent nothing before closing."""
    if not raw:
        return None
    response = http.client.HTTPResponse(_Replay(raw))  # type: ignore[arg-type]
    response.begin()
    return RawAnswer(response.status, response.headers, response.read())


def read_until_closed(sock: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """Everything the server sends until it closes the connection (or resets it) or the deadline passes.

    Returns the bytes and whether the server closed the connection."""
    received = bytearray()
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except (ConnectionResetError, BrokenPipeError):
            return bytes(received), True
        if not chunk:
            return bytes(received), True
        received += chunk
    return bytes(received), False


def raw_exchange(server: ProducerServer, data: bytes, timeout: float = 10.0, half_close: bool = False) -> bytes:
    """Send ``data`` as is on a new connection and return whatever comes back before the server closes.

    Requests should say ``Connection: close`` so the server ends the exchange. ``half_close`` shuts our
    sending side after the data, which is how a client ends an upload early and still waits.
    """
    deadline = time.monotonic() + timeout
    with socket.create_connection(address(server), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        return read_until_closed(sock, deadline)[0]


# -- slow clients --------------------------------------------------------------------------------


@dataclass
class SlowUpload:
    """A client that sends a request's headers, then its body a few bytes at a time, in its own thread.

    It stops when the server answers or closes the connection, when the body is complete, or after
    ``give_up_after`` seconds; then waits up to ``answer_wait`` for an answer. ``outcome`` is one of
    "answered" (``raw`` holds it), "cut" (closed or reset without an answer), "hung" (neither), or
    "error: ..." if it could not connect; "pending" while it runs.
    """

    server: ProducerServer
    body: bytes
    declared_length: int
    step: int = 1
    interval: float = 0.1
    give_up_after: float = 6.0
    answer_wait: float = 3.0
    outcome: str = "pending"
    sent: int = 0
    raw: bytes = b""
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> SlowUpload:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> SlowUpload:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the slow client itself did not finish"
        return self

    def answer(self) -> RawAnswer | None:
        return parse_answer(self.raw)

    def _run(self) -> None:
        try:
            self._upload()
        except OSError as exc:  # could not even connect: not an outcome the tests expect
            self.outcome = f"error: {exc}"

    def _upload(self) -> None:
        head = request_head(self.server, "GetAllTimeTypes", self.declared_length, [("Connection", "close")])
        with socket.create_connection(address(self.server), timeout=5) as sock:
            sock.sendall(head)
            stop = time.monotonic() + self.give_up_after
            closed = False
            while self.sent < len(self.body) and time.monotonic() < stop and not self.raw and not closed:
                sock.settimeout(self.interval)
                try:
                    early = sock.recv(65536)  # an answer, or a close, before we finished sending
                    self.raw += early
                    closed = not early
                except TimeoutError:
                    try:
                        sock.sendall(self.body[self.sent : self.sent + self.step])
                        self.sent += self.step
                    except (BrokenPipeError, ConnectionResetError):
                        closed = True
                except ConnectionResetError:
                    closed = True
            if not closed:
                rest, closed = read_until_closed(sock, time.monotonic() + self.answer_wait)
                self.raw += rest
        self.outcome = "answered" if self.raw else "cut" if closed else "hung"


# -- the server's memory -------------------------------------------------------------------------


def group_rss_bytes(server: ProducerServer) -> int:
    """Resident memory of the producer and every process it started (its granian workers)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == server.process.pid:  # process group: the server runs in its own session
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return total
