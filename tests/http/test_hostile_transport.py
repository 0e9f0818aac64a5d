"""Hostile and broken input at the transport level: slow, stalled and truncated uploads, bytes that are
not what they claim to be, concurrent garbage and abusive headers (issue 5).

What is checked is what the VP and a consumer would see: every answer from a SOAP endpoint is a SOAP
1.1 response or fault (support.hostile.check_soap_answer), abuse never stops the server from
answering valid requests promptly, and its memory stays bounded. DTDs, deep nesting, oversized bodies
and wrong content types are covered in test_soap_engine.py.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from email.message import Message

import pytest
from support import DEMO_RESIDENT, ProducerServer, soap_post
from support.hostile import (
    RawAnswer,
    SlowUpload,
    address,
    assert_alive,
    check_soap_answer,
    group_rss_bytes,
    parse_answer,
    raw_exchange,
    request_head,
    time_types_envelope,
)

# The deadline for a request body, once the server has one (see test_stalled_uploads_...): short,
# so the tests need not wait long. Ignored by a server that does not know the setting.
BODY_TIMEOUT_SECONDS = 2
PROMPT_SECONDS = 2.0  # what "answers promptly" means while the server is being abused


@pytest.fixture(scope="module")
def server(start_producer: Callable[..., ProducerServer]) -> ProducerServer:
    """Our own producer (one worker, the default pool of 4 threads), so abuse here cannot slow other tests."""
    return start_producer("hostile", {"TIDBOK_BODY_TIMEOUT": str(BODY_TIMEOUT_SECONDS)})


def post(
    server: ProducerServer, body: bytes, content_type: str = "text/xml; charset=utf-8", timeout: float = 15
) -> tuple[int, Message, bytes]:
    return soap_post(server.base_url, "GetAllTimeTypes", body, content_type=content_type, timeout=timeout)


def client_fault(server: ProducerServer, body: bytes, keywords: tuple[str, ...], timeout: float = 15) -> str:
    """POST ``body``; assert a soap:Client fault whose faultstring names one of ``keywords``; returns it."""
    answer = check_soap_answer(*post(server, body, timeout=timeout))
    assert answer.fault_code == "Client", f"expected soap:Client, got {answer.fault_code}: {answer.fault_string!r}"
    assert any(k.lower() in answer.fault_string.lower() for k in keywords), (
        f"{answer.fault_string!r} mentions none of {keywords}"
    )
    return answer.fault_string


# -- slow and stalled uploads --------------------------------------------------------------------


def test_the_unbroken_request_is_answered(server: ProducerServer) -> None:
    """Precondition for every test here: the request the abuse starts from is valid and served."""
    assert assert_alive(server) < PROMPT_SECONDS


def test_a_slow_but_complete_upload_is_answered(server: ProducerServer) -> None:
    """A slow network is not an attack: a body that arrives in pieces over about a second is served."""
    body = time_types_envelope()
    slow = SlowUpload(server, body, len(body), step=len(body) // 10 + 1, interval=0.1, give_up_after=10).start()
    slow.join(20)
    answer = slow.answer()
    assert slow.outcome == "answered" and answer is not None, f"no answer to a slow upload ({slow.outcome})"
    assert check_soap_answer(answer.status, answer.headers, answer.body, "GetAllTimeTypes").fault_code is None


# granian's WSGI interface would hand a request to a thread as soon as its headers are in, and
# wsgi.input.read() would block that thread until the body is complete, with no timeout: a few
# clients that stall or dribble would stop a worker (slowloris). producer/http/body_first.py reads each
# body on the event loop under TIDBOK_BODY_TIMEOUT first; this test keeps it that way.
def test_stalled_uploads_neither_block_others_nor_hang(server: ProducerServer) -> None:
    """Eight clients (twice the worker's threads) dribble a body one byte at a time: valid requests are
    still answered promptly meanwhile, and each slow client gets a soap:Client fault or is cut off
    within a bounded time, never left hanging."""
    body = time_types_envelope()
    slow = [
        SlowUpload(server, body, len(body), step=1, interval=0.25, give_up_after=5, answer_wait=3).start()
        for _ in range(8)
    ]
    try:
        time.sleep(0.5)  # let every slow client reach the server first
        latencies = []
        while any(s.outcome == "pending" for s in slow) and len(latencies) < 40:
            latencies.append(assert_alive(server, within=PROMPT_SECONDS))
            time.sleep(0.2)
        assert latencies and max(latencies) < PROMPT_SECONDS, f"valid requests waited {max(latencies):.1f}s"
    finally:
        for s in slow:
            s.join(30)
    for s in slow:
        assert s.outcome in ("answered", "cut"), f"a stalled upload was left hanging ({s.sent} bytes sent)"
        answer = s.answer()
        if answer is not None:
            assert check_soap_answer(answer.status, answer.headers, answer.body).fault_code == "Client"
    assert_alive(server)


# -- truncated uploads ---------------------------------------------------------------------------


@pytest.mark.parametrize("close", ["fin", "reset"])
def test_uploads_abandoned_midway_leave_the_server_answering(server: ProducerServer, close: str) -> None:
    """Clients that announce a body, send half of it and go away (politely or with a TCP reset), more
    of them than the worker has threads: each must free its thread."""
    body = time_types_envelope()
    for _ in range(10):
        with socket.create_connection(address(server), timeout=5) as sock:
            sock.sendall(request_head(server, "GetAllTimeTypes", len(body) + 100) + body[: len(body) // 2])
            if close == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert assert_alive(server) < PROMPT_SECONDS


# A client that announces a Content-Length, sends less and ends its side: a cut that happens to
# leave well-formed XML (here the whole envelope, minus announced trailing bytes) must not be
# executed (it could be a MakeBooking); the producer compares the body with its Content-Length.
def test_a_body_shorter_than_its_content_length_is_not_processed(server: ProducerServer) -> None:
    body = time_types_envelope()
    head = request_head(server, "GetAllTimeTypes", len(body) + 100, [("Connection", "close")])
    raw = raw_exchange(server, head + body, timeout=10, half_close=True)
    answer = parse_answer(raw)
    if answer is not None:  # a server may also just close the connection
        fault = check_soap_answer(answer.status, answer.headers, answer.body)
        assert fault.fault_code == "Client", "an incomplete request was executed"
    assert_alive(server)


@pytest.mark.parametrize(
    ("body", "cut_after"),
    [
        pytest.param(f"<![CDATA[{DEMO_RESIDENT} Tolvan", "Tolvan", id="inside-cdata"),
        pytest.param(f"<!-- {DEMO_RESIDENT} Tolvan", "Tolvan", id="inside-comment"),
        pytest.param(f'<x:subject_of_care a="{DEMO_RESIDENT}', DEMO_RESIDENT, id="inside-attribute"),
        pytest.param(f"<?note {DEMO_RESIDENT}", DEMO_RESIDENT, id="inside-processing-instruction"),
        pytest.param(f"<a{DEMO_RESIDENT}></b>", "</b>", id="in-a-tag-name"),
    ],
)
def test_a_cut_off_request_is_a_fault_that_does_not_echo_it(server: ProducerServer, body: str, cut_after: str) -> None:
    """libxml2 quotes the unfinished CDATA, comment or tag it stopped in; a request cut off there
    must not get the resident's personnummer back in the faultstring (README: never patient data)."""
    xml = time_types_envelope().replace(b"<soapenv:Body>", b"<soapenv:Body>" + body.encode())
    cut = xml.index(cut_after.encode(), xml.index(b"<soapenv:Body>")) + len(cut_after)  # not the Actor's
    xml = xml[:cut]
    fault = client_fault(server, xml, ("well-formed",))
    assert DEMO_RESIDENT not in fault and "Tolvan" not in fault


# -- bytes that are not what they claim to be ----------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(b"\x80", id="lone-continuation-byte"),
        pytest.param(b"\xc0\xaf", id="overlong"),
        pytest.param(b"\xed\xa0\x80", id="utf16-surrogate"),
        pytest.param(b"\xf4\x90\x80\x80", id="beyond-unicode"),
        pytest.param(b"\xe2\x82", id="cut-multibyte"),
        pytest.param(b"\xff\xfe", id="ff-fe"),
        pytest.param("Åsa".encode("latin-1"), id="latin-1"),
    ],
)
@pytest.mark.parametrize("declared", [True, False], ids=["xml-declaration", "no-declaration"])
def test_invalid_utf8_is_a_client_fault(server: ProducerServer, bad: bytes, declared: bool) -> None:
    """A body declared UTF-8 (Content-Type charset, and the XML declaration or its default) that is not."""
    xml = time_types_envelope().replace(b"</x:subject_of_care>", bad + b"</x:subject_of_care>")
    if not declared:
        xml = xml.split(b"?>", 1)[1].lstrip()
    fault = client_fault(server, xml, ("encoding",))
    assert "UTF-8" in fault, f"{fault!r} does not say which encoding was expected"


