"""`python -m engagement_index.stub`: serve the EI stub with granian (see the package docstring)."""

from __future__ import annotations

import sys

from engagement_index.stub.config import StubConfigError, StubSettings


def main() -> int:
    try:
        settings = StubSettings.from_env()  # fail here, not in the worker, on a bad setting
    except StubConfigError as exc:
        print(f"engagement_index.stub: configuration error: {exc}", file=sys.stderr)
        return 2
    from producer.http import stub_serving

    log, log_format = stub_serving.configure_logging("tidbok.ei_stub")
    if stub_serving.port_refused("engagement_index.stub", settings.host, settings.port, "TIDBOK_EI_STUB_PORT"):
        return 2
    log.info(
        "EI stub (HSA-id %s) on http://%s:%s/{Update,FindContent}/1/rivtabp21, control at /_stub/control",
        settings.hsa_id,
        settings.host,
        settings.port,
    )
    stub_serving.serve("engagement_index.stub.app:create_app", settings.host, settings.port, log_format)
    return 0


sys.exit(main())
