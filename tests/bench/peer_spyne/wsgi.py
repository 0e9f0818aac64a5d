"""What the peer's granian workers import: the spyne Applications as one WSGI application routed by
path (/<Interaction>/1/rivtabp21, tidbok's endpoints), and that application behind tidbok's
body-first RSGI adapter, with as many threads as tidbok's production server (TIDBOK_DB_POOL_SIZE)."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from spyne.server.wsgi import WsgiApplication

from producer.calendar.units import UnitCache
from producer.http.body_first import BodyFirst
from producer.platform.database import make_pool
from producer.platform.settings import Settings
from tests.bench.peer_spyne.service import Backend, applications

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
FAULT = (
    '<soap11env:Envelope xmlns:soap11env="http://schemas.xmlsoap.org/soap/envelope/"><soap11env:Body>'
    "<soap11env:Fault><faultcode>soap11env:Client</faultcode><faultstring>{}</faultstring></soap11env:Fault>"
    "</soap11env:Body></soap11env:Envelope>"
)


@dataclass(frozen=True)
class Rules:
    """What the body-first adapter asks of a request before reading its body (producer.http.app.Route)."""

    body_limit: int
    body_timeout: float
    waits_for_database: bool
    quick: bool = False  # the peer has no memory of free slots: never tried on the event loop


def create_app() -> Wsgi:
    settings = Settings.from_env()
    url = settings.database_url or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL must be set for the peer's workers")
    backend = Backend(settings, make_pool(url, settings), UnitCache())
    by_path = {f"/{name}/1/rivtabp21": WsgiApplication(app) for name, app in applications(backend).items()}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = by_path.get(environ.get("PATH_INFO", ""))
        if target is None:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found\n"]
        return target(environ, start_response)

    gc.collect()
    gc.freeze()  # as tidbok's workers do after start-up
    return app


def create_rsgi_app() -> BodyFirst:
    """granian's factory target, as producer.http.wsgi.create_rsgi_app is tidbok's."""
    settings = Settings.from_env()
    rules = {
        method: Rules(settings.max_request_bytes, settings.body_timeout_seconds, method == "POST")
        for method in ("GET", "POST")
    }

    def route(method: str, path: str) -> Rules:
        return rules.get(method, rules["GET"])

    def refusal(message: str) -> tuple[str, bytes]:
        return "text/xml; charset=utf-8", FAULT.format(message).encode()

    return BodyFirst(create_app(), settings.db_pool_size, route, refusal, "tidbok.peer.route")
