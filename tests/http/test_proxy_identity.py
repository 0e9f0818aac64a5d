"""Behind a TLS-terminating proxy: the proxy verifies the client certificate and forwards it
(URL-escaped PEM, as nginx's $ssl_client_escaped_cert) in a configured header, which the producer
believes only from the configured proxy addresses. Loopback has many addresses, so a "proxy" at
127.0.0.1 and an intruder at 127.0.0.2 are both real TCP peers here."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from email.message import Message

import pytest
from support import DEMO_RESIDENT, ProducerServer, envelope
from support.bodies import get_all_time_types
from support.pki import Authority, Issued

HEADER = "X-SSL-Client-Cert"
PLATFORM = "SE2321000016-A2G2"
STRANGER = "SE2321000016-ZZ98"


class Certificates:
    def __init__(self, authority: Authority) -> None:
        self.platform = authority.function_certificate(PLATFORM, "platform")
        self.stranger = authority.function_certificate(STRANGER, "stranger")
        self.expired = authority.function_certificate(PLATFORM, "expired", expired=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(Authority(tmp_path_factory.mktemp("pki"), "siths"))


@pytest.fixture(scope="module")
def server(start_producer: Callable[..., ProducerServer]) -> ProducerServer:
    return start_producer(
        "proxied",
        {"TIDBOK_PROXY_CERT_HEADER": HEADER, "TIDBOK_TRUSTED_PROXIES": "127.0.0.1/32", "TIDBOK_CONSUMERS": PLATFORM},
    )


def post(server: ProducerServer, certificate: str | None, source: str = "127.0.0.1") -> tuple[int, Message, bytes]:
    """GetAllTimeTypes from `source` (a loopback address), forwarding `certificate` in the header."""
    port = int(server.base_url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    if certificate is not None:
        headers[HEADER] = certificate
    try:
        conn.request(
            "POST",
            "/GetAllTimeTypes/1/rivtabp21",
            envelope("SE2321000016-A100", get_all_time_types(DEMO_RESIDENT)),
            headers,
        )
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def escaped(issued: Issued) -> str:
    return issued.escaped_pem()


def test_a_forwarded_authorized_certificate_is_served(server: ProducerServer, certificates: Certificates) -> None:
    status, _, body = post(server, escaped(certificates.platform))
    assert status == 200, body
    assert b"GetAllTimeTypesResponse" in body


def test_an_unescaped_pem_header_is_understood_too(server: ProducerServer, certificates: Certificates) -> None:
    """Some proxies put the PEM in the header with its line breaks replaced by spaces or tabs."""
    pem = certificates.platform.cert.read_text().strip()
    head, _, rest = pem.partition("\n")
    body, _, tail = rest.rpartition("\n")
    status, _, answer = post(server, f"{head} {body.replace(chr(10), ' ')} {tail}")
    assert status == 200, answer


def test_a_forwarded_unlisted_certificate_is_refused_by_hsa_id(
    server: ProducerServer, certificates: Certificates
) -> None:
    status, _, body = post(server, escaped(certificates.stranger))
    assert status == 500 and b"soap:Client" in body
    assert f"The service consumer {STRANGER} is not authorized".encode() in body


def test_a_call_without_the_header_is_refused(server: ProducerServer) -> None:
    status, _, body = post(server, None)
    assert status == 500 and b"not authorized" in body and b"no client certificate" in body


def test_an_expired_forwarded_certificate_is_refused(server: ProducerServer, certificates: Certificates) -> None:
    status, _, body = post(server, escaped(certificates.expired))
    assert status == 500 and b"not valid now" in body


def test_garbage_in_the_header_is_refused_without_echo(server: ProducerServer) -> None:
    status, _, body = post(server, "191212121212-not-a-certificate")
    assert status == 500 and b"not a PEM certificate" in body
    assert b"191212121212" not in body


def test_the_header_is_not_believed_from_another_address(server: ProducerServer, certificates: Certificates) -> None:
    """A caller reaching the producer around the proxy cannot claim the platform's certificate."""
    status, _, body = post(server, escaped(certificates.platform), source="127.0.0.2")
    assert status == 500 and b"did not come through a trusted proxy" in body
