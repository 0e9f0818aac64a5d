"""Serve the WSGI Producer through granian's RSGI interface, reading each request body on the event
loop before the application runs.

granian's WSGI interface gives a request one of the worker's threads as soon as its headers are in;
wsgi.input.read() then blocks that thread until the body is complete, with no timeout, so a few
clients that stall or dribble their bodies (slowloris) stop the worker. Here a body costs only a
coroutine while it arrives, must arrive within TIDBOK_BODY_TIMEOUT, and is read only up to the
limit the application enforces; then the unchanged WSGI application runs with the body in a BytesIO.

Where it runs: what never waits for the database (/health, the WSDLs and XSDs, and an availability
call the worker answers from its memory of free slots) runs on the event loop itself; every other
call (all POSTs) and /ready, /metrics and /admin run in a pool of TIDBOK_DB_POOL_SIZE threads, so a
call waiting on a row lock or a silent database never holds the loop, and /health answers while the
database is down. Running the queries on the loop instead was measured: no faster within the noise
of a 2-core machine, and one stalled call held the worker.

The price of reading bodies first, against granian's WSGI threads, is roughly 10-20 % more CPU
per call (README, Benchmark).

The adapter knows nothing of SOAP or /admin: the application's router tells it, per request, the
body limit and timeout and whether the request may wait for the database (producer.http.app.Route),
and words the refusal of a body that does not arrive. It passes the router's answer on in the environ.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol
from urllib.parse import unquote

_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyRules(Protocol):
    """What the application's router says of a request before its body is read."""

    body_limit: int
    body_timeout: float
    waits_for_database: bool
    quick: bool  # try `quick` on the loop first: it answers, or says the request needs a thread


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Answer = tuple[int, list[tuple[str, str]], bytes]


class BodyFirst:
    def __init__(
        self,
        app: WsgiApp,
        threads: int,
        route: Callable[[str, str], BodyRules],
        refusal: Callable[[str], tuple[str, bytes]],
        route_key: str,
        quick: Callable[[dict[str, Any]], Answer | None] | None = None,
    ) -> None:
        """app: the WSGI application; threads: how many calls may run at once (the pool's size);
        route(method, path): the router's rules for a request, handed on in environ[route_key];
        refusal(message): (content type, body) of the answer to a body that did not arrive;
        quick(environ): the answer if the application can give it without waiting (from memory),
        else None, and the request runs in a thread."""
        self.app = app
        self.quick = quick
        self.route = route
        self.refusal = refusal
        self.route_key = route_key
        self.threads = ThreadPoolExecutor(threads, thread_name_prefix="tidbok-wsgi")

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        path = unquote(scope.path)  # as the WSGI application sees it (PATH_INFO)
        rules = self.route(scope.method, path)
        body = b""
        if scope.method not in _NO_BODY:
            timeout = rules.body_timeout
            try:
                async with asyncio.timeout(timeout):
                    body = await _read(protocol, rules.body_limit, scope.headers.get("content-length"))
            except TimeoutError:
                return self._refuse(protocol, f"The request body did not arrive within {timeout:g} seconds")
            except (RuntimeError, OSError):  # granian's RSGIProtocolClosed: the client went away mid-body
                return self._refuse(protocol, "The request body ended before the length its Content-Length announced")
        environ = _environ(scope, path, body)
        environ[self.route_key] = rules
        answer = self.quick(environ) if rules.quick and self.quick is not None else None
        if answer is not None:
            status, headers, payload = answer
        elif not rules.waits_for_database:  # only what never waits for the database runs on the loop
            status, headers, payload = self._call(environ)
        else:
            status, headers, payload = await asyncio.get_running_loop().run_in_executor(
                self.threads, self._call, environ
            )
        protocol.response_bytes(status, headers, payload)

    def _call(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        started: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            started["status"], started["headers"] = int(status.split(" ", 1)[0]), headers

        chunks = self.app(environ, start_response)
        try:
            payload = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return started["status"], [(name.lower(), value) for name, value in started["headers"]], payload

    def _refuse(self, protocol: Any, message: str) -> None:
        """A fault, and Connection: close, so the client cannot go on holding the connection."""
        content_type, payload = self.refusal(message)
        protocol.response_bytes(500, [("content-type", content_type), ("connection", "close")], payload)


async def _read(protocol: Any, limit: int, length: str | None) -> bytes:
    """The body, or its first limit + 1 bytes (the application then refuses it as too large)."""
    if length is not None and length.isdigit() and int(length) <= limit:
        return await protocol()  # announced and allowed: in one piece
    body = bytearray()
    async for chunk in protocol:
        body += chunk
        if len(body) > limit:
            break
    return bytes(body)


def _environ(scope: Any, path: str, body: bytes) -> dict[str, Any]:
    """The environ granian's WSGI interface builds (PATH_INFO percent-decoded as UTF-8, REMOTE_ADDR the
    bare address), with the body already read."""
    server_host, _, server_port = scope.server.rpartition(":")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": scope.query_string,
        "SERVER_NAME": server_host.strip("[]"),
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
        "REMOTE_ADDR": scope.client.rpartition(":")[0].strip("[]"),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in scope.headers.items():
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = f"HTTP_{key}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ
