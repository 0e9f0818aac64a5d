"""The EP OfferInteraction client: SOAP 1.1 over HTTPS with mutual TLS (the SITHS function certificate),
one keep-alive session per client, every answer parsed hardened and checked against our XSD.

It never raises for what can go wrong on the way: a refused connection, a failed TLS handshake, a
timeout, an HTTP error, a SOAP fault or an unreadable answer are all an Answer "technical", logged in
one line and counted by reason (tidbok_ep_connection_failures_total{reason}), because EP logs none of
them and leaves tracing connection failures to the caller (seed 000, "Loggning").
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from egen_provhantering import metrics
from egen_provhantering.config import ClientConfig
from egen_provhantering.contract import ADD, UNDO, Operation, soap_action
from egen_provhantering.messages import (
    FaultAnswer,
    GivenOffer,
    Result,
    TechnicalError,
    Unparsable,
    ValidationError,
    read_answer,
    request_envelope,
)
from producer.platform import tracing
from producer.sweden.identifiers import mask_personnummer, mask_personnummer_in_text

__all__ = ["Answer", "ClientConfig", "GivenOffer", "OfferClient", "TechnicalError", "ValidationError"]

log = logging.getLogger("tidbok.ep")

Outcome = Literal["given", "already_given", "undone", "nothing_to_undo", "refused", "technical"]
MAX_ANSWER_BYTES = 1_048_576  # an answer is a few hundred bytes; more is not EP answering
DETAIL_LIMIT = 500


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    validation_errors: tuple[ValidationError, ...] = ()
    technical_errors: tuple[TechnicalError, ...] = ()
    detail: str = ""  # one line for logs and staff: EP's texts, or what went wrong on the way


class _Failed(Exception):
    """A call that got no usable answer: `reason` is the counter's label, `detail` the log's words."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class OfferClient:
    """One per process or thread pool: requests' Session is safe for concurrent calls and keeps the
    TLS connections to EP open between them."""

    def __init__(self, config: ClientConfig) -> None:
        if (config.cert_file is None) != (config.key_file is None):
            raise ValueError("the client certificate and its key go together")
        self.config = config
        parts = urlsplit(config.url)
        # the URL as logged: no user info, no query
        self._where = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
        self._session = requests.Session()
        if config.cert_file is not None:
            self._session.cert = (config.cert_file, config.key_file)
        if config.ca_file is not None:
            self._session.verify = config.ca_file
        self._session.trust_env = False  # no proxy or CA bundle from the environment: EP is called directly

    def add(self, offer: GivenOffer, *, request_id: str | None = None) -> Answer:
        """AddGivenOfferByExternalSystem: given, already_given, refused or technical."""
        return self._call(ADD, offer, request_id)

    def undo(self, offer: GivenOffer, *, request_id: str | None = None) -> Answer:
        """UndoGivenOfferByExternalSystem (the latest identical given offer): undone, nothing_to_undo,
        refused or technical."""
        return self._call(UNDO, offer, request_id)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> OfferClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one call -----------------------------------------------------------------------------------

    def _call(self, operation: Operation, offer: GivenOffer, request_id: str | None) -> Answer:
        request_id = request_id or str(uuid.uuid4())
        started = time.monotonic()
        try:
            result = read_answer(operation, self._post(operation, offer, request_id), self.config.namespace)
        except _Failed as failed:
            answer = self._failed(operation, offer, request_id, failed)
        except FaultAnswer as fault:
            answer = self._failed(operation, offer, request_id, _Failed("soap_fault", f"SOAP fault {fault}"))
        except Unparsable as exc:
            answer = self._failed(operation, offer, request_id, _Failed("unparsable", f"unusable answer: {exc}"))
        else:
            answer = _answer(operation, result)
            if answer.outcome in ("technical", "refused"):
                level = logging.WARNING if answer.outcome == "technical" else logging.INFO
                log.log(
                    level, "EP %s %s: %s (%s)", operation.name, answer.outcome, answer.detail, _about(offer, request_id)
                )
        metrics.CALLS.labels(operation.name, answer.outcome).inc()
        metrics.CALL_SECONDS.labels(operation.name).observe(time.monotonic() - started)
        return answer

    def _post(self, operation: Operation, offer: GivenOffer, request_id: str) -> bytes:
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{soap_action(self.config.namespace, operation)}"',
            tracing.REQUEST_ID: request_id,
        }
        context_id = tracing.context_id.get()
        if context_id != "-":
            headers[tracing.CONTEXT_ID] = context_id
        body = request_envelope(operation, offer, self.config.namespace)
        timeout = self.config.timeout
        try:
            with self._session.post(self.config.url, data=body, headers=headers, timeout=timeout, stream=True) as r:
                data = _read_limited(r)
                status, reason = r.status_code, r.reason
                content_type = r.headers.get("Content-Type", "")
        except requests.RequestException as exc:
            raise _Failed(*_why(exc, self._where, timeout)) from None
        if status == 200:
            return data
        if status == 500 and "xml" in content_type:
            return data  # a SOAP fault travels with HTTP 500: read_answer raises FaultAnswer with its text
        raise _Failed("http_status", f"HTTP {status} {reason or ''}".strip() + f" from {self._where}")

    def _failed(self, operation: Operation, offer: GivenOffer, request_id: str, failed: _Failed) -> Answer:
        detail = _line(failed.detail)
        metrics.CONNECTION_FAILURES.labels(failed.reason).inc()
        log.warning("EP %s failed (%s): %s (%s)", operation.name, failed.reason, detail, _about(offer, request_id))
        return Answer("technical", detail=detail)


