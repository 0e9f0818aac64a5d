"""`python -m egen_provhantering.stub`: serve the EP stub with granian (see the package docstring)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from egen_provhantering.stub.config import StubConfigError, StubSettings


def main() -> int:
    try:
        settings = StubSettings.from_env(argv=sys.argv[1:])  # fail here, not in the worker, on a bad setting
    except StubConfigError as exc:
        print(f"egen_provhantering.stub: configuration error: {exc}", file=sys.stderr)
        return 2
    from granian import Granian
    from granian.constants import Interfaces, SSLProtocols
    from granian.log import LogLevels

    from producer.http.serving import port_problem
    from producer.platform import logs, settings_source

    source = settings_source.load()
    log_format = source.get("TIDBOK_LOG_FORMAT") if source.get("TIDBOK_LOG_FORMAT") in ("text", "json") else "text"
    level = source.get("TIDBOK_LOG_LEVEL") if source.get("TIDBOK_LOG_LEVEL") in logs.LEVELS else "INFO"
    logs.configure(level or "INFO", log_format or "text", root=True)
    log = logging.getLogger("tidbok.ep_stub")

    problem = port_problem(settings.host, settings.port)  # granian would share a port in use (SO_REUSEPORT)
    if problem is not None:
        print(f"egen_provhantering.stub: configuration error: {problem} (--port)", file=sys.stderr)
        return 2
    os.environ.update(settings.as_env())  # the worker reads its settings from the environment
    tls: dict[str, object] = {}
    if settings.tls_cert is not None:
        tls = {"ssl_cert": settings.tls_cert, "ssl_key": settings.tls_key, "ssl_protocol_min": SSLProtocols.tls12}
        if settings.client_ca is not None:
            tls |= {"ssl_ca": settings.client_ca, "ssl_client_verify": True}
    log.info(
        "EP stub on %s://%s:%s%s%s, control at /_stub/control",
        settings.scheme,
        settings.host,
        settings.port,
        "/OfferExternalService/OfferInteraction.svc",
        " (client certificates required)" if settings.client_ca else "",
    )
    with contextlib.suppress(KeyboardInterrupt):
        Granian(
            "egen_provhantering.stub.app:create_app",
            address=settings.host,
            port=settings.port,
            interface=Interfaces.WSGI,
            workers=1,  # the service's state lives in this one process's memory
            blocking_threads=4,  # a "slow" call must not block /_stub/control or /health
            factory=True,
            log_level=LogLevels.warning,
            log_dictconfig=logs.server_config(log_format or "text", {"_granian": {}, "granian": {}}),
            **tls,  # type: ignore[arg-type]
        ).serve()
    return 0


sys.exit(main())
