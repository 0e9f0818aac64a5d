"""Traceability headers (seed 002): X-Request-ID (generated when missing) and X-Context-ID are
echoed on every response and carried by every log line written while the request is handled
(producer.logs.TraceFilter puts them there)."""

from __future__ import annotations

import contextvars
import re
import uuid

REQUEST_ID = "X-Request-ID"
CONTEXT_ID = "X-Context-ID"
_SAFE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
context_id: contextvars.ContextVar[str] = contextvars.ContextVar("context_id", default="-")


def ids_from(environ: dict[str, str]) -> tuple[str, str | None]:
    """The caller's ids when they are sane header values; a new request id otherwise."""
    given = environ.get("HTTP_X_REQUEST_ID", "")
    context = environ.get("HTTP_X_CONTEXT_ID", "")
    return (given if _SAFE.match(given) else str(uuid.uuid4())), (context if _SAFE.match(context) else None)
