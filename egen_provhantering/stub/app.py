"""WSGI routing: the OfferInteraction endpoint (SOAP, ?wsdl and its XSD), /health, and the /_stub/*
test API. Fault injection happens here, before the SOAP layer: "down" must not look like SOAP at all."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

from egen_provhantering.contract import SERVICE_PATH, WSDL_PATH, XSD_PATH, in_namespace
from egen_provhantering.stub.config import StubSettings
from egen_provhantering.stub.control import Control, ControlError, parse_behaviour
from egen_provhantering.stub.service import OfferService
from egen_provhantering.stub.store import ConfigError, Store
from producer.soap.envelope import CONTENT_TYPE
from producer.sweden.identifiers import mask_personnummer

log = logging.getLogger("tidbok.ep_stub")

StartResponse = Callable[..., Any]

MAX_REQUEST_BYTES = 1024 * 1024
_XML = "text/xml; charset=utf-8"
_JSON = "application/json"
_XSD_PATH = SERVICE_PATH.rsplit("/", 1)[0] + "/" + XSD_PATH.name
_SOAP_ADDRESS = re.compile(r'(<soap:address\s+location=")[^"]*(")')
_GIVEN = re.compile(r"^/_stub/given/([^/]+)$")


class StubApp:
    """A WSGI callable holding the whole service; granian must run exactly one worker process."""

    def __init__(self, settings: StubSettings) -> None:
        self.settings = settings
        self.store = Store(settings)
        self.control = Control()
        self.service = OfferService(self.store, settings.namespace)
        self._wsdl = in_namespace(WSDL_PATH.read_text(encoding="utf-8"), settings.namespace)
        self._xsd = in_namespace(XSD_PATH.read_text(encoding="utf-8"), settings.namespace).encode()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == SERVICE_PATH:
            if method == "POST":
                return self._soap(environ, start_response)
            if method == "GET" and environ.get("QUERY_STRING", "").lower() in ("wsdl", "wsdl="):
                return _respond(start_response, "200 OK", _XML, self._wsdl_for(environ))
            return _respond(start_response, "405 Method Not Allowed", "text/plain", b"POST SOAP, or GET ?wsdl\n")
        if method == "GET" and path == _XSD_PATH:
            return _respond(start_response, "200 OK", _XML, self._xsd)
        if path.startswith("/_stub/"):
            return self._stub_api(method, path, environ, start_response)
        if method == "GET" and path == "/health":
            return _respond(start_response, "200 OK", "text/plain; charset=utf-8", b"ok\n")
        return _respond(start_response, "404 Not Found", "text/plain; charset=utf-8", b"not found\n")

    def _wsdl_for(self, environ: dict[str, Any]) -> bytes:
        """The WSDL with soap:address set to the URL it was fetched from."""
        scheme = environ.get("wsgi.url_scheme", "http")
        host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
        url = f"{scheme}://{host}{SERVICE_PATH}"
        return _SOAP_ADDRESS.sub(lambda m: m.group(1) + url + m.group(2), self._wsdl).encode()

    # -- SOAP -------------------------------------------------------------------------------------

    def _soap(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        call = self.store.count_call()
        try:
            body = _read_body(environ)
        except ValueError as exc:
            return _respond(start_response, "400 Bad Request", "text/plain", f"{exc}\n".encode())
        action = environ.get("HTTP_SOAPACTION")
        request_id = (environ.get("HTTP_X_REQUEST_ID") or "")[:128] or None
        headers = {"soap_action": action or "", "request_id": request_id or ""}
        self.store.keep_request(call, body, headers)
        operation = _operation_hint(action, body)
        behaviour = self.control.take(operation)
        if behaviour.mode == "down":
            log.info("call %d: answering 503 (control: down)", call)
            self.store.note(call, operation, "down", None, request_id)
            return _respond(start_response, "503 Service Unavailable", "text/html", b"")
        handled = self.service.handle(call, body, action, request_id, technical=behaviour.mode == "technical")
        self.store.note(call, handled.operation, handled.outcome, handled.request, request_id)
        resident = handled.request.values.get("PersonalNumber") if handled.request else None
        log.info(
            "call %d: %s %s (resident %s, unit offer %s)",
            call,
            handled.operation,
            handled.outcome,
            mask_personnummer(resident or ""),
            (handled.request.values.get("UnitOfferID") if handled.request else None) or "-",
        )
        if behaviour.mode == "slow":
            time.sleep(behaviour.delay_seconds)  # handled already: a caller that times out still gave the offer
        return _respond(start_response, handled.status, CONTENT_TYPE, handled.body)

    # -- /_stub/* ---------------------------------------------------------------------------------

    def _stub_api(
        self, method: str, path: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        route = (method, path.rstrip("/"))
        if route == ("GET", "/_stub/state"):
            return _json(start_response, "200 OK", {**self.store.snapshot(), "control": self.control.describe()})
        if route == ("GET", "/_stub/given"):
            return _json(start_response, "200 OK", self.store.given())
        if method == "GET" and (match := _GIVEN.match(path.rstrip("/"))):
            return _json(start_response, "200 OK", self.store.given(unquote(match.group(1))))
        if route == ("GET", "/_stub/requests"):
            return _json(start_response, "200 OK", self.store.requests())
        if route == ("GET", "/_stub/control"):
            return _json(start_response, "200 OK", self.control.describe())
        if route == ("GET", "/_stub/config"):
            return _json(start_response, "200 OK", self.store.config.describe())
        if route in (("POST", "/_stub/control"), ("POST", "/_stub/config")):
            try:
                spec = json.loads(_read_body(environ) or b"{}")
                if route[1] == "/_stub/control":
                    self.control.set(parse_behaviour(spec))
                    described = self.control.describe()
                else:
                    described = self.store.configure(spec)
            except (ValueError, ControlError, ConfigError) as exc:  # JSONDecodeError is a ValueError
                return _json(start_response, "400 Bad Request", {"error": str(exc)})
            log.info("%s: %s", route[1].removeprefix("/_stub/"), _masked(described))
            return _json(start_response, "200 OK", described)
        if route == ("POST", "/_stub/reset"):
            self.store.reset()
            self.control.reset()
            return _json(start_response, "200 OK", {"reset": True})
        return _json(start_response, "404 Not Found", {"error": f"no {method} {path}"})


def _operation_hint(action: str | None, body: bytes) -> str:
    """Which operation a call is, for fault injection, before the SOAP layer reads it."""
    text = f"{action or ''} {body[:4096].decode('utf-8', 'replace')}"
    return (
        "UndoGivenOfferByExternalSystem"
        if "UndoGivenOfferByExternalSystem" in text
        else "AddGivenOfferByExternalSystem"
    )


def _masked(described: dict[str, Any]) -> dict[str, Any]:
    residents = described.get("residents")
    if isinstance(residents, list):
        return {**described, "residents": f"{len(residents)} personnummer"}
    return described


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        raise ValueError("Content-Length is not a number") from None
    if length > MAX_REQUEST_BYTES:
        raise ValueError(f"the request is larger than the stub's limit of {MAX_REQUEST_BYTES} bytes")
    stream = environ["wsgi.input"]
    data = stream.read(length) if length >= 0 else stream.read(MAX_REQUEST_BYTES + 1)
    if len(data) > MAX_REQUEST_BYTES:
        raise ValueError(f"the request is larger than the stub's limit of {MAX_REQUEST_BYTES} bytes")
    return data


def _respond(start_response: StartResponse, status: str, content_type: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def _json(start_response: StartResponse, status: str, data: Any) -> list[bytes]:
    return _respond(start_response, status, _JSON, json.dumps(data, indent=1, ensure_ascii=False).encode())


def create_app() -> StubApp:
    """The granian factory target (egen_provhantering.stub.app:create_app): settings from the environment."""
    return StubApp(StubSettings.from_env())
