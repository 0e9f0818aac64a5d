"""A TCP proxy in front of PostgreSQL that a test can cut and restore, and that can cut one connection
at a chosen statement of a transaction: the database failing as the producer sees it, without
stopping the PostgreSQL server the rest of the session shares.

    proxy = TcpProxy(upstream_of(url))          # (host, port), or a unix socket (embedded PostgreSQL)
    producer_url = proxied_url(url, proxy.port)
    proxy.cut("refuse")      # live connections closed, new ones refused (the server is down)
    proxy.cut("blackhole")   # live connections closed, new ones accepted but never answered
    proxy.cut("stall")       # live connections freeze mid-stream, new ones accepted and never answered
    proxy.restore()          # forwarding again; connections silenced meanwhile are closed
    cut = proxy.cut_transaction(at=3)   # the next transaction's 3rd statement never reaches the server

Only the client's direction is parsed (PostgreSQL's frontend messages), to count statements;
``proxied_url`` turns TLS and GSS encryption off so the proxy can read them.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict

Upstream = tuple[str, int] | str  # (host, port) over TCP, or the path of a unix socket
Mode = Literal["forward", "refuse", "blackhole", "stall"]

_TICK = 0.02  # how often idle threads look at the proxy's state
_UNTYPED = {80877102, 80877103, 80877104, 196608}  # CancelRequest, SSLRequest, GSSENCRequest, StartupMessage v3


def upstream_of(url: str) -> Upstream:
    """Where a libpq URL points: (host, port), or the unix socket file of ``?host=/dir``."""
    params = conninfo_to_dict(url)
    host = str(params.get("host") or "")
    port = int(params.get("port") or 5432)
    if "," in host:
        raise ValueError(f"one host expected, got {host!r}")
    if host.startswith("/"):
        return f"{host}/.s.PGSQL.{port}"
    if not host:
        raise ValueError("the URL names no host; give host=... (a directory for a unix socket)")
    return (host, port)


def proxied_url(url: str, port: int) -> str:
    """The same user, password, database and options, reached at 127.0.0.1:port in plain text."""
    parts = urlsplit(url)
    userinfo, _, _ = parts.netloc.rpartition("@")
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "hostaddr", "port", "sslmode")]
    query += [("sslmode", "disable"), ("gssencmode", "disable")]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))


@dataclass
class TransactionCut:
    """Cut the first connection that opens a transaction (BEGIN) at a statement after the BEGIN: the
    ``at``-th (COMMIT counts as one), or the first that starts with ``at`` (e.g. "COMMIT").
    ``deliver``: the statement reaches the server before the connection is closed, so a COMMIT
    commits and only its answer is lost.

    ``statements`` holds the SQL of that transaction up to the cut (or its end); ``fired`` is set
    when the cut was made (a transaction with fewer statements runs to its end)."""

    at: int | str
    deliver: bool = False
    statements: list[str] = field(default_factory=list)
    fired: threading.Event = field(default_factory=threading.Event)


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: TcpProxy, client: socket.socket, upstream: socket.socket | None) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream  # None: accepted while silent, never connected anywhere
        self.stalled = upstream is None
        self.closed = threading.Event()
        self._buffer = bytearray()
        self._started = False  # past the StartupMessage: messages are typed from here on
        self._prepared: dict[bytes, str] = {}
        self._in_transaction = False
        self._cut: TransactionCut | None = None
        self._delivering = False

    def start(self) -> None:
        if self.upstream is None:
            return
        for src, dst, parse in ((self.client, self.upstream, True), (self.upstream, self.client, False)):
            threading.Thread(target=self._pump, args=(src, dst, parse), daemon=True, name="tcp-proxy-pump").start()

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        self.proxy._forget(self)

    def _pump(self, src: socket.socket, dst: socket.socket, parse: bool) -> None:
        try:
            while not self.closed.is_set():
                if self.stalled:  # frozen: what is sent stays unread in the kernel
                    time.sleep(_TICK)
                    continue
                if not select.select([src], [], [], _TICK)[0] or self.stalled:
                    continue
                data = src.recv(65536)
                if not data:
                    break
                if not parse:
                    dst.sendall(data)
                    continue
                forward, cut = self._parse(data)
                if forward:
                    dst.sendall(forward)
                if cut:
                    break
        except OSError:
            pass
        self.close()

    # -- the frontend protocol --------------------------------------------------------------------

    def _parse(self, data: bytes) -> tuple[bytes, bool]:
        """The complete messages in the buffer that may go on, and whether to cut after them."""
        self._buffer += data
        forward = bytearray()
        while True:
            if not self._started:
                if len(self._buffer) < 8:
                    break
                length, code = struct.unpack("!ii", self._buffer[:8])
                if code not in _UNTYPED:
                    raise OSError(f"unexpected untyped message code {code}")
                self._started = code == 196608
                kind, size = b"", length
            else:
                if len(self._buffer) < 5:
                    break
                kind, size = bytes(self._buffer[:1]), 1 + struct.unpack("!i", self._buffer[1:5])[0]
            if len(self._buffer) < size:
                break
            message = bytes(self._buffer[:size])
            del self._buffer[:size]
            if self._delivering:  # the statement cut at goes on up to its Sync, so the server runs it
                forward += message
                if kind == b"S":
                    return bytes(forward), True
                continue
            fired = self._statement_cut(kind, message)
            if fired is None:
                forward += message
            elif not fired.deliver:
                return bytes(forward), True
            else:
                forward += message
                if kind == b"Q":
                    return bytes(forward), True
                self._delivering = True
        return bytes(forward), False

    def _statement_cut(self, kind: bytes, message: bytes) -> TransactionCut | None:
        """Track transactions and statements; the armed cut when this message is where it falls."""
        sql = self._sql(kind, message)
        if sql is None:
            return None
        verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if not self._in_transaction:
            if verb in ("BEGIN", "START"):
                self._in_transaction = True
                self._cut = self.proxy._claim()
            return None
        cut = self._cut
        if verb in ("COMMIT", "ROLLBACK", "END", "ABORT"):
            self._in_transaction = False
            self._cut = None
        if cut is None:
            return None
        cut.statements.append(sql)
        if isinstance(cut.at, int):
            hit = len(cut.statements) == cut.at
        else:
            hit = sql.lstrip().upper().startswith(cut.at.upper())
        if hit:
            cut.fired.set()
            return cut
        return None

    def _sql(self, kind: bytes, message: bytes) -> str | None:
        """The SQL a message runs: a simple Query, or a Bind of a statement Parse named earlier."""
        if kind == b"Q":
            return message[5:].split(b"\0", 1)[0].decode(errors="replace")
        if kind == b"P":
            name, rest = message[5:].split(b"\0", 1)
            self._prepared[name] = rest.split(b"\0", 1)[0].decode(errors="replace")
            return None
        if kind == b"B":
            _portal, rest = message[5:].split(b"\0", 1)
            return self._prepared.get(rest.split(b"\0", 1)[0], "?")
        return None


class TcpProxy:
    """127.0.0.1:<port> → the upstream. Threads are daemons; ``close()`` (or the ``with`` block) ends it."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.mode: Mode = "forward"
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._cuts: list[TransactionCut] = []
        self._stopped = threading.Event()
        self._listener: socket.socket | None = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name="tcp-proxy-accept")
        self._thread.start()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what tests call ---------------------------------------------------------------------------

    def cut(self, mode: Literal["refuse", "blackhole", "stall"]) -> None:
        """The database goes away. ``refuse``: live connections are closed and new ones refused (the
        port is closed). ``blackhole``: live connections are closed, new ones are accepted and never
        answered. ``stall``: live connections freeze where they are, new ones are accepted and never
        answered (a hung server, or a network that drops everything)."""
        with self._lock:
            self.mode = mode
            links = list(self._links)
            if mode == "refuse" and self._listener is not None:
                self._listener.close()
                self._listener = None
        for link in links:
            if mode == "stall":
                link.stalled = True
            else:
                link.close()

    def restore(self) -> None:
        """Forwarding again (the database is back); connections silenced meanwhile are closed, as a
        restarted server would have forgotten them."""
        with self._lock:
            silenced = [link for link in self._links if link.stalled]
            if self._listener is None:
                self._listener = self._listen(self.port)
            self.mode = "forward"
        for link in silenced:
            link.close()

    def cut_transaction(self, at: int | str, deliver: bool = False) -> TransactionCut:
        """Arm a cut for the next transaction any connection opens (see :class:`TransactionCut`)."""
        cut = TransactionCut(at, deliver)
        with self._lock:
            self._cuts.append(cut)
        return cut

    def disarm(self) -> None:
        with self._lock:
            self._cuts.clear()

    def connections(self) -> int:
        with self._lock:
            return len(self._links)

    def close(self) -> None:
        self._stopped.set()
        with self._lock:
            links = list(self._links)
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        for link in links:
            link.close()
        self._thread.join(5)

    # -- inside ----------------------------------------------------------------------------------

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        return listener

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self.upstream, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(self.upstream)
        else:
            sock = socket.create_connection(self.upstream, timeout=5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        return sock

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:
                time.sleep(_TICK)
                continue
            try:
                if not select.select([listener], [], [], _TICK)[0]:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):  # closed under us by cut("refuse") or close()
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._serve(client)

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            mode = self.mode
        if mode == "refuse":
            client.close()
            return
        upstream = None
        if mode == "forward":
            try:
                upstream = self._connect_upstream()
            except OSError:
                client.close()
                return
        link = _Link(self, client, upstream)  # blackhole/stall: held open, never read, never answered
        with self._lock:
            current = self.mode
            if current == mode:
                self._links.add(link)
        if current != mode:  # cut (or restored) while this connection was being set up: start over
            for sock in (client, upstream):
                if sock is not None:
                    sock.close()
            return
        link.start()

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def _claim(self) -> TransactionCut | None:
        """The armed cut (oldest first) for a transaction a connection just opened, if any."""
        with self._lock:
            if not self._cuts:
                return None
            return self._cuts.pop(0)


@contextlib.contextmanager
def proxy_to(url: str) -> Iterator[TcpProxy]:
    """A proxy to the server of ``url`` for the block."""
    with TcpProxy(upstream_of(url)) as proxy:
        yield proxy
