"""Serving a testers' stub (EI's, EP's) with granian, logging as tidbok does. May import: granian,
producer.http.serving, producer.platform.

A stub's `python -m` checks its own settings first (so a bad one fails there, not in the worker),
then calls these; what differs between stubs (settings, start line) stays with each stub.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

from granian import Granian
from granian.constants import Interfaces, SSLProtocols
from granian.log import LogLevels

from producer.http.serving import port_problem
from producer.platform import logs, settings_source


def configure_logging(logger: str) -> tuple[logging.Logger, str]:
    """The producer's log format and level ([logging], TIDBOK_LOG_*), so that under `tidbok run` every
    line is alike; a value the producer would refuse falls back to its default (a stub starts anyway).
    Returns the stub's logger and the format, for granian's own lines."""
    source = settings_source.load()
    log_format = source.get("TIDBOK_LOG_FORMAT") if source.get("TIDBOK_LOG_FORMAT") in ("text", "json") else "text"
    level = source.get("TIDBOK_LOG_LEVEL") if source.get("TIDBOK_LOG_LEVEL") in logs.LEVELS else "INFO"
    logs.configure(level or "INFO", log_format or "text", root=True)
    return logging.getLogger(logger), log_format or "text"


def port_refused(program: str, host: str, port: int, setting: str) -> bool:
    """Whether the port is unusable, said on stderr: granian would share a port in use (SO_REUSEPORT)."""
    problem = port_problem(host, port)
    if problem is None:
        return False
    print(f"{program}: configuration error: {problem} ({setting})", file=sys.stderr)
    return True


def serve(
    factory: str,
    host: str,
    port: int,
    log_format: str,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    client_ca: Path | None = None,
) -> None:
    """Serve the WSGI app `factory` ("module:function") until Ctrl-C or SIGTERM; over TLS with a
    certificate, and requiring client certificates from `client_ca` when given."""
    tls: dict[str, object] = {}
    if tls_cert is not None:
        tls = {"ssl_cert": tls_cert, "ssl_key": tls_key, "ssl_protocol_min": SSLProtocols.tls12}
        if client_ca is not None:
            tls |= {"ssl_ca": client_ca, "ssl_client_verify": True}
    with contextlib.suppress(KeyboardInterrupt):
        Granian(
            factory,
            address=host,
            port=port,
            interface=Interfaces.WSGI,
            workers=1,  # the stub's state lives in this one process's memory
            blocking_threads=4,  # a "slow" call must not block /_stub/control or /health
            factory=True,
            # granian's own start lines at WARNING: the stub's start line says where it listens
            log_level=LogLevels.warning,
            log_dictconfig=logs.server_config(log_format, {"_granian": {}, "granian": {}}),
            **tls,  # type: ignore[arg-type]
        ).serve()
