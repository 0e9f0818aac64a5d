"""What operations see of a running producer: /health, /ready, /metrics and the log lines.

Producers of our own, as real processes:
- "observed": two workers, text logs, the open transport. Metrics are counted in each worker
  and must be summed by every scrape, whichever worker answers it.
- "jsonlogs": JSON logs and a TLS-terminating proxy's client-certificate header, both from the
  configuration file (TIDBOK_CONFIG), so callers are identified; its output is read line by line.
- a producer started on an empty database (no migration), to see /ready follow the schema and
  the database's disappearance.
Metrics are read before and after the calls a test makes, so the tests are exact increments and
do not depend on what other tests sent.
"""

from __future__ import annotations

import json
import re
import tempfile
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from lxml import etree
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from support import DEMO_RESIDENT, ProducerServer, envelope, http_get, responder_namespace, soap_post
from support.calendar import CalendarDb
from support.official import zeep_client
from support.pki import Authority
from support.residents import Residents, as_resident
from support.server import DATABASE_PREFIX, fresh_database, run_cli, start_server

from producer.platform.logs import mask

A100 = "SE2321000016-A100"
CORRELATION = "x-skltp-correlation-id"
ORIGINAL_CONSUMER = "x-rivta-original-serviceconsumer-hsaid"
CERT_HEADER = "X-Client-Cert"
PLATFORM = "SE2321000016-VP01"  # the caller, from the certificate the proxy forwards
READER = "SE2321000016-RO01"  # may call GetAllTimeTypes only
NATIONAL_1177 = "SE2321000016-1177"  # the original consumer the platform names in its header
MASKED_DEMO = "19121212-****"
MIGRATIONS = Path(__file__).resolve().parents[2] / "producer" / "migrations"

new_resident = Residents(date(1938, 2, 1), "517")  # this module's own residents


# -- requests ------------------------------------------------------------------------------------


def time_types_body(unit: str = A100, subject_of_care: str = DEMO_RESIDENT, extra: str = "") -> str:
    ns, ext = responder_namespace("GetAllTimeTypes"), "urn:riv:crm:scheduling:GetAllTimeTypesResponder:1.1"
    return (
        f'<g:GetAllTimeTypes xmlns:g="{ns}" xmlns:x="{ext}"><g:healthcare_facility>{unit}</g:healthcare_facility>'
        f"<x:subject_of_care>{subject_of_care}</x:subject_of_care>{extra}</g:GetAllTimeTypes>"
    )


