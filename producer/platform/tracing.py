"""The trace ids every log line carries, in one place: X-Request-ID (generated when missing) and
X-Context-ID of a SOAP or admin API call, echoed on its responses; the platform's x-skltp-correlation-id and the
calling consumer of a SOAP call. producer.platform.logs.TraceFilter puts them on every record."""

from __future__ import annotations

import contextvars
import re
import uuid

REQUEST_ID = "X-Request-ID"
CONTEXT_ID = "X-Context-ID"
_SAFE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # a header value safe to put in logs

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
context_id: contextvars.ContextVar[str] = contextvars.ContextVar("context_id", default="-")
correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="-")
consumer: contextvars.ContextVar[str] = contextvars.ContextVar("consumer", default="-")


def safe(value: str) -> str | None:
    """The caller's id when it is a sane header value (safe to log), else None."""
    return value if _SAFE.match(value) else None


def echo(request_id: str, context_id: str | None) -> list[tuple[str, str]]:
    """The response headers that give the caller its ids back (seed 002: GK1, GK2)."""
    return [(REQUEST_ID, request_id)] + ([(CONTEXT_ID, context_id)] if context_id else [])


def ids_from(environ: dict[str, str]) -> tuple[str, str | None]:
    """The caller's request and context ids when they are sane header values; a new request id otherwise."""
    return safe(environ.get("HTTP_X_REQUEST_ID", "")) or str(uuid.uuid4()), safe(environ.get("HTTP_X_CONTEXT_ID", ""))
