"""`python -m engagement_index.stub`: serve the EI stub with granian (see the package docstring)."""

from __future__ import annotations

import contextlib
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

    from producer.http.serving import port_problem

    problem = port_problem(settings.host, settings.port)  # granian would share a port in use (SO_REUSEPORT)
    if problem is not None:
        print(f"engagement_index.stub: configuration error: {problem} (TIDBOK_EI_STUB_PORT)", file=sys.stderr)
        return 2

    print(
        f"EI stub (HSA-id {settings.hsa_id}) on http://{settings.host}:{settings.port}/"
        "{Update,FindContent}/1/rivtabp21, control at /_stub/control",
        file=sys.stderr,
        flush=True,
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
        ).serve()
    return 0


sys.exit(main())
