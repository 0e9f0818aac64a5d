"""Databases and producer processes for the end-to-end tests, plus raw-HTTP helpers.

The producer is exercised as a real subprocess (``python -m producer serve``, granian) so tests see
exactly what a consumer or the VP would: the HTTP status, headers and bytes on the wire.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row, tuple_row

from producer.platform.change_tokens import ChangeTokens, create_file
from support.processes import stop_group

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable  # the interpreter running pytest, i.e. the project's virtualenv
DATABASE_PREFIX = "tidbok_test_"
STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0

_DB_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


# -- databases -----------------------------------------------------------------------------------


def database_url(url: str, name: str) -> str:
    """The same server URL pointing at another database; the query (e.g. ``?host=/tmp/...``) is kept."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"expected a postgresql:// URL, got {parts.scheme or url!r}")
    return urlunsplit(parts._replace(path="/" + name))


def fresh_database(admin_url: str, name: str) -> str:
    """Drop and recreate ``name`` (so every session starts from an empty database); returns its URL."""
    if not _DB_NAME.match(name) or not name.startswith(DATABASE_PREFIX):
        raise ValueError(f"test databases are named {DATABASE_PREFIX}<lower-case word>, got {name!r}")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        # FORCE: a server left over from an interrupted run may still hold connections.
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(admin_url, name)


# Tests write the calendar behind the producers' backs, in SQL. A producer's workers hear of such a
# change by a notice (producer.platform.slot_listener), within milliseconds; a test asks at once. So
# each producer started here shares its change-token file with the harness, and a write through a
# connection from connect() renews the tokens of every producer on that database once it is
# committed: what any writer on the producer's host that knows it changed slots may do.
_TOKEN_FILES: dict[str, list[Path]] = {}  # by database name


def slots_may_have_changed(database: str) -> None:
    """Renew the change tokens of the producers serving `database` (their memories of free slots
    read the database again)."""
    for path in _TOKEN_FILES.get(database, []):
        if path.exists():
            ChangeTokens(str(path)).everything_changed()


_WRITE = re.compile(r"\b(insert|update|delete|truncate|merge|call)\b", re.I)


class HarnessConnection(psycopg.Connection):
    """A connection whose committed writes renew the producers' change tokens (see above)."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        cursor = super().execute(query, params, **kwargs)
        if self.autocommit and not self._in_transaction and _WRITE.search(_text(query, self)):
            slots_may_have_changed(self.info.dbname)
        return cursor

    @contextmanager
    def transaction(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        self._in_transaction = True
        try:
            with super().transaction(*args, **kwargs) as tx:
                yield tx
        finally:
            self._in_transaction = False
            slots_may_have_changed(self.info.dbname)

    def commit(self) -> None:
        super().commit()
        slots_may_have_changed(self.info.dbname)

    _in_transaction = False


def _text(query: Any, conn: psycopg.Connection) -> str:
    if isinstance(query, str):
        return query
    if isinstance(query, bytes):
        return query.decode(errors="replace")
    return query.as_string(conn)


def connect(url: str, *, dict_rows: bool = False, utc: bool = False) -> psycopg.Connection:
    """An autocommit connection, so every read is fresh: for setting up and judging what a producer stored.
    What it writes is seen by the producers' memories of free slots at once (HarnessConnection).

    ``dict_rows`` gives rows as dicts; ``utc`` makes UTC the session's time zone."""
    return HarnessConnection.connect(
        url,
        autocommit=True,
        row_factory=dict_row if dict_rows else tuple_row,
        **({"options": "-c TimeZone=UTC"} if utc else {}),
    )


def booking_ids_by_kind(conn: psycopg.Connection, resident: str) -> dict[str, str]:
    """A resident's booking ids by kind: for the demo resident's, looked up rather than assumed to be B1/K2/K3."""
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute("SELECT kind, booking_id FROM booking WHERE subject_of_care = %s", (resident,))
        return dict(rows.fetchall())


# -- processes -----------------------------------------------------------------------------------


def subprocess_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """Our environment minus any TIDBOK_* settings of the developer's shell, plus the overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDBOK_")}
    env.update(overrides)
    return env


def run_cli(
    args: list[str], env: Mapping[str, str], timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``python -m producer <args>``; fails the test with the command's output if it does not succeed
    (``check=False``: returns whatever it did, for tests of refusals and exit codes)."""
    command = [PYTHON, "-m", "producer", *args]
    try:
        result = subprocess.run(
            command, cwd=REPO, env=subprocess_env(env), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"python {' '.join(command[1:])} timed out after {timeout}s\nstdout:\n{exc.stdout}\nstderr:\n{exc.stderr}",
            pytrace=False,
        )
    if check and result.returncode != 0:
        pytest.fail(
            f"python {' '.join(command[1:])} exited with {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}",
            pytrace=False,
        )
    return result


def free_port() -> int:
    """A port the kernel just considered free (racy in theory, fine for a test session)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ProducerServer:
    """A running ``producer serve``. ``env`` holds only the variables set for it (not os.environ)."""

    name: str
    base_url: str
    database_url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def endpoint(self, interaction: str) -> str:
        return f"{self.base_url}/{interaction}/1/rivtabp21"

    def connect(self, *, dict_rows: bool = False, utc: bool = False) -> psycopg.Connection:
        """An autocommit connection to this producer's database (see :func:`connect`)."""
        return connect(self.database_url, dict_rows=dict_rows, utc=utc)

    def output(self, limit: int = 20_000) -> str:
        """The tail of the server's captured stdout and stderr, for failure messages."""
        parts = []
        for stream in ("stdout", "stderr"):
            path = self.log_dir / f"{self.name}.{stream}"
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {stream} ---\n{text[-limit:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_SECONDS; also reaps granian workers left in its group."""
        stop_group(self.process, STOP_SECONDS)  # its own session (start_new_session): only what it spawned


def client_tls(cert: Path | str, key: Path | str, ca: Path | str) -> ssl.SSLContext:
    """A client context presenting ``cert`` and trusting only ``ca``: how the platform calls."""
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    return context


def start_server(
    name: str,
    database_url: str,
    extra_env: Mapping[str, str],
    log_dir: Path,
    tls: ssl.SSLContext | None = None,
) -> ProducerServer:
    """Start ``producer serve`` on a free port and wait until GET /health answers 200 "ok".

    ``tls``: the producer serves mutual TLS (its TIDBOK_TLS_* in ``extra_env``); this client
    context is used for the health check, and base_url is https."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    tokens = log_dir / f"{name}-{port}.change-tokens"
    create_file(str(tokens))
    _TOKEN_FILES.setdefault(urlsplit(database_url).path.lstrip("/"), []).append(tokens)
    env = {
        "DATABASE_URL": database_url,
        "TIDBOK_HOST": "127.0.0.1",
        "TIDBOK_PORT": str(port),
        "TIDBOK_CHANGE_TOKENS": str(tokens),
        "TIDBOK_WORKERS": "1",
        # No publisher runs beside these producers: an outbox that only grows must not make them unready.
        "TIDBOK_READY_OUTBOX_AGE": "0",
        **extra_env,
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    # Files rather than pipes: nobody reads a pipe while tests run, and a full pipe blocks the server.
    with open(log_dir / f"{name}.stdout", "wb") as out, open(log_dir / f"{name}.stderr", "wb") as err:
        process = subprocess.Popen(
            [PYTHON, "-m", "producer", "serve"],
            cwd=REPO,
            env=subprocess_env(env),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = ProducerServer(
        name=name,
        base_url=f"{'https' if tls else 'http'}://127.0.0.1:{port}",
        database_url=database_url,
        env=env,
        process=process,
        log_dir=log_dir,
        extra_env=dict(extra_env),
    )
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            server.stop()  # reap anything it spawned
            pytest.fail(
                f"producer serve ({name}) exited with {process.returncode} before it was healthy\n{server.output()}",
                pytrace=False,
            )
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _, body = http_get(f"{server.base_url}/health", timeout=1, tls=tls)
            if status == 200 and body.strip() == b"ok":
                return server
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(
                f"producer serve ({name}) was not healthy within {STARTUP_SECONDS:.0f}s\n{server.output()}",
                pytrace=False,
            )
        time.sleep(0.1)


def prepare_and_start(
    admin_url: str, name: str, extra_env: Mapping[str, str], log_dir: Path, tls: ssl.SSLContext | None = None
) -> ProducerServer:
    """Fresh database ``tidbok_test_<name>``, migrate, demo data, then serve (``tls``: see start_server)."""
    url = fresh_database(admin_url, f"{DATABASE_PREFIX}{name}")
    cli_env = {"DATABASE_URL": url, **extra_env}
    run_cli(["migrate"], cli_env)
    run_cli(["demo"], cli_env)
    return start_server(name, url, extra_env, log_dir, tls)


# -- raw HTTP ------------------------------------------------------------------------------------


def _request(
    method: str,
    url: str,
    body: bytes | None,
    headers: Mapping[str, str],
    timeout: float,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, Message, bytes]:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(host, parts.port or 443, timeout=timeout, context=tls)
    else:
        conn = http.client.HTTPConnection(host, parts.port or 80, timeout=timeout)
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        conn.request(method, target, body=body, headers=dict(headers))
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def http_get(url: str, timeout: float = 30, tls: ssl.SSLContext | None = None) -> tuple[int, Message, bytes]:
    """GET without following redirects or raising on 4xx/5xx (unlike urllib.request)."""
    return _request("GET", url, None, {}, timeout, tls)


def soap_post(
    base_url: str,
    interaction: str,
    xml: bytes | str,
    content_type: str = "text/xml; charset=utf-8",
    headers: Mapping[str, str] | None = None,
    timeout: float = 30,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, Message, bytes]:
    """POST raw bytes to an interaction endpoint; returns (status, headers, body) whatever the status.

    Sends the WSDL's SOAPAction unless ``headers`` overrides it (any header can be overridden).
    ``headers`` of the result is case-insensitive (``headers["content-type"]``).
    """
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    sent = {
        "Content-Type": content_type,
        "SOAPAction": f'"urn:riv:crm:scheduling:{interaction}Responder:1:{interaction}"',
    }
    for key, value in (headers or {}).items():
        sent = {k: v for k, v in sent.items() if k.lower() != key.lower()}
        sent[key] = value
    return _request("POST", f"{base_url.rstrip('/')}/{interaction}/1/rivtabp21", data, sent, timeout, tls)
