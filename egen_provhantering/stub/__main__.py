"""`python -m egen_provhantering.stub`: serve the EP stub with granian (see the package docstring)."""

from __future__ import annotations

import os
import sys

from egen_provhantering.stub.config import StubConfigError, StubSettings


def main() -> int:
    try:
        settings = StubSettings.from_env(argv=sys.argv[1:])  # fail here, not in the worker, on a bad setting
    except StubConfigError as exc:
        print(f"egen_provhantering.stub: configuration error: {exc}", file=sys.stderr)
        return 2
    from producer.http import stub_serving

    log, log_format = stub_serving.configure_logging("tidbok.ep_stub")
    if stub_serving.port_refused("egen_provhantering.stub", settings.host, settings.port, "--port"):
        return 2
    os.environ.update(settings.as_env())  # the worker reads its settings from the environment
    log.info(
        "EP stub on %s://%s:%s%s%s, control at /_stub/control",
        settings.scheme,
        settings.host,
        settings.port,
        "/OfferExternalService/OfferInteraction.svc",
        " (client certificates required)" if settings.client_ca else "",
    )
    stub_serving.serve(
        "egen_provhantering.stub.app:create_app",
        settings.host,
        settings.port,
        log_format,
        tls_cert=settings.tls_cert,
        tls_key=settings.tls_key,
        client_ca=settings.client_ca,
    )
    return 0


sys.exit(main())