@pytest.mark.parametrize("encoding", ["X-NO-SUCH-ENCODING", "UTF-9", DEMO_RESIDENT, ""])
def test_an_xml_declaration_naming_no_real_encoding_is_a_client_fault(server: ProducerServer, encoding: str) -> None:
    xml = time_types_envelope().replace(b'encoding="UTF-8"', f'encoding="{encoding}"'.encode(), 1)
    fault = client_fault(server, xml, ("encoding",))
    assert DEMO_RESIDENT not in fault


def test_a_body_that_is_not_in_its_declared_encoding_is_a_client_fault(server: ProducerServer) -> None:
    """UTF-8 bytes declared as UTF-16 decode to nonsense; that is the caller's mistake, not ours."""
    xml = time_types_envelope().replace(b'encoding="UTF-8"', b'encoding="UTF-16"', 1)
    client_fault(server, xml, ("well-formed",))


def test_a_real_encoding_other_than_utf8_is_served(server: ProducerServer) -> None:
    """The contrast to the faults above: XML in another encoding it declares (and libxml2 knows) is valid."""
    xml = time_types_envelope().replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"', 1)
    answer = check_soap_answer(*post(server, xml, content_type="text/xml; charset=ISO-8859-1"), "GetAllTimeTypes")
    assert answer.fault_code is None


