"""The staff page in tests: a producer with staff accounts, and a logged-in HTTP client (requests)."""

from __future__ import annotations

import re
from typing import Any

import requests
from support.server import ProducerServer

A100, A200 = "SE2321000016-A100", "SE2321000016-A200"
ALL_STAFF, ALL_PASSWORD = "SE2321000016-S101", "alla-enheter-losen-1"  # every unit
A100_STAFF, A100_PASSWORD = "SE2321000016-S102", "bara-a100-losen-1"  # A100 only
ACCOUNTS = f"{ALL_STAFF}=*:{ALL_PASSWORD} {A100_STAFF}={A100}:{A100_PASSWORD}"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_LOGIN = re.compile(r'name="login_token" value="([^"]+)"')


def start_web(start_producer: Any, name: str = "web") -> ProducerServer:
    return start_producer(name, {"TIDBOK_STAFF_ACCOUNTS": ACCOUNTS})


class Client:
    """A browser without JavaScript: cookies, forms, redirects."""

    def __init__(self, server: ProducerServer) -> None:
        self.base = server.base_url
        self.http = requests.Session()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.base + path, timeout=30, **kwargs)

    def post(self, path: str, data: dict[str, str], **kwargs: Any) -> requests.Response:
        return self.http.post(self.base + path, data=data, timeout=60, **kwargs)

    def login(self, hsa_id: str, password: str) -> requests.Response:
        page = self.get("/staff/login")
        token = _LOGIN.search(page.text)
        assert token, page.text
        return self.post("/staff/login", {"login_token": token.group(1), "hsa_id": hsa_id, "password": password})

    def csrf(self, path: str = "/staff/residents") -> str:
        page = self.get(path)
        found = _CSRF.search(page.text)
        assert found, page.text[:2000]
        return found.group(1)
