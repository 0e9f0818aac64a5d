"""Traceability headers (seed 002): X-Request-ID (generated when missing) and X-Context-ID are
echoed on every response and carried by every log line written while the request is handled."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

REQUEST_ID = "X-Request-ID"
CONTEXT_ID = "X-Context-ID"
_SAFE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [request %(request_id)s context %(context_id)s] %(message)s"

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
context_id: contextvars.ContextVar[str] = contextvars.ContextVar("context_id", default="-")


def ids_from(environ: dict[str, str]) -> tuple[str, str | None]:
    """The caller's ids when they are sane header values; a new request id otherwise."""
    given = environ.get("HTTP_X_REQUEST_ID", "")
    context = environ.get("HTTP_X_CONTEXT_ID", "")
    return (given if _SAFE.match(given) else str(uuid.uuid4())), (context if _SAFE.match(context) else None)


class TraceFilter(logging.Filter):
    """Adds request_id and context_id to every record, for log formats that show them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.context_id = context_id.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    """The `tidbok` loggers write one line per record with the request's ids, whatever the server
    did to the root logger (granian configures its own)."""
    logger = logging.getLogger("tidbok")
    if any(isinstance(f, TraceFilter) for h in logger.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.addFilter(TraceFilter())
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [request %(request_id)s context %(context_id)s] %(message)s"
        )
    )
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
