"""The one router of the HTTP server: the SOAP endpoints (one per interaction, with their WSDLs and
XSDs), the /admin JSON API and the /staff pages (one Flask application, producer.web), and the
probes (/health, /ready, /metrics).

What a request is gets decided once, from its method and path (Producer.route): whether it is the
admin API's, which interaction its endpoint path names, how large its body may be and how long it
may take to arrive, and whether answering it may wait for the database. The granian adapter
(producer.http.body_first) asks for that before it reads the body and hands the answer on in the
environ, so nothing is decided twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from producer.calendar.units import Unit, UnitCache
from producer.http import readiness
from producer.http.consumer_identity import NotIdentified, identify
from producer.interactions import audit
from producer.interactions.call import Call
from producer.interactions.free_slots import FreeSlots
from producer.platform import metrics, tracing
from producer.platform.breaker import Breaker
from producer.platform.change_tokens import ChangeTokens
from producer.platform.database import DatabaseSilent, make_pool
from producer.platform.on_demand import OnDemand, WouldWait
from producer.platform.replica import Reads
from producer.platform.settings import Settings
from producer.platform.slot_listener import SlotListener
from producer.soap.codec import Decoded, ResponseWriter
from producer.soap.contract import Contract, load_contract
from producer.soap.envelope import (
    CONTENT_TYPE,
    Envelope,
    SoapFault,
    client_fault,
    envelope,
    fault_envelope,
    refusal_fault,
    server_fault,
    wrong_namespace,
)
from producer.soap.pipeline import Pipeline
from producer.soap.scheduling import REGISTRY_NS
from producer.soap.wsdl import ContractFiles, endpoint_name
from producer.sweden.identifiers import is_valid_hsa_id
from producer.testkit.record import Recorder
from producer.web.app import CLIENT_HSA_ID, WebApp

log = logging.getLogger("tidbok.soap")
access = logging.getLogger("tidbok.access")  # one line per request, with its ids
UNAVAILABLE = "The service is temporarily unavailable (database); try again later"
BREAKER_PAUSE_SECONDS = 1.0  # how long calls fail fast after the database failed one
ROUTE_KEY = "tidbok.route"  # the environ key under which a server adapter passes the Route on
_QUICK = "tidbok.quick"  # set while a call is tried on a server's event loop (Producer.quick)
_READ = "tidbok.read"  # the request as that try read it, so the thread that finishes it need not again
QUICK_INTERACTIONS = frozenset({"GetAvailableTimeslots", "GetAvailableDates"})  # may answer from memory

Handler = Callable[[Call, Decoded, psycopg.Connection], Decoded]
StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class Route:
    """What a request is, decided once from its method and path."""

    admin: bool  # the web application's: the /admin JSON API and the /staff pages
    endpoint: str | None  # the interaction a RIVTABP21 endpoint path names (known or not)
    body_limit: int  # bytes
    body_timeout: float  # seconds for the body to arrive (granian: producer.http.body_first)
    waits_for_database: bool  # may wait for the database: never run on a server's event loop
    quick: bool = False  # may be answered from memory: tried on the event loop first (Producer.quick)


class Producer:
    """A WSGI callable. One per worker process; the pool opens lazily after the fork."""

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        handlers: dict[str, Handler],
        contract: Contract | None = None,
        admin: WebApp | None = None,
    ) -> None:
        self.settings = settings
        self.admin = admin  # the /admin JSON API and the /staff pages, served by the same process
        self.database_url = database_url
        self.contract = contract or load_contract()
        self.handlers = handlers
        self.writers = {
            name: ResponseWriter(i.response_qname, i.response_plan) for name, i in self.contract.interactions.items()
        }
        self.files = ContractFiles(
            self.contract.root, {name: i.wsdl_path for name, i in self.contract.interactions.items()}
        )
        self.pipeline = Pipeline(self.contract.interactions, self.contract.actor_validator)
        self._pool: ConnectionPool | None = None
        self.reads = Reads(settings, lambda: self.pool)
        self.units = UnitCache()
        # free slots in memory, trusted while the listener hears every change (producer.interactions.free_slots)
        self.tokens = ChangeTokens()
        self.listener = SlotListener(database_url, self.tokens)
        self.free_slots = (
            FreeSlots(
                self.tokens,
                lambda: self.listener.listening,
                self.writers["GetAvailableTimeslots"].item("timeslotDetail"),
                settings.availability_memory_mb * 2**20,
                self.reads.holding,
            )
            if settings.availability_memory and "GetAvailableTimeslots" in self.writers
            else None
        )
        self.database = Breaker(BREAKER_PAUSE_SECONDS)
        # integration testers' recording (TIDBOK_RECORD_DIR); None: one `if` per call is all it costs
        self.recorder = (
            Recorder(settings.record_dir, settings.record_mask, settings.demo_date) if settings.record_dir else None
        )

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            self._pool = make_pool(self.database_url, self.settings)
            if self.free_slots is not None:
                self.listener.start()  # with the pool: in the worker, after the fork
        return self._pool

    def close(self) -> None:
        self.listener.stop()
        self.reads.close()
        if self._pool is not None:
            self._pool.close()

    # -- routing ----------------------------------------------------------------------------------

    def route(self, method: str, path: str) -> Route:
        """What a request is (see Route); the one place the /admin prefix, the endpoint pattern and
        the body limit are applied."""
        admin = self.admin is not None and self.admin.owns(path)
        if admin:
            limit, timeout = self.admin.max_body, self.admin.body_timeout
        else:
            limit, timeout = self.settings.max_request_bytes, self.settings.body_timeout_seconds
        waits = admin or method == "POST" or path in ("/ready", "/metrics")
        endpoint = None if admin else endpoint_name(path)
        quick = self.free_slots is not None and method == "POST" and endpoint in QUICK_INTERACTIONS
        return Route(admin, endpoint, limit, timeout, waits, quick)

    def refusal(self, message: str) -> tuple[str, bytes]:
        """A soap:Client fault (content type, body), for a server adapter that refuses a request itself."""
        return CONTENT_TYPE, fault_envelope(client_fault(message))

    def quick(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """Answer on the server's event loop, if the answer needs no database (it comes from the
        worker's memory); None when it would: nothing was logged, counted or answered, and the
        caller runs the request in a thread as usual (the request as read travels in the environ)."""
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            answer["status"], answer["headers"] = int(status.split(" ", 1)[0]), headers

        environ[_QUICK] = True
        try:
            payload = b"".join(self(environ, start_response))
        except WouldWait:
            environ["wsgi.input"].seek(0)
            return None
        finally:
            del environ[_QUICK]
        return answer["status"], [(name.lower(), value) for name, value in answer["headers"]], payload

    # -- WSGI -------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer, with the request's id on every line logged meanwhile and on its access line (the
        servers' own access logs are off: they run outside the request and cannot know its ids)."""
        started = perf_counter()
        request_id, context_id = tracing.ids_from(environ)
        environ["HTTP_X_REQUEST_ID"] = request_id  # the /admin API echoes this one, not a second
        traced = tracing.request_id.set(request_id), tracing.context_id.set(context_id or "-")
        status: list[str] = []

        def started_response(line: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            status.append(line)
            return start_response(line, headers, *args)

        unfinished = False
        try:
            return self._answer(environ, started_response)
        except WouldWait:
            unfinished = True  # to be run again in a thread: that run logs it
            raise
        finally:
            if not unfinished:
                self._access_line(environ, status, started)
            tracing.request_id.reset(traced[0])
            tracing.context_id.reset(traced[1])

    def _access_line(self, environ: dict[str, Any], status: list[str], started: float) -> None:
        if access.isEnabledFor(logging.INFO):
            access.info(
                '%s "%s %s %s" %s %.1fms',
                environ.get("REMOTE_ADDR", "-"),
                environ.get("REQUEST_METHOD", "-"),
                environ.get("PATH_INFO", ""),
                environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                status[0].split(" ", 1)[0] if status else "-",
                (perf_counter() - started) * 1000,
            )

    def _answer(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        route = environ.get(ROUTE_KEY) or self.route(method, path)
        if route.admin and self.admin is not None:
            environ[CLIENT_HSA_ID] = self._client(environ)
            answer = self.admin(environ, start_response)
            if method not in ("GET", "HEAD"):
                self.tokens.everything_changed()  # staff may have changed slots: before the answer goes
            return answer
        served = self.files.get(environ, route.endpoint)
        if served is not None:
            return _respond(start_response, "200 OK", "text/xml; charset=utf-8", served)
        name = route.endpoint
        if name in self.contract.interactions:
            if method != "POST":
                return _fault(start_response, client_fault(f"Use POST to call {name}; GET {path}?wsdl gives the WSDL"))
            return self._soap(name, route, environ, start_response)
        if method == "GET" and path == "/health":
            return _respond(start_response, "200 OK", "text/plain; charset=utf-8", b"ok\n")
        if method == "GET" and path == "/ready":
            problem = readiness.problem(self.pool, self.settings)
            if problem is None:
                return _respond(start_response, "200 OK", "text/plain; charset=utf-8", b"ready\n")
            return _respond(
                start_response, "503 Service Unavailable", "text/plain; charset=utf-8", f"{problem}\n".encode()
            )
        if method == "GET" and path == "/metrics":
            return _respond(start_response, "200 OK", metrics.CONTENT_TYPE, metrics.exposition(lambda: self.pool))
        if name is not None:
            return _fault(start_response, client_fault(f"There is no interaction {name!r} here"))
        return _respond(start_response, "404 Not Found", "text/plain; charset=utf-8", b"not found\n")

    def _soap(self, name: str, route: Route, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = perf_counter()
        traced = tracing.correlation_id.set(tracing.safe(environ.get("HTTP_X_SKLTP_CORRELATION_ID", "")) or "-")
        context_id = tracing.context_id.get()  # the request's ids: __call__ set them
        echo = tracing.echo(tracing.request_id.get(), None if context_id == "-" else context_id)
        outcome, fault_code = "ok", None
        body = b""
        status = "200 OK"
        unfinished = False
        try:
            caller = self._caller(name, environ)
            tracing.consumer.set(caller or "-")
            body = self._read_body(environ, route.body_limit)
            response, outcome = self.handle(name, body, environ, caller)
        except WouldWait:
            unfinished = True  # tried on the event loop; a thread runs it again and counts it
            raise
        except SoapFault as fault:
            outcome, fault_code = fault.outcome, fault.code
            if fault.refused:
                metrics.REFUSED.labels(fault.refused).inc()
                log.warning("refused %s: %s", name, fault.message)
            else:
                log.info("fault %s %s: %s", name, fault.code, fault.message)
            status, response = "500 Internal Server Error", fault_envelope(fault)
        finally:
            if not unfinished:
                metrics.observe(name, outcome, perf_counter() - started, fault_code)
                metrics.observe_pool(self._pool)
            tracing.consumer.set("-")
            tracing.correlation_id.reset(traced)
        if self.recorder is not None and body:
            self.recorder.record(name, body, response)
        return _respond(start_response, status, CONTENT_TYPE, response, echo)

    def _client(self, environ: dict[str, Any]) -> str | None:
        """The HSA-id of the caller's verified certificate (mutual TLS, or the trusted proxy's header),
        for the staff page's certificate login; None when there is none."""
        try:
            return identify(self.settings, environ)
        except NotIdentified:
            return None

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

    def _read_body(self, environ: dict[str, Any], limit: int) -> bytes:
        content_type = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if content_type == "application/soap+xml":
            raise SoapFault("VersionMismatch", "SOAP 1.2 is not supported; send SOAP 1.1 as text/xml")
        if content_type != "text/xml":
            raise client_fault(f"Content-Type must be text/xml for SOAP 1.1, got {content_type or 'none'!r}")
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
        open their transaction themselves (see producer.calendar)."""

        def addressed(parsed: Envelope) -> None:  # the headers, between the root check and the validation
            if not parsed.logical_address:
                if parsed.misplaced_logical_address is not None:
                    sent = parsed.misplaced_logical_address
                    raise client_fault(f"The header {wrong_namespace('LogicalAddress', sent, REGISTRY_NS)}")
                raise client_fault("The LogicalAddress header (urn:riv:itintegration:registry:1) is missing or empty")
            if caller is not None:
                refusal = self.settings.consumers.refusal(caller, name, parsed.logical_address)
                if refusal is not None:
                    raise refusal_fault(refusal, "unauthorized")

        quick = _QUICK in environ
        read = environ.pop(_READ, None)
        parsed, request = read or self.pipeline.read(self.contract.interactions[name], body, addressed)
        if not self.database.allows():
            metrics.DATABASE_UNAVAILABLE.inc()
            raise server_fault(UNAVAILABLE)

        def answer(conn: psycopg.Connection, free_slots: FreeSlots | None = None) -> tuple[Call, Decoded]:
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
                free_slots=free_slots,
            )
            return call, self.handlers[name](call, request, conn)

        try:
            if quick or self._from_memory(name, request):  # the primary, taken only if the memory needs it
                with OnDemand(lambda: self.pool, never_wait=quick) as conn:
                    call, result = answer(conn, self.free_slots)
            else:  # the primary, or for availability and the catalogue a fresh replica
                call, result = self.reads.run(name, request, answer)
        except WouldWait:
            environ[_READ] = (parsed, request)
            raise
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
        if name in audit.CHANGES:
            self._changed(call, request)
        audit.record_call(call, request, result)
        outcome = str(result.get("resultCode") or "ok").lower() if isinstance(result, dict) else "ok"
        return envelope(self.writers[name].write(result)), outcome

    def _from_memory(self, name: str, request: Decoded) -> bool:
        """Whether the worker's memory of free slots answers this call. It reads its days from the
        primary, or from a replica known to hold every change of the unit (Reads.holding): a day
        read from a replica that had not yet replayed a booking would be remembered as current
        under the change token the booking already renewed."""
        return (
            name in QUICK_INTERACTIONS and self.free_slots is not None and self.listener.listening
            and not request.get("bookingId")
        )  # fmt: skip

    def _changed(self, call: Call, request: Decoded) -> None:
        """A booking change is committed: new change tokens for the units whose free slots it may
        have taken, before the answer goes (the notice of the commit reaches other hosts' workers)."""
        self.tokens.changed(call.unit.hsa_id)
        facility = (request.get("requestedTimeslot") or {}).get("healthcare_facility")
        if facility:
            self.tokens.changed(facility.strip().upper())

    def _unit(self, conn: psycopg.Connection, logical_address: str) -> Unit:
        key = logical_address.upper()
        unit = self.units.unit(conn, key)
        if unit is None:
            shown = f" {key}" if is_valid_hsa_id(key) else ""  # anything else might be patient data
            raise client_fault(f"The logical address{shown} is unknown: no such care unit here")
        return unit


def _respond(
    start_response: StartResponse, status: str, content_type: str, body: bytes, extra: list[tuple[str, str]] = ()
) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra])
    return [body]


def _fault(start_response: StartResponse, fault: SoapFault, extra: list[tuple[str, str]] = ()) -> list[bytes]:
    return _respond(start_response, "500 Internal Server Error", CONTENT_TYPE, fault_envelope(fault), extra)
