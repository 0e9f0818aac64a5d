"""The WSGI application: one SOAP endpoint per interaction, its WSDL and XSDs, and dispatch."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

import psycopg
from lxml import etree
from psycopg_pool import ConnectionPool, PoolTimeout

from producer import audit, logs, metrics, readiness
from producer.breaker import Breaker
from producer.call import Call, Unit
from producer.codec import Decoded, ResponseWriter, decode
from producer.config import Settings
from producer.consumer_identity import NotIdentified, identify
from producer.contract import Contract, Interaction, load_contract
from producer.database import DatabaseSilent
from producer.identifiers import is_valid_hsa_id
from producer.soap import (
    CONTENT_TYPE,
    SoapFault,
    client_fault,
    describe_schema_errors,
    envelope,
    fault_envelope,
    parse_envelope,
    refusal_fault,
    server_fault,
)
from producer.unit_cache import UnitCache
from producer.wsdl import ENDPOINT, ContractFiles

log = logging.getLogger("tidbok.soap")
UNAVAILABLE = "The service is temporarily unavailable (database); try again later"
BREAKER_PAUSE_SECONDS = 1.0  # how long calls fail fast after the database failed one
_TRACE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # a header value safe to put in logs

Handler = Callable[[Call, Decoded, psycopg.Connection], Decoded]
StartResponse = Callable[..., Any]


class Producer:
    """A WSGI callable. One per worker process; the pool opens lazily after the fork."""

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        handlers: dict[str, Handler],
        contract: Contract | None = None,
        admin: Callable[..., Iterable[bytes]] | None = None,
    ) -> None:
        self.settings = settings
        self.admin = admin  # the /admin JSON API, served by the same process
        self.database_url = database_url
        self.contract = contract or load_contract()
        self.handlers = handlers
        self.writers = {
            name: ResponseWriter(i.response_qname, i.response_plan) for name, i in self.contract.interactions.items()
        }
        self.files = ContractFiles(
            self.contract.root, {name: i.wsdl_path for name, i in self.contract.interactions.items()}
        )
        self._pool: ConnectionPool | None = None
        self.units = UnitCache()
        self._schema_errors = threading.Lock()
        self.database = Breaker(BREAKER_PAUSE_SECONDS)

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            from producer.database import make_pool

            self._pool = make_pool(self.database_url, self.settings)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    # -- WSGI -------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if self.admin is not None and (path == "/admin" or path.startswith("/admin/")):
            return self.admin(environ, start_response)
        served = self.files.get(environ)
        if served is not None:
            return _respond(start_response, "200 OK", "text/xml; charset=utf-8", served)
        endpoint = ENDPOINT.match(path)
        if endpoint and endpoint.group(1) in self.contract.interactions:
            name = endpoint.group(1)
            if method != "POST":
                return _fault(start_response, client_fault(f"Use POST to call {name}; GET {path}?wsdl gives the WSDL"))
            return self._soap(name, environ, start_response)
        if method == "GET" and path == "/health":
            return _respond(start_response, "200 OK", "text/plain; charset=utf-8", b"ok\n")
        if method == "GET" and path == "/ready":
            problem = readiness.problem(self.pool)
            if problem is None:
                return _respond(start_response, "200 OK", "text/plain; charset=utf-8", b"ready\n")
            return _respond(
                start_response, "503 Service Unavailable", "text/plain; charset=utf-8", f"{problem}\n".encode()
            )
        if method == "GET" and path == "/metrics":
            return _respond(start_response, "200 OK", metrics.CONTENT_TYPE, metrics.exposition(lambda: self.pool))
        if endpoint:
            return _fault(start_response, client_fault(f"There is no interaction {endpoint.group(1)!r} here"))
        return _respond(start_response, "404 Not Found", "text/plain; charset=utf-8", b"not found\n")

    def _soap(self, name: str, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = perf_counter()
        correlation = environ.get("HTTP_X_SKLTP_CORRELATION_ID", "")
        traced = logs.correlation_id.set(correlation if _TRACE_ID.match(correlation) else "-")
        outcome, fault_code = "ok", None
        try:
            caller = self._caller(name, environ)
            logs.consumer.set(caller or "-")
            body = self._read_body(environ)
            response, outcome = self.handle(name, body, environ, caller)
        except SoapFault as fault:
            outcome, fault_code = fault.outcome, fault.code
            if fault.refused:
                metrics.REFUSED.labels(fault.refused).inc()
                log.warning("refused %s: %s", name, fault.message)
            else:
                log.info("fault %s %s: %s", name, fault.code, fault.message)
            return _fault(start_response, fault)
        finally:
            metrics.observe(name, outcome, perf_counter() - started, fault_code)
            metrics.observe_pool(self._pool)
            logs.consumer.set("-")
            logs.correlation_id.reset(traced)
        return _respond(start_response, "200 OK", CONTENT_TYPE, response)

    def _caller(self, name: str, environ: dict[str, Any]) -> str | None:
        """The consumer's HSA-id, refused here when it may not call this contract at all (the care
        unit is checked once the envelope names it). None in the open mode: nobody is identified."""
        try:
            caller = identify(self.settings, environ)
        except NotIdentified as problem:
            raise refusal_fault(f"The caller is not authorized: {problem}", problem.reason) from None
        if caller is not None:
            refusal = self.settings.consumers.refusal(caller, name)
            if refusal is not None:
                raise refusal_fault(refusal, "unauthorized")
        return caller

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        content_type = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if content_type == "application/soap+xml":
            raise SoapFault("VersionMismatch", "SOAP 1.2 is not supported; send SOAP 1.1 as text/xml")
        if content_type != "text/xml":
            raise client_fault(f"Content-Type must be text/xml for SOAP 1.1, got {content_type or 'none'!r}")
        limit = self.settings.max_request_bytes
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            raise client_fault("Content-Length is not a number") from None
        if length > limit:
            raise client_fault(f"The request is larger than the limit of {limit} bytes")
        stream = environ["wsgi.input"]
        data = stream.read(length) if length >= 0 else stream.read(limit + 1)
        if len(data) > limit:
            raise client_fault(f"The request is larger than the limit of {limit} bytes")
        if len(data) < length:  # the client gave up mid-body; what did arrive must not be acted on
            raise client_fault(
                f"The request body ended after {len(data)} of the {length} bytes its Content-Length announced"
            )
        return data

    # -- dispatch ---------------------------------------------------------------------------------

    def handle(self, name: str, body: bytes, environ: dict[str, Any], caller: str | None) -> tuple[bytes, str]:
        """Parse, validate, decode, run the handler, and write the response; also says the outcome
        (the resultCode in lower case, "ok" for the queries) for the metrics.

        Connections are in autocommit mode: queries run on their own, and the changing operations
        open their transaction themselves (see operations.booking_common.run_refusable)."""
        interaction = self.contract.interactions[name]
        parsed = parse_envelope(body)
        self._check_root(interaction, parsed.body_root.tag)
        if not parsed.logical_address:
            raise client_fault("The LogicalAddress header (urn:riv:itintegration:registry:1) is missing or empty")
        if caller is not None:
            refusal = self.settings.consumers.refusal(caller, name, parsed.logical_address)
            if refusal is not None:
                raise refusal_fault(refusal, "unauthorized")
        if parsed.actor_element is not None and not self.contract.actor_validator.validate(parsed.actor_element):
            raise client_fault(
                self._schema_error(self.contract.actor_validator, parsed.actor_element, "The Actor header")
            )
        if not interaction.validator.validate(parsed.body_root):
            raise client_fault(self._schema_error(interaction.validator, parsed.body_root, "The request"))
        request = decode(parsed.body_root, interaction.request_plan)
        if not self.database.allows():
            metrics.DATABASE_UNAVAILABLE.inc()
            raise server_fault(UNAVAILABLE)
        try:
            with self.pool.connection() as conn:
                unit = self._unit(conn, parsed.logical_address)
                call = Call(
                    interaction=name,
                    unit=unit,
                    actor_id=parsed.actor_id,
                    actor_type=parsed.actor_type,
                    caller=caller,
                    consumer_hsa_id=environ.get("HTTP_X_RIVTA_ORIGINAL_SERVICECONSUMER_HSAID"),
                    correlation_id=environ.get("HTTP_X_SKLTP_CORRELATION_ID"),
                    now=datetime.now(UTC),
                    settings=self.settings,
                    units=self.units,
                )
                result = self.handlers[name](call, request, conn)
        except SoapFault:
            self.database.succeeded()  # the database answered; the request itself was wrong
            raise
        except (PoolTimeout, DatabaseSilent):  # unreachable: the next calls fail fast for a moment
            self.database.failed()
            metrics.DATABASE_UNAVAILABLE.inc()
            log.warning("database unavailable during %s", name, exc_info=True)
            raise server_fault(UNAVAILABLE) from None
        except psycopg.OperationalError:  # this call's connection died; the pool replaces it
            metrics.DATABASE_UNAVAILABLE.inc()
            log.warning("database connection lost during %s", name, exc_info=True)
            raise server_fault(UNAVAILABLE) from None
        except Exception:
            log.exception("internal error in %s", name)
            raise server_fault(f"Internal error while handling {name}") from None
        self.database.succeeded()
        audit.record_call(call, request, result)
        outcome = str(result.get("resultCode") or "ok").lower() if isinstance(result, dict) else "ok"
        return envelope(self.writers[name].write(result)), outcome

    def _schema_error(self, validator: etree.XMLSchema, element: etree._Element, subject: str) -> str:
        """Describe why an element is invalid. A compiled schema keeps one error log for all threads,
        so the failing validation is repeated under a lock to read its own errors (valid requests,
        the common case, never take the lock)."""
        with self._schema_errors:
            validator.validate(element)
            return describe_schema_errors(validator.error_log, subject)

    def _unit(self, conn: psycopg.Connection, logical_address: str) -> Unit:
        key = logical_address.upper()
        unit = self.units.unit(conn, key)
        if unit is None:
            shown = f" {key}" if is_valid_hsa_id(key) else ""  # anything else might be patient data
            raise client_fault(f"The logical address{shown} is unknown: no such care unit here")
        return unit

    def _check_root(self, interaction: Interaction, tag: str) -> None:
        if tag == interaction.request_qname:
            return
        other = self.contract.by_request_qname.get(tag)
        if other is not None:
            raise client_fault(
                f"The request element belongs to {other.name}, but was sent to the {interaction.name} endpoint"
            )
        raise client_fault(f"The {interaction.name} endpoint expects {interaction.request_qname} in the Body")


def _respond(start_response: StartResponse, status: str, content_type: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def _fault(start_response: StartResponse, fault: SoapFault) -> list[bytes]:
    return _respond(start_response, "500 Internal Server Error", CONTENT_TYPE, fault_envelope(fault))