@pytest.mark.parametrize("charset", ["x-no-such-charset", "utf-16", '"; DROP'])
def test_a_bogus_content_type_charset_gets_a_soap_answer(server: ProducerServer, charset: str) -> None:
    """Decision: the XML declaration (or its UTF-8 default) governs, as for any SOAP 1.1 stack that
    parses bytes; a charset parameter it does not match may be ignored or refused, but the answer is SOAP."""
    check_soap_answer(*post(server, time_types_envelope(), content_type=f"text/xml; charset={charset}"))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\0" * 1_000_000, id="one-megabyte-of-nul"),
        pytest.param(b"\0" * 16 + time_types_envelope(), id="nul-before-the-envelope"),
        pytest.param(
            time_types_envelope().replace(b"</x:subject_of_care>", b"\0" * 4096 + b"</x:subject_of_care>"),
            id="nul-in-text",
        ),
        pytest.param(time_types_envelope() + b"\0" * 4096, id="nul-after-the-envelope"),
    ],
)
def test_nul_bytes_are_a_client_fault(server: ProducerServer, body: bytes) -> None:
    started = time.monotonic()
    client_fault(server, body, ("well-formed",), timeout=10)
    assert time.monotonic() - started < 5, "a NUL flood took long to refuse"


# -- concurrent garbage --------------------------------------------------------------------------


def _garbage_client(server: ProducerServer, seed: int, stop: float, problems: list[str]) -> None:
    """Until ``stop``: random bytes instead of HTTP, random bodies, corrupted envelopes, abandoned
    uploads. Every HTTP answer from the SOAP endpoint must keep the contract."""
    rng = random.Random(seed)
    valid = time_types_envelope()
    while time.monotonic() < stop:
        kind = rng.randrange(4)
        try:
            if kind == 0:  # not HTTP at all
                raw_exchange(server, rng.randbytes(rng.randrange(1, 4096)), timeout=3)
            elif kind == 3:  # an upload abandoned midway
                with socket.create_connection(address(server), timeout=3) as sock:
                    sock.sendall(
                        request_head(server, "GetAllTimeTypes", len(valid)) + valid[: rng.randrange(len(valid))]
                    )
            else:
                body = rng.randbytes(rng.randrange(0, 8192))
                if kind == 2:
                    corrupt = bytearray(valid)
                    for _ in range(rng.randrange(1, 8)):
                        corrupt[rng.randrange(len(corrupt))] = rng.randrange(256)
                    body = bytes(corrupt)
                check_soap_answer(*post(server, body, timeout=10))
        except AssertionError as exc:
            problems.append(f"client {seed}: {exc}")
        except (OSError, http.client.HTTPException) as exc:
            problems.append(f"client {seed}: {type(exc).__name__}: {exc}")