def post(
    server: ProducerServer, interaction: str, xml: bytes, **headers: str
) -> tuple[int, etree._Element | None, bytes]:
    """POST and return (status, the Body's first element, the raw bytes)."""
    status, _, body = soap_post(server.base_url, interaction, xml, headers=headers)
    root = etree.fromstring(body)
    element = next(iter(root.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")), None)
    return status, element, body


def time_types(server: ProducerServer, unit: str | None = A100, **headers: str) -> int:
    return post(server, "GetAllTimeTypes", envelope(unit, time_types_body()), **headers)[0]


def child(element: etree._Element, local_name: str) -> str | None:
    found = element.find(f".//{{*}}{local_name}")
    return None if found is None else found.text


def make_booking(server: ProducerServer, resident: str, timeslot: dict[str, Any], **headers: str) -> etree._Element:
    """MakeBooking as zeep writes it from the official WSDL, sent raw so each call has its own headers."""
    message = zeep_client("MakeBooking", server.base_url).create_message(
        A100,
        as_resident(resident),
        healthcare_facility_med=A100,
        requestedTimeslot=timeslot,
        subject_of_care_info={"firstName": "Tolvan", "lastName": "Tolvansson"},
    )
    status, element, body = post(server, "MakeBooking", etree.tostring(message), **headers)
    assert status == 200 and element is not None, body
    return element


# -- metrics -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scrape:
    """One GET /metrics, parsed by prometheus_client's own parser."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def __call__(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def named(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {labels: value for (n, labels), value in self.samples.items() if n == name}


def scrape(server: ProducerServer) -> Scrape:
    status, headers, body = http_get(f"{server.base_url}/metrics")
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain"), headers["content-type"]
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples)


def buckets(result: Scrape, operation: str) -> list[tuple[float, float]]:
    """The histogram's cumulative buckets of one operation, by upper bound."""
    found = [
        (float(dict(labels)["le"]), value)
        for labels, value in result.named("tidbok_soap_call_seconds_bucket").items()
        if dict(labels).get("operation") == operation
    ]
    return sorted(found)


def worker_pids(server: ProducerServer) -> set[int]:
    """The server's worker processes (its children), from /proc."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (command name)"
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == server.process.pid:
            children.add(int(stat.parent.name))
    return children


def calls_per_worker(workers: set[int], operation: str) -> dict[int, float]:
    """Each worker's own count of `operation`'s calls, read from its prometheus_client multiprocess
    file (the server keeps them under tidbok-metrics-* in the temporary folder): which workers
    served calls, which the HTTP side cannot tell."""
    counts = dict.fromkeys(workers, 0.0)
    for pid in workers:
        for path in Path(tempfile.gettempdir()).glob(f"tidbok-metrics-*/counter_{pid}.db"):
            for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
                _, name, labels, _ = json.loads(key)
                if name == "tidbok_soap_calls_total" and labels.get("operation") == operation:
                    counts[pid] += value
    return counts


# -- producers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def observed(start_producer: Callable[..., ProducerServer]) -> ProducerServer:
    return start_producer("observed", {"TIDBOK_WORKERS": "2"})


@dataclass(frozen=True)
class Proxied:
    """The "jsonlogs" producer and the forwarded certificates of its callers."""

    server: ProducerServer
    platform: str
    reader: str
    stranger: str

    def headers(self, certificate: str | None, correlation: str, **more: str) -> dict[str, str]:
        sent = {CORRELATION: correlation, **more}
        if certificate is not None:
            sent[CERT_HEADER] = certificate
        return sent


@pytest.fixture(scope="module")
def proxied(start_producer: Callable[..., ProducerServer], tmp_path_factory: pytest.TempPathFactory) -> Proxied:
    directory = tmp_path_factory.mktemp("jsonlogs")
    ca = Authority(directory, "proxy")
    config = directory / "tidbok.toml"
    config.write_text(
        f'[logging]\nformat = "json"\n\n[proxy]\nclient_cert_header = "{CERT_HEADER}"\ntrusted = ["127.0.0.1"]\n\n'
        f'[[consumer]]\nhsa_id = "{PLATFORM}"\n\n[[consumer]]\nhsa_id = "{READER}"\ncontracts = ["GetAllTimeTypes"]\n'
    )
    server = start_producer("jsonlogs", {"TIDBOK_CONFIG": str(config)})
    return Proxied(
        server,
        ca.function_certificate(PLATFORM, "platform").escaped_pem(),
        ca.function_certificate(READER, "reader").escaped_pem(),
        ca.function_certificate("SE2321000016-ZZ99", "stranger").escaped_pem(),
    )


# -- /health and /ready --------------------------------------------------------------------------


def test_health_and_ready_on_a_migrated_producer(observed: ProducerServer) -> None:
    status, headers, body = http_get(f"{observed.base_url}/health")
    assert (status, body.strip()) == (200, b"ok")
    status, headers, body = http_get(f"{observed.base_url}/ready")
    assert (status, body.strip()) == (200, b"ready")
    assert headers["content-type"].startswith("text/plain")


def test_soap_answers_echo_the_trace_ids(observed: ProducerServer) -> None:
    """Seed 002: X-Request-ID and X-Context-ID come back on the answer, a fault's too; a call without
    an X-Request-ID gets one made for it, and the log lines of the call carry them."""
    sent = {"X-Request-ID": f"req-{uuid.uuid4()}", "X-Context-ID": "ctx-4711"}
    status, headers, _ = soap_post(
        observed.base_url, "GetAllTimeTypes", envelope(A100, time_types_body()), headers=sent
    )
    assert status == 200 and headers["x-request-id"] == sent["X-Request-ID"] and headers["x-context-id"] == "ctx-4711"
    status, headers, _ = soap_post(
        observed.base_url, "GetAllTimeTypes", envelope("SE2321000016-NONE", time_types_body()), headers=sent
    )
    assert status == 500 and headers["x-request-id"] == sent["X-Request-ID"]
    assert f"request {sent['X-Request-ID']} context ctx-4711" in observed.output()
    status, headers, _ = soap_post(observed.base_url, "GetAllTimeTypes", envelope(A100, time_types_body()))
    assert status == 200 and uuid.UUID(headers["x-request-id"]) and headers["x-context-id"] is None


def newest_revision() -> str:
    """The head of the migrations, read with alembic itself (not the producer's own code)."""
    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def ready(server: ProducerServer) -> tuple[int, str]:
    status, _, body = http_get(f"{server.base_url}/ready", timeout=15)
    return status, body.decode().strip()


def test_ready_follows_the_database(pg_admin_url: str, tmp_path: Path) -> None:
    """One producer through the database's life: no schema, migrated, an older schema, gone.
    /health stays "ok" throughout (the process is alive); /ready says what is wrong."""
    name = f"{DATABASE_PREFIX}unready"
    url = fresh_database(pg_admin_url, name)
    server = start_server("unready", url, {"TIDBOK_DB_TIMEOUT": "1", "TIDBOK_LOG_FORMAT": "json"}, tmp_path)
    try:
        status, text = ready(server)
        assert status == 503 and "no schema" in text and "tidbok migrate" in text, text
        assert scrape(server)("tidbok_database_up") == 0  # ei_outbox cannot be read

        run_cli(["migrate"], {"DATABASE_URL": url})
        assert ready(server) == (200, "ready")
        assert scrape(server)("tidbok_database_up") == 1

        head = newest_revision()
        with psycopg.connect(url, autocommit=True) as conn:
            older = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            assert older == (head,)
            conn.execute("UPDATE alembic_version SET version_num = '0003_invitation_campaigns'")
        status, text = ready(server)
        assert status == 503 and "0003_invitation_campaigns" in text and head in text, text

        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
        status, text = ready(server)
        assert status == 503 and "unreachable" in text, text
        assert http_get(f"{server.base_url}/health")[0] == 200

        before = scrape(server)
        assert before("tidbok_database_up") == 0, "the scrape must answer without the database"
        status, element, body = post(server, "GetAllTimeTypes", envelope(A100, time_types_body()))
        assert status == 500 and element is not None and child(element, "faultcode") == "soap:Server", body
        assert "temporarily unavailable" in (child(element, "faultstring") or "")
        after = scrape(server)
        assert after("tidbok_database_unavailable_total") - before("tidbok_database_unavailable_total") == 1
        operation = {"operation": "GetAllTimeTypes"}
        assert (
            after("tidbok_soap_faults_total", **operation, code="Server")
            - before("tidbok_soap_faults_total", **operation, code="Server")
            == 1
        )
        assert "tidbok_ei_outbox_pending" not in {name for name, _ in after.samples}, "no figures made up"
    finally:
        server.stop()
    # Whatever went wrong, the log stayed machine-readable: the pool's own complaints included.
    stderr = (tmp_path / "unready.stderr").read_text(errors="replace")
    assert stderr.strip(), "the server wrote nothing"
    assert not [line for line in stderr.splitlines() if line.strip() and not is_json_object(line)]


def is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


# -- /metrics ------------------------------------------------------------------------------------


def test_calls_are_counted_by_operation_and_outcome(observed: ProducerServer) -> None:
    before = scrape(observed)
    for _ in range(3):
        assert time_types(observed) == 200
    for _ in range(2):
        assert time_types(observed, unit=None) == 500  # no LogicalAddress: soap:Client
    status, element, _ = post(observed, "MakeBooking", envelope(A100, far_future_booking()))
    assert status == 200 and element is not None and child(element, "resultCode") == "ERROR"
    after = scrape(observed)

    def delta(name: str, **labels: str) -> float:
        return after(name, **labels) - before(name, **labels)

    gatt = {"operation": "GetAllTimeTypes"}
    assert delta("tidbok_soap_calls_total", **gatt, outcome="ok") == 3
    assert delta("tidbok_soap_calls_total", **gatt, outcome="client_fault") == 2
    assert delta("tidbok_soap_calls_total", operation="MakeBooking", outcome="error") == 1
    assert delta("tidbok_soap_calls_total", operation="MakeBooking", outcome="ok") == 0
    assert delta("tidbok_soap_faults_total", **gatt, code="Client") == 2
    assert delta("tidbok_soap_faults_total", operation="MakeBooking", code="Client") == 0

    assert delta("tidbok_soap_call_seconds_count", **gatt) == 5
    assert delta("tidbok_soap_call_seconds_count", operation="MakeBooking") == 1
    assert delta("tidbok_soap_call_seconds_sum", **gatt) > 0
    cumulative = buckets(after, "GetAllTimeTypes")
    assert cumulative[-1] == (float("inf"), after("tidbok_soap_call_seconds_count", **gatt))
    counts = [count for _, count in cumulative]
    assert counts == sorted(counts), "histogram buckets are cumulative"
    assert len(cumulative) > 5, "the latency histogram has its buckets"
    growth = {le: count - dict(buckets(before, "GetAllTimeTypes")).get(le, 0) for le, count in cumulative}
    assert growth[float("inf")] == 5 and growth[10.0] == 5, "every call answered within 10 s"


def far_future_booking() -> str:
    """A MakeBooking for a time far beyond the demo's calendar: resultCode ERROR, nothing booked."""
    ns, core, ext = responder_namespace("MakeBooking"), "urn:riv:crm:scheduling:1", "urn:riv:crm:scheduling:1.1"
    return (
        f'<m:MakeBooking xmlns:m="{ns}" xmlns:c="{core}" xmlns:e="{ext}">'
        f"<m:healthcare_facility_med>{A100}</m:healthcare_facility_med>"
        "<m:requestedTimeslot><c:startTimeInclusive>20400107090000</c:startTimeInclusive>"
        f"<c:endTimeExclusive>20400107092000</c:endTimeExclusive><c:healthcare_facility>{A100}</c:healthcare_facility>"
        f"<c:subject_of_care>{DEMO_RESIDENT}</c:subject_of_care></m:requestedTimeslot>"
        "<m:subject_of_care_info><e:firstName>Tolvan</e:firstName><e:lastName>Tolvansson</e:lastName>"
        "</m:subject_of_care_info></m:MakeBooking>"
    )


def test_every_scrape_sums_both_workers(observed: ProducerServer) -> None:
    """Calls served by both workers; whichever worker answers a scrape, it counts all of them."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to tell the workers apart")
    workers = worker_pids(observed)
    assert len(workers) == 2, f"expected two worker processes, found {workers}"
    labels = {"operation": "GetAllTimeTypes", "outcome": "ok"}
    start = scrape(observed)("tidbok_soap_calls_total", **labels)
    sent = 0
    # New connections from several threads; which worker accepts one is up to the kernel, so send
    # until both have served some (usually the first batch).
    with ThreadPoolExecutor(8) as pool:
        while sent < 400 and not all(calls_per_worker(workers, "GetAllTimeTypes").values()):
            assert list(pool.map(lambda _: time_types(observed), range(20))) == [200] * 20
            sent += 20
    served = calls_per_worker(workers, "GetAllTimeTypes")
    assert all(served.values()), f"one worker served no calls: {served}"
    for _ in range(6):
        assert scrape(observed)("tidbok_soap_calls_total", **labels) - start == sent


def test_pool_and_outbox_gauges(observed: ProducerServer) -> None:
    assert time_types(observed) == 200
    result = scrape(observed)
    connections = result("tidbok_db_pool_connections")
    assert connections >= 1
    assert 0 <= result("tidbok_db_pool_connections_in_use") <= connections
    assert result("tidbok_db_pool_requests_waiting") >= 0
    assert result("tidbok_database_up") == 1

    with observed.connect() as conn:
        pending, parked = conn.execute(
            "SELECT count(*) FILTER (WHERE parked_at IS NULL), count(*) FILTER (WHERE parked_at IS NOT NULL)"
            " FROM ei_outbox WHERE published_at IS NULL"
        ).fetchone()
        assert pending >= 2, "the demo data queues posts for EI (no publisher runs here)"
        assert (result("tidbok_ei_outbox_pending"), result("tidbok_ei_outbox_parked")) == (pending, parked)

        # An operator's view of trouble: a row EI refused, and a row waiting for an hour.
        conn.execute(
            "UPDATE ei_outbox SET parked_at = now(), parked_reason = 'test: refused by EI'"
            " WHERE id = (SELECT min(id) FROM ei_outbox WHERE published_at IS NULL AND parked_at IS NULL)"
        )
        conn.execute(
            "UPDATE ei_outbox SET created_at = now() - interval '1 hour'"
            " WHERE id = (SELECT max(id) FROM ei_outbox WHERE published_at IS NULL AND parked_at IS NULL)"
        )
    result = scrape(observed)
    assert (result("tidbok_ei_outbox_pending"), result("tidbok_ei_outbox_parked")) == (pending - 1, parked + 1)
    assert 3600 <= result("tidbok_ei_outbox_oldest_pending_seconds") < 3700


def test_refusals_are_counted_by_reason(proxied: Proxied) -> None:
    server = proxied.server
    before = scrape(server)
    assert time_types(server, **proxied.headers(proxied.reader, "corr-count-1")) == 200
    assert time_types(server, **proxied.headers(None, "corr-count-2")) == 500  # no certificate
    assert time_types(server, **proxied.headers(proxied.stranger, "corr-count-3")) == 500  # not configured
    status, element, _ = post(
        server, "MakeBooking", envelope(A100, far_future_booking()), **proxied.headers(proxied.reader, "corr-count-4")
    )
    assert status == 500 and element is not None and READER in (child(element, "faultstring") or "")
    after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return after(name, **labels) - before(name, **labels)

    assert delta("tidbok_refused_calls_total", reason="no_identity") == 1
    assert delta("tidbok_refused_calls_total", reason="unauthorized") == 2
    assert delta("tidbok_soap_calls_total", operation="GetAllTimeTypes", outcome="refused") == 2
    assert delta("tidbok_soap_calls_total", operation="GetAllTimeTypes", outcome="ok") == 1
    assert delta("tidbok_soap_calls_total", operation="MakeBooking", outcome="refused") == 1


# -- logs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Story:
    """What the "jsonlogs" producer was asked, and what it wrote to its stderr."""

    booking_id: str
    booked: str  # the booking's correlation id
    correlations: dict[str, str]  # correlation id -> what the call was
    lines: list[str]  # stderr's
    stdout: list[str]
    output: str


@pytest.fixture(scope="module")
def story(proxied: Proxied) -> Story:
    """A booking by the demo resident and a handful of faults and refusals, each with its own
    correlation id; then the server's output as it stands."""
    server, run = proxied.server, uuid.uuid4().hex[:8]
    correlations: dict[str, str] = {}

    def correlation(what: str) -> str:
        value = f"corr-{run}-{len(correlations)}"
        correlations[value] = what
        return value

    calendar = CalendarDb(server)
    try:
        slot = calendar.free_slot(A100, "SSK", last=True)  # the demo resident has the one LAK allowed
    finally:
        calendar.close()
    booked = correlation("booking")
    headers = proxied.headers(proxied.platform, booked, **{ORIGINAL_CONSUMER: NATIONAL_1177})
    answer = make_booking(server, DEMO_RESIDENT, slot.timeslot(DEMO_RESIDENT), **headers)
    assert child(answer, "resultCode") == "OK", etree.tostring(answer)
    booking_id = child(answer, "bookingId")
    assert booking_id

    faults = {
        "no LogicalAddress": envelope(None, time_types_body()),
        "unknown unit": envelope("SE2321000016-X999", time_types_body(unit="SE2321000016-X999")),
        "an element the contract lacks": envelope(
            A100, time_types_body(extra=f"<g:unexpected>{DEMO_RESIDENT}</g:unexpected>")
        ),
        "a personnummer too short": envelope(A100, time_types_body(subject_of_care=DEMO_RESIDENT[:11])),
        "a personnummer where a unit belongs": envelope(A100, time_types_body(unit="19121212-1212")),
        "not well-formed": f"<broken>{DEMO_RESIDENT}".encode(),
    }
    for what, xml in faults.items():
        status, _, body = post(server, "GetAllTimeTypes", xml, **proxied.headers(proxied.platform, correlation(what)))
        assert status == 500, (what, body)
    assert time_types(server, **proxied.headers(proxied.stranger, correlation("refused: stranger"))) == 500
    output = server.output(limit=1_000_000)
    stderr, stdout = ((server.log_dir / f"{server.name}.{s}").read_text(errors="replace") for s in ("stderr", "stdout"))
    return Story(
        booking_id,
        booked,
        correlations,
        [line for line in stderr.splitlines() if line.strip()],
        [line for line in stdout.splitlines() if line.strip()],
        output,
    )


def records(story: Story) -> list[dict[str, Any]]:
    return [json.loads(line) for line in story.lines]


def test_every_line_is_one_json_object(story: Story) -> None:
    assert story.lines, "the server wrote nothing to stderr"
    for line in story.lines + story.stdout:
        assert is_json_object(line), f"not a JSON object: {line[:300]}"
        assert {"time", "level", "logger", "message"} <= set(json.loads(line)), line
    loggers = {record["logger"] for record in records(story)}
    assert {"tidbok.audit", "tidbok.soap"} <= loggers, loggers


def test_lines_of_a_call_carry_its_correlation_id_and_caller(story: Story) -> None:
    by_correlation: dict[str, list[dict[str, Any]]] = {}
    for record in records(story):
        if record["logger"].startswith("tidbok.") and record.get("correlation_id", "-") != "-":
            by_correlation.setdefault(record["correlation_id"], []).append(record)
    mine = {c: r for c, r in by_correlation.items() if c in story.correlations}
    assert set(mine) == set(story.correlations), {
        what: "no line" for c, what in story.correlations.items() if c not in mine
    }
    for correlation_id, lines in mine.items():
        expected = "-" if "stranger" in story.correlations[correlation_id] else PLATFORM  # refused: nobody
        for record in lines:
            assert record["consumer"] == expected, record


def test_the_audit_line_of_a_booking(story: Story) -> None:
    audit = [r for r in records(story) if r["logger"] == "tidbok.audit" and r["correlation_id"] == story.booked]
    assert len(audit) == 1, audit
    record = audit[0]
    assert record["level"] == "INFO"
    assert record["audit"] == {
        "operation": "MakeBooking",
        "result": "OK",
        "booking_id": story.booking_id,
        "unit": A100,
        "actor_type": "subject_of_care",
        "actor_id": MASKED_DEMO,
        "caller": PLATFORM,
        "original_consumer": NATIONAL_1177,
        "correlation_id": story.booked,
        "at": record["audit"]["at"],
    }
    for part in (story.booking_id, A100, PLATFORM, NATIONAL_1177, story.booked, MASKED_DEMO):
        assert part in record["message"], (part, record["message"])


def test_no_personnummer_in_the_output(story: Story) -> None:
    for form in (DEMO_RESIDENT, "19121212-1212", "1212121212", "121212-1212"):
        assert form not in story.output, f"{form} in the server's output"
    assert MASKED_DEMO in story.output


def test_the_booking_history_records_who_asked(story: Story, proxied: Proxied) -> None:
    with proxied.server.connect(dict_rows=True) as conn:
        events = conn.execute(
            "SELECT e.action, e.channel, e.actor_type, e.actor_id, e.details FROM booking_event e"
            " JOIN booking b ON b.pk = e.booking_pk WHERE b.booking_id = %s AND b.subject_of_care = %s ORDER BY e.id",
            (story.booking_id, DEMO_RESIDENT),
        ).fetchall()
    assert events, "the booking has no history"
    details = events[-1]["details"]
    assert (details["caller"], details["consumer"], details["correlation_id"]) == (
        PLATFORM,
        NATIONAL_1177,
        story.booked,
    )
    assert (events[-1]["actor_type"], events[-1]["actor_id"]) == ("subject_of_care", DEMO_RESIDENT)


def test_text_lines_carry_the_trace_ids_and_mask_numbers(observed: ProducerServer) -> None:
    resident = new_resident()
    calendar = CalendarDb(observed)
    try:
        slot = calendar.free_slot(A100, "SSK", last=True)
    finally:
        calendar.close()
    correlation = f"corr-text-{uuid.uuid4().hex[:8]}"
    answer = make_booking(
        observed, resident, slot.timeslot(resident), **{CORRELATION: correlation, ORIGINAL_CONSUMER: NATIONAL_1177}
    )
    assert child(answer, "resultCode") == "OK"
    assert time_types(observed, unit=None, **{CORRELATION: f"{correlation}-fault"}) == 500
    # a header that is not a plain token is not copied into the logs
    assert time_types(observed, unit=None, **{CORRELATION: "bad id\twith 191212121212"}) == 500
    output = observed.output(limit=1_000_000)
    audit = [line for line in output.splitlines() if " tidbok.audit " in line and f"correlation {correlation}" in line]
    assert len(audit) == 1, output[-3000:]
    assert f"{resident[:8]}-****" in audit[0] and "consumer -" in audit[0]
    assert f"original consumer {NATIONAL_1177}" in audit[0] and "caller -" in audit[0]
    assert any(f"correlation {correlation}-fault" in line and " tidbok.soap " in line for line in output.splitlines())
    assert resident not in output and DEMO_RESIDENT not in output
    assert "bad id" not in output


AUDIT_LINE = re.compile(
    r" tidbok\.audit \[[^]]*\] (\w+) (\w+) booking (\S+) unit (\S+) actor (\S+) (\S+)"
    r" caller (\S+) original consumer (\S+) correlation (\S+)$"
)


def test_header_values_cannot_forge_audit_fields(observed: ProducerServer) -> None:
    """The platform's headers are the caller's text: in the audit line each stays one field (the
    booking's history keeps them as sent, in JSON)."""
    resident = new_resident()
    calendar = CalendarDb(observed)
    try:
        slot = calendar.free_slot(A100, "SSK", last=True)
        forged = {
            CORRELATION: f"corr-{uuid.uuid4().hex[:8]} caller SE2321000016-FAKE",
            ORIGINAL_CONSUMER: f"{NATIONAL_1177} correlation forged",
        }
        answer = make_booking(observed, resident, slot.timeslot(resident), **forged)
        assert child(answer, "resultCode") == "OK"
        booking_id = child(answer, "bookingId")
        details = calendar.one(
            "SELECT e.details FROM booking_event e JOIN booking b ON b.pk = e.booking_pk"
            " WHERE b.booking_id = %s AND b.subject_of_care = %s ORDER BY e.id DESC LIMIT 1",
            booking_id,
            resident,
        )["details"]
    finally:
        calendar.close()
    assert (details["correlation_id"], details["consumer"]) == (forged[CORRELATION], forged[ORIGINAL_CONSUMER])
    # A refused change logs the bookingId and actor the request named: request text, too.
    marker = uuid.uuid4().hex[:8]
    message = zeep_client("CancelBooking", observed.base_url).create_message(
        A100, (f"{resident} caller SE2321000016-FAKE", "subject_of_care"), healthcare_facility=A100,
        bookingId=f"X{marker} caller SE2321000016-FAKE",
    )  # fmt: skip
    status, element, body = post(observed, "CancelBooking", etree.tostring(message))
    assert status == 200 and element is not None and child(element, "resultCode") == "ERROR", body

    output = observed.output(limit=1_000_000).splitlines()
    lines = [line for line in output if f"booking {booking_id} " in line or f"booking X{marker}" in line]
    assert len(lines) == 2, lines
    booked, cancel = (AUDIT_LINE.search(line) for line in lines)
    assert booked is not None and cancel is not None, f"the audit line's fields were forged: {lines}"
    assert booked.groups()[:3] == ("MakeBooking", "OK", booking_id)
    assert booked.group(7) == "-", "open transport: no caller"
    assert booked.group(8).startswith(NATIONAL_1177) and booked.group(9).startswith(forged[CORRELATION][:13])
    assert cancel.groups()[:2] == ("CancelBooking", "ERROR") and cancel.group(3).startswith(f"X{marker}")
    assert cancel.group(6).startswith(f"{resident[:8]}-****"), "the actor is masked, whatever follows it"
    assert resident not in "\n".join(output)


# -- masking -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("191212121212", "19121212-****"),
        ("19121212-1212", "19121212-****"),
        ("actor 200001012384 booked", "actor 20000101-**** booked"),
        ("121212-1212", "121212-****"),
        ("191212121272", "19121212-****"),  # samordningsnummer (day + 60): the whole number masked anyway
        ("19121272-1212", "19121272-****"),
        ("19121212T123", "19121212-****"),  # reserve numbers: a letter in position 9
        ("19121212t123", "19121212-****"),
        ("19121212F123", "19121212-****"),
        ("19121212P123", "19121212-****"),
        ("19121212-T123", "19121212-****"),
        (
            '{"actor_id": "191212121212", "x": "<a>19121212-1212</a>"}',
            '{"actor_id": "19121212-****", "x": "<a>19121212-****</a>"}',
        ),
        ("a\\n191212121212\\n", "a\\n19121212-****\\n"),  # as JSON escapes a newline next to it
    ],
)
def test_mask_hides_the_number_and_keeps_the_birth_date(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_mask_keeps_the_century_sign() -> None:
    """The 10-digit form's "+" says "100 years or older": part of the birth date, so it stays."""
    assert mask("121212+1212") == "121212+****"


@pytest.mark.parametrize(
    "text",
    [
        "SE2321000016-A100",
        "SE2321000016-1234",
        "SE232100001612-1234",
        "5565594230",  # EI's logical address (an organisation number)
        "20260304091500",  # a wire timestamp
        "1191212121212",  # 13 digits: part of a longer number
        "1912121212123",
        "191212121212345",
        "B191212",
        "T1234",
        "2026-03-04 09:15:00,123",
        "request fc132644-1234-5678-9abc-def012345678",  # X-Request-ID (a UUID): its digits are no personnummer
        "context 20121212-1212-4abc-8def-0123456789ab",
        "id=c132644-1234 ok",
    ],
)
def test_mask_leaves_other_identifiers_alone(text: str) -> None:
    assert mask(text) == text


def test_mask_every_occurrence() -> None:
    assert mask("191212121212 and 19121212-1212, 121212-1212") == "19121212-**** and 19121212-****, 121212-****"
