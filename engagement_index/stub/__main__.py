"""`python -m engagement_index.stub`: serve the EI stub with granian (see the package docstring)."""

from __future__ import annotations

import contextlib
import logging
import sys

from engagement_index.stub.config import StubConfigError, StubSettings


def main() -> int:
    try:
        settings = StubSettings.from_env()  # fail here, not in the worker, on a bad setting
    except StubConfigError as exc:
        print(f"engagement_index.stub: configuration error: {exc}", file=sys.stderr)
        return 2
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    from producer.http.serving import port_problem
    from producer.platform import logs, settings_source

    # the producer's log format and level ([logging], TIDBOK_LOG_*): under `tidbok run` every line is alike
    source = settings_source.load()
    log_format = source.get("TIDBOK_LOG_FORMAT") if source.get("TIDBOK_LOG_FORMAT") in ("text", "json") else "text"
    level = source.get("TIDBOK_LOG_LEVEL") if source.get("TIDBOK_LOG_LEVEL") in logs.LEVELS else "INFO"
    logs.configure(level or "INFO", log_format or "text", root=True)
    log = logging.getLogger("tidbok.ei_stub")

    problem = port_problem(settings.host, settings.port)  # granian would share a port in use (SO_REUSEPORT)
    if problem is not None:
        print(f"engagement_index.stub: configuration error: {problem} (TIDBOK_EI_STUB_PORT)", file=sys.stderr)
        return 2

    log.info(
        "EI stub (HSA-id %s) on http://%s:%s/{Update,FindContent}/1/rivtabp21, control at /_stub/control",
        settings.hsa_id,
        settings.host,
        settings.port,
    )
    with contextlib.suppress(KeyboardInterrupt):
        Granian(
            "engagement_index.stub.app:create_app",
            address=settings.host,
            port=settings.port,
            interface=Interfaces.WSGI,
            workers=1,  # the index lives in this one process's memory
            blocking_threads=4,  # a "slow" call must not block /_stub/control or /health
            factory=True,
            # granian's own start lines at WARNING: the stub's line above says where it listens
            log_level=LogLevels.warning,
            log_dictconfig=logs.server_config(log_format or "text", {"_granian": {}, "granian": {}}),
        ).serve()
    return 0


sys.exit(main())