def test_concurrent_garbage_does_not_stop_valid_requests(server: ProducerServer) -> None:
    """Eight clients send garbage for a few seconds while valid requests keep being answered promptly,
    every garbage POST gets a SOAP answer, and the server's memory does not run away."""
    rss_before = group_rss_bytes(server)
    problems: list[str] = []
    stop = time.monotonic() + 4
    threads = [
        threading.Thread(target=_garbage_client, args=(server, seed, stop, problems), daemon=True) for seed in range(8)
    ]
    for thread in threads:
        thread.start()
    latencies = []
    try:
        while time.monotonic() < stop:
            latencies.append(assert_alive(server, within=5))
            time.sleep(0.05)
    finally:
        for thread in threads:
            thread.join(30)
    assert not problems, "\n".join(problems[:10])
    assert latencies and max(latencies) < PROMPT_SECONDS, f"valid requests waited up to {max(latencies):.1f}s"
    assert_alive(server)
    growth = group_rss_bytes(server) - rss_before
    assert growth < 150 * 2**20, f"the server grew by {growth / 2**20:.0f} MiB while refusing garbage"


# -- header abuse --------------------------------------------------------------------------------


def _head_with(server: ProducerServer, lines: list[bytes], content_length: int | None) -> bytes:
    head = request_head(server, "GetAllTimeTypes", content_length, [("Connection", "close")])
    return head[:-2] + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def assert_http_or_soap(answer: RawAnswer | None, case: str) -> None:
    """No answer (the connection closed), an HTTP-level refusal (4xx, from granian before the
    application), or an answer from the application, which is then SOAP."""
    if answer is None:
        return
    if answer.status in (200, 500):
        check_soap_answer(answer.status, answer.headers, answer.body)
    else:
        assert 400 <= answer.status < 500, f"HTTP {answer.status} for {case}: {answer.body[:300]!r}"
        assert b"Traceback" not in answer.body and b'File "' not in answer.body


HEADER_ABUSE: dict[str, tuple[list[bytes], bool]] = {
    # name: (extra header lines, whether to give the right Content-Length)
    "one-64kib-header": ([b"X-Big: " + b"a" * 65536], True),
    "one-1mib-header": ([b"X-Big: " + b"a" * 1_048_576], True),
    "10000-headers": ([b"X-H%d: v" % i for i in range(10_000)], True),
    "nul-in-a-header": ([b"X-Nul: a\0b"], True),
    "8-bit-header": ([b"X-Latin: \xe5\xff"], True),
    "header-without-colon": ([b"this is not a header"], True),
    "huge-soapaction": ([b'SOAPAction: "' + b"x" * 200_000 + b'"'], True),
    "conflicting-content-lengths": ([b"Content-Length: 5"], True),
    "negative-content-length": ([b"Content-Length: -1"], False),
    "non-numeric-content-length": ([b"Content-Length: abc"], False),
    "overflowing-content-length": ([b"Content-Length: 99999999999999999999999"], False),
    "bad-chunk-size": ([b"Transfer-Encoding: chunked"], False),
}


@pytest.mark.parametrize("case", list(HEADER_ABUSE))
def test_header_abuse_does_not_crash_the_server(server: ProducerServer, case: str) -> None:
    """The HTTP layer may refuse (4xx, or close); the application, if reached, answers SOAP; never 200
    for a request this broken, never internals; the server answers the next request."""
    lines, right_length = HEADER_ABUSE[case]
    body = time_types_envelope()
    if case == "bad-chunk-size":
        body = b"zz\r\n" + body + b"\r\n0\r\n\r\n"
    raw = raw_exchange(server, _head_with(server, lines, len(body) if right_length else None) + body, timeout=10)
    assert_http_or_soap(parse_answer(raw), case)
    assert_alive(server)


def test_an_abusive_url_does_not_crash_the_server(server: ProducerServer) -> None:
    raw = raw_exchange(
        server, b"POST /" + b"a/" * 50_000 + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    assert_http_or_soap(parse_answer(raw), "a 100 kB URL")
    assert_alive(server)


def test_many_idle_connections_do_not_stop_valid_requests(server: ProducerServer) -> None:
    """Connections that are opened and never send a byte hold no WSGI thread (only headers do)."""
    with contextlib.ExitStack() as stack:
        for _ in range(50):
            stack.enter_context(socket.create_connection(address(server), timeout=5))
        assert assert_alive(server) < PROMPT_SECONDS
