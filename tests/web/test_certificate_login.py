"""Logging in with a SITHS certificate: behind the TLS-terminating proxy (the forwarded certificate,
believed only from the proxy), the certificate's HSA-id is the staff member when an account names it;
the cookie is Secure (the browser spoke TLS to the proxy)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import requests
from staff_page import A100
from support import ProducerServer
from support.pki import Authority

HEADER = "X-SSL-Client-Cert"
CLERK = "SE2321000016-S201"  # an account without a password: certificate only
STRANGER = "SE2321000016-S299"


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority(tmp_path_factory.mktemp("pki"), "siths")


@pytest.fixture(scope="module")
def server(start_producer: Callable[..., ProducerServer]) -> ProducerServer:
    return start_producer(
        "webproxied",
        {
            "TIDBOK_PROXY_CERT_HEADER": HEADER,
            "TIDBOK_TRUSTED_PROXIES": "127.0.0.1/32",
            "TIDBOK_CONSUMERS": "SE2321000016-A2G2",
            "TIDBOK_STAFF_ACCOUNTS": f"{CLERK}={A100}",
        },
    )


def login(server: ProducerServer, certificate: str) -> requests.Response:
    http = requests.Session()
    http.headers[HEADER] = certificate
    page = http.get(f"{server.base_url}/staff/login", timeout=30)
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token, page.text[:1000]
    assert "Secure" in page.headers["set-cookie"]  # so requests keeps it from plain HTTP: sent by hand,
    kept = page.headers["set-cookie"].split(";")[0]  # as the browser does over its TLS to the proxy
    return http.post(f"{server.base_url}/staff/login/certificate", data={"login_token": token.group(1)},
                     headers={"Cookie": kept}, timeout=30, allow_redirects=False)  # fmt: skip


def test_a_staff_members_certificate_logs_in(server: ProducerServer, authority: Authority) -> None:
    issued = authority.function_certificate(CLERK, "clerk")
    answer = login(server, issued.escaped_pem())
    assert answer.status_code == 303, answer.text[:1000]
    cookie = answer.headers["set-cookie"]
    assert "tidbok_staff=" in cookie and "Secure" in cookie and "HttpOnly" in cookie


def test_a_certificate_without_an_account_does_not(server: ProducerServer, authority: Authority) -> None:
    answer = login(server, authority.function_certificate(STRANGER, "stranger").escaped_pem())
    assert answer.status_code == 401 and "tidbok_staff=" not in answer.headers.get("set-cookie", "")