def _answer(operation: Operation, result: Result) -> Answer:
    """EP's answer as an outcome. A technical error list wins (the call may succeed later), then
    validation errors (it will not, as sent); the lists are read whatever HasError says, since the
    seed also describes answers with "Error = False" carrying them."""
    validation, technical = result.validation_errors, result.technical_errors
    texts = [f"{e.header}: {e.message}" for e in technical] + [f"{e.element}: {e.text}" for e in validation]
    detail = _line("; ".join(texts))
    if technical:
        return Answer("technical", validation, technical, detail)
    if validation:
        return Answer("refused", validation, technical, detail)
    if result.has_error:
        return Answer(
            "technical", detail="EP answered HasError true without a ValidationErrorList or TechnicalErrorList"
        )
    if operation is ADD:
        return Answer("already_given" if result.flag else "given")
    return Answer("undone" if result.flag else "nothing_to_undo")


def _read_limited(response: requests.Response) -> bytes:
    data = bytearray()
    for chunk in response.iter_content(65536):
        data += chunk
        if len(data) > MAX_ANSWER_BYTES:
            raise requests.exceptions.ContentDecodingError(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
    return bytes(data)


def _why(exc: requests.RequestException, where: str, timeout: float) -> tuple[str, str]:
    """The counter's reason and one line for a request that failed on the way."""
    causes = list(_chain(exc))
    tls = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
    if tls is not None or isinstance(exc, requests.exceptions.SSLError):
        return "tls_handshake", f"TLS with {where} failed: {_tls_problem(tls)}"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "connection_refused", f"connection to {where} refused"
    # a read timing out mid-answer comes wrapped; urllib3's NewConnectionError is a ConnectTimeoutError too,
    # hence refused first and only ReadTimeoutError of urllib3's timeouts here
    timeouts = (socket.timeout, urllib3.exceptions.ReadTimeoutError)
    if isinstance(exc, requests.exceptions.Timeout) or any(isinstance(c, timeouts) for c in causes):
        return "timeout", f"no answer from {where} within {timeout:g} s"
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return "unparsable", f"unusable answer from {where}: {exc}"
    last = causes[-1] if causes else exc
    return "connection_error", f"connection to {where} failed: {type(last).__name__}: {last}"


def _tls_problem(error: ssl.SSLError | None) -> str:
    """What failed, with the seed's two handshake causes as hints: EP's certificate not trusted (the
    SITHS root not installed), or our client certificate not sent or not accepted."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"EP's server certificate is not trusted ({error.verify_message}; TIDBOK_EP_CA)"
    name = getattr(error, "reason", None) or type(error).__name__ if error is not None else "SSLError"
    if isinstance(error, ssl.SSLEOFError) or "ALERT" in str(name).upper():
        return f"EP ended the handshake ({name}): is the client certificate sent and accepted? (TIDBOK_EP_CERT)"
    return str(name)


def _chain(exc: BaseException) -> list[BaseException]:
    """Every exception behind `exc`: causes, contexts, urllib3's reasons and the args they wrap."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        if isinstance(current, requests.RequestException | urllib3.exceptions.HTTPError):
            nested += list(current.args)
        todo += [n for n in nested if isinstance(n, BaseException)]
    return seen


def _line(text: str) -> str:
    """One line, no personnummer in clear (EP's texts could quote one), at most DETAIL_LIMIT characters."""
    return mask_personnummer_in_text(" ".join(text.split()))[:DETAIL_LIMIT]


def _about(offer: GivenOffer, request_id: str) -> str:
    return (
        f"request {request_id}, unit offer {offer.unit_offer_id}, unit {offer.access_unit_id},"
        f" resident {mask_personnummer(offer.personal_number)}"
    )
