"""The "floor": the same server answering a fixed, pre-written response, whatever was asked.

The producer's figures divided by the floor's show what our work costs over HTTP and the server.
Two floors: the production server's own path (granian's RSGI interface through the body-first
adapter, answered on the event loop as a call answered from memory is: `python -m tests.bench.floor`)
and, for comparison with earlier figures, granian's WSGI interface with 8 threads, which reads no
body first (TIDBOK_FLOOR_INTERFACE=wsgi).

TIDBOK_FLOOR_PIPELINE=1 adds the work no SOAP producer can skip to the first: each request parsed
(hardened), its root checked, validated against the contract's schemas and decoded by tidbok's own
pipeline before the pre-written response goes. It shows how much of the distance to the floor is
the SOAP request itself, and how much is answering it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from producer.http.body_first import BodyFirst


def create_app() -> Callable[..., Iterable[bytes]]:
    body = Path(os.environ["TIDBOK_FLOOR_BODY"]).read_bytes()
    headers = [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(body)))]
    read = _pipeline() if os.environ.get("TIDBOK_FLOOR_PIPELINE") == "1" else None

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = environ["wsgi.input"].read()
        if read is not None:
            read(request)
        start_response("200 OK", headers)
        return [body]

    return app


def _pipeline() -> Callable[[bytes], object]:
    """Parse, check, validate and decode a GetAvailableTimeslots request as the producer does."""
    from producer.soap.contract import load_contract
    from producer.soap.pipeline import Pipeline

    contract = load_contract()
    pipeline = Pipeline(contract.interactions, contract.actor_validator)
    interaction = contract.interactions["GetAvailableTimeslots"]
    return lambda request: pipeline.read(interaction, request)


@dataclass(frozen=True)
class _Rules:
    body_limit: int = 1_048_576
    body_timeout: float = 10.0
    waits_for_database: bool = False  # on the event loop, as a call answered from memory
    quick: bool = False


def create_rsgi_app() -> BodyFirst:
    rules = _Rules()
    return BodyFirst(create_app(), 2, lambda method, path: rules, lambda message: ("text/plain", b""), "floor.route")


def serve() -> None:
    from granian import Granian
    from granian.constants import Interfaces

    wsgi = os.environ.get("TIDBOK_FLOOR_INTERFACE") == "wsgi"
    Granian(
        "tests.bench.floor:create_app" if wsgi else "tests.bench.floor:create_rsgi_app",
        address="127.0.0.1",
        port=int(os.environ["TIDBOK_PORT"]),
        interface=Interfaces.WSGI if wsgi else Interfaces.RSGI,
        workers=int(os.environ.get("TIDBOK_WORKERS", "2")),
        blocking_threads=8 if wsgi else None,
        factory=True,
    ).serve()


if __name__ == "__main__":
    serve()
