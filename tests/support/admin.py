"""The /admin JSON API in tests: one request, its status, headers (lower-case keys) and JSON body."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

from support.server import ProducerServer


def admin_api(
    server: ProducerServer,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
    content_type: str = "application/json",
) -> tuple[int, dict[str, str], Any]:
    """``admin_api(server, "POST", "/admin/units/…/bookings", {...}, token=…)``: (status, headers, JSON).

    `body` is sent as JSON, or as it is when it is bytes (with `content_type`, e.g. a YAML set-up document)."""
    parts = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    if data is not None:
        sent["Content-Type"] = content_type
    try:
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        raw = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(raw)
    finally:
        conn.close()
