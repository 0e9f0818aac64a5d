"""A null EI endpoint for the drain benchmark: answers every POST with one fixed, schema-valid
UpdateResponse (ResultCode OK) without parsing the request, so the publisher's own ceiling can be
measured apart from the EI stub's parsing, validation and storage.

HTTP/1.1 with keep-alive, a thread per connection (one per publisher thread). The body is read
whole (Content-Length or chunked) and discarded after counting its engagementTransaction end
tags, which `GET /count` returns, so the benchmark can check that every engagement arrived.
`python -m tests.bench.null_ei` serves on 127.0.0.1:$TIDBOK_PORT.
"""

from __future__ import annotations

import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESPONSE = (
    b"<?xml version='1.0' encoding='utf-8'?>\n"
    b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    b'<UpdateResponse xmlns="urn:riv:itintegration:engagementindex:UpdateResponder:1">'
    b"<ResultCode>OK</ResultCode></UpdateResponse></soap:Body></soap:Envelope>"
)
_END_TAG = re.compile(rb"</(?:[\w.-]+:)?engagementTransaction\s*>")


class Counter:
    def __init__(self) -> None:
        self.calls = 0
        self.engagements = 0
        self._lock = threading.Lock()

    def add(self, engagements: int) -> None:
        with self._lock:
            self.calls += 1
            self.engagements += engagements


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the client says close
    disable_nagle_algorithm = True  # the headers and the body go out in two writes
    counter = Counter()

    def do_POST(self) -> None:
        body = self._body()
        self.counter.add(len(_END_TAG.findall(body)))
        self._send(200, "text/xml; charset=utf-8", RESPONSE)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, "text/plain; charset=utf-8", b"ok\n")
        elif self.path == "/count":
            text = f'{{"calls": {self.counter.calls}, "engagements": {self.counter.engagements}}}'
            self._send(200, "application/json", text.encode())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # one line per call would cost more than the answer


def serve() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["TIDBOK_PORT"])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    serve()
