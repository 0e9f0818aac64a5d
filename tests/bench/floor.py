"""The "floor": the same WSGI server answering a fixed, pre-written response, whatever was asked.

The producer's figures divided by the floor's show what our work costs over HTTP and the server.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def create_app() -> Callable[..., Iterable[bytes]]:
    body = Path(os.environ["TIDBOK_FLOOR_BODY"]).read_bytes()
    headers = [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(body)))]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", headers)
        return [body]

    return app


def serve() -> None:
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        "tests.bench.floor:create_app",
        address="127.0.0.1",
        port=int(os.environ["TIDBOK_PORT"]),
        interface=Interfaces.WSGI,
        workers=int(os.environ.get("TIDBOK_WORKERS", "2")),
        blocking_threads=8,
        factory=True,
    ).serve()


if __name__ == "__main__":
    serve()
