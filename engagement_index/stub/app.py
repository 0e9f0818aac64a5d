"""WSGI routing: the two SOAP endpoints with their WSDLs and XSDs, /health, and the /_stub/* test API.

Fault injection happens here, before the SOAP layer, because "down" must not look like SOAP at all:
behind VP an unreachable EI is an HTTP error with no envelope.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from engagement_index.stub import faults
from engagement_index.stub.config import StubSettings
from engagement_index.stub.contract import EiContract, load_ei_contract
from engagement_index.stub.control import Control, ControlError, parse_behaviour
from engagement_index.stub.service import EngagementIndex
from engagement_index.stub.store import Store
from producer.soap.envelope import CONTENT_TYPE, SoapFault, fault_envelope
from producer.soap.wsdl import ContractFiles, endpoint_name

log = logging.getLogger("tidbok.ei_stub")

StartResponse = Callable[..., Any]

MAX_REQUEST_BYTES = 32 * 1024 * 1024  # 1000 posts are about 1 MB; leave room for generous testers
_XML = "text/xml; charset=utf-8"
_JSON = "application/json"


class StubApp:
    """A WSGI callable holding the whole index; granian must run exactly one worker process."""

    def __init__(self, settings: StubSettings, contract: EiContract | None = None) -> None:
        self.settings = settings
        self.contract = contract or load_ei_contract()
        self.store = Store(owner=settings.hsa_id)
        self.control = Control()
        self.index = EngagementIndex(settings, self.contract, self.store)
        self.files = ContractFiles(
            self.contract.root, {name: i.wsdl_path for name, i in self.contract.interactions.items()}
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        name = endpoint_name(path)
        served = self.files.get(environ, name)
        if served is not None:
            return _respond(start_response, "200 OK", _XML, served)
        if name in self.contract.interactions:
            if method == "POST":
                return self._soap(name, environ, start_response)
            return _respond(start_response, "405 Method Not Allowed", "text/plain", b"POST SOAP, or GET ?wsdl\n")
        if path.startswith("/_stub/"):
            return self._stub_api(method, path, environ, start_response)
        if method == "GET" and path == "/health":
            return _respond(start_response, "200 OK", "text/plain; charset=utf-8", b"ok\n")
        return _respond(start_response, "404 Not Found", "text/plain; charset=utf-8", b"not found\n")

    # -- SOAP -------------------------------------------------------------------------------------

    def _soap(self, name: str, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        call = self.store.count_call(name)
        behaviour = self.control.take(name)
        try:
            # Read the whole request first, whatever the answer: a server that answers before the
            # body has arrived may have the connection reset under the client while it still sends
            # (seen as "Remote end closed connection without response" under load).
            body = _read_body(environ)
        except SoapFault as fault:
            return _respond(start_response, "500 Internal Server Error", CONTENT_TYPE, fault_envelope(fault))
        if behaviour.mode == "down":
            log.info("%s call %d: answering 503 (control: down)", name, call)
            return _respond(start_response, "503 Service Unavailable", "text/plain", b"")
        try:
            if behaviour.mode == "fault":
                raise faults.injected(behaviour.fault_code or "EI000", self.settings.hsa_id)
            self.store.keep_request(name, call, body, _trace(environ))
            response = self.index.update(body, call) if name == "Update" else self.index.find_content(body)
            status = "200 OK"
        except SoapFault as fault:
            log.info("%s call %d: fault %s", name, call, fault.message[:200])
            status, response = "500 Internal Server Error", fault_envelope(fault)
        if behaviour.mode == "slow":
            time.sleep(behaviour.delay_seconds)  # handled already: a caller that times out still changed EI
        return _respond(start_response, status, CONTENT_TYPE, response)

    # -- /_stub/* ---------------------------------------------------------------------------------

    def _stub_api(
        self, method: str, path: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        route = (method, path.rstrip("/"))
        if route == ("GET", "/_stub/state"):
            return _json(start_response, "200 OK", {**self.store.snapshot(), "control": self.control.describe()})
        if route == ("GET", "/_stub/requests"):
            return _json(start_response, "200 OK", self.store.requests())
        if route == ("GET", "/_stub/control"):
            return _json(start_response, "200 OK", self.control.describe())
        if route == ("POST", "/_stub/control"):
            try:
                raw = _read_body(environ) or b"{}"
                self.control.set(parse_behaviour(json.loads(raw)))
            except (ValueError, ControlError, SoapFault) as exc:  # JSONDecodeError is a ValueError
                message = exc.message if isinstance(exc, SoapFault) else str(exc)
                return _json(start_response, "400 Bad Request", {"error": message})
            log.info("control: %s", self.control.describe())
            return _json(start_response, "200 OK", self.control.describe())
        if route == ("POST", "/_stub/reset"):
            self.store.reset()
            self.control.reset()
            return _json(start_response, "200 OK", {"reset": True})
        return _json(start_response, "404 Not Found", {"error": f"no {method} {path}"})


def _trace(environ: dict[str, Any]) -> dict[str, str]:
    """The caller's X-Request-ID and X-Context-ID (seed 002), as it sent them."""
    sent = {"request_id": environ.get("HTTP_X_REQUEST_ID"), "context_id": environ.get("HTTP_X_CONTEXT_ID")}
    return {key: value[:128] for key, value in sent.items() if value}


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        raise faults.not_schema_valid("Content-Length is not a number") from None
    if length > MAX_REQUEST_BYTES:
        raise faults.technical(f"The request is larger than the stub's limit of {MAX_REQUEST_BYTES} bytes")
    stream = environ["wsgi.input"]
    data = stream.read(length) if length >= 0 else stream.read(MAX_REQUEST_BYTES + 1)
    if len(data) > MAX_REQUEST_BYTES:
        raise faults.technical(f"The request is larger than the stub's limit of {MAX_REQUEST_BYTES} bytes")
    return data


def _respond(start_response: StartResponse, status: str, content_type: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def _json(start_response: StartResponse, status: str, data: Any) -> list[bytes]:
    return _respond(start_response, status, _JSON, json.dumps(data, indent=1).encode())


def create_app() -> StubApp:
    """The granian factory target (engagement_index.stub.app:create_app)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return StubApp(StubSettings.from_env())
