"""The engagement index in tests: the OFFICIAL EI contract (patched in memory) as the referee, the
EI stub as a process, and publisher processes.

The official core XSD has the anchored personnummer pattern (``^…$``, literal characters in XSD),
which rejects every real personnummer; it is patched in memory as it is loaded, never copied.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import zeep
from lxml import etree
from psycopg.rows import dict_row, tuple_row

from engagement_index.fields import KEY_FIELDS
from support import reference
from support.official import ResponseValidator
from support.patching import CorePatchingTransport, PatchedCore, patched_parser
from support.processes import LoggedProcess, start_logged, stop_group
from support.server import free_port, http_get, subprocess_env

REPO = Path(__file__).resolve().parents[2]
# The official release when found, else our own rendition (support.reference).
OFFICIAL = reference.REFEREE / "engagementindex_1.0"
CORE_XSD = OFFICIAL / "core_components" / "itintegration_engagementindex_1.0.xsd"
CORE = PatchedCore(CORE_XSD, defective=reference.FOUND)
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
REGISTRY_NS = "urn:riv:itintegration:registry:1"
EI_HSA_ID = "5565594230"  # the stub's default, as the national EI
RESIDENT = "191212121212"

# -- the official contract, patched in memory ----------------------------------------------------


def responder_ns(op: str) -> str:
    return f"urn:riv:itintegration:engagementindex:{op}Responder:1"


class PatchingTransport(CorePatchingTransport):
    """zeep loads the official files through load(); the core XSD is patched on the way."""

    core = CORE


@cache
def official_schema(op: str) -> etree.XMLSchema:
    xsd = OFFICIAL / "interactions" / f"{op}Interaction" / f"{op}Responder_1.0.xsd"
    return etree.XMLSchema(etree.parse(str(xsd), patched_parser(CORE)))


def assert_official_response(op: str, envelope: etree._Element | bytes) -> etree._Element:
    """The body's element is a valid official <op>Response; returns it."""
    root = envelope if isinstance(envelope, etree._Element) else etree.fromstring(envelope)
    body = root.find(f"{{{SOAP_ENV}}}Body")
    assert body is not None, "no soap:Body"
    (element,) = [c for c in body if isinstance(c.tag, str)]
    assert element.tag == f"{{{responder_ns(op)}}}{op}Response", element.tag
    schema = official_schema(op)
    assert schema.validate(element), "\n".join(e.message for e in schema.error_log)
    return element


# -- the stub process ------------------------------------------------------------------------------


@dataclass
class Stub:
    base_url: str
    process: subprocess.Popen[bytes]
    log_dir: Path

    def endpoint(self, op: str) -> str:
        return f"{self.base_url}/{op}/1/rivtabp21"

    def output(self) -> str:
        return "\n".join((self.log_dir / f"stub.{s}").read_text(errors="replace")[-10_000:] for s in ("out", "err"))

    def request(self, method: str, path: str, body: bytes | None = None, timeout: float = 30) -> tuple[int, bytes]:
        parts = urlsplit(self.base_url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
        try:
            headers = {"Content-Type": "text/xml; charset=utf-8"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def soap(self, op: str, xml: bytes) -> tuple[int, bytes]:
        return self.request("POST", f"/{op}/1/rivtabp21", xml)

    def api(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        body = None if payload is None else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
        status, data = self.request(method, f"/_stub/{path}", body if method == "POST" else None)
        return status, json.loads(data)

    def control(self, **spec: Any) -> dict[str, Any]:
        status, data = self.api("POST", "control", spec)
        assert status == 200, data
        return data

    def state(self) -> dict[str, Any]:
        return self.api("GET", "state")[1]

    def stop(self) -> None:
        stop_group(self.process, 10)


@dataclass
class Ei:
    """EI as 1177 reads it: zeep clients from the official WSDLs, every response checked by the official schema."""

    update_service: Any
    find_service: Any

    @classmethod
    def of(cls, stub: Stub) -> Ei:
        return cls(
            official_client("Update", stub.endpoint("Update")),
            official_client("FindContent", stub.endpoint("FindContent")),
        )

    def update(self, *transactions: dict[str, Any], logical_address: str | None = EI_HSA_ID) -> Any:
        headers = {} if logical_address is None else {"LogicalAddress": logical_address}
        return self.update_service.Update(engagementTransaction=list(transactions), _soapheaders=headers)

    def find(self, logical_address: str = EI_HSA_ID, **criteria: Any) -> list[Any]:
        criteria.setdefault("registeredResidentIdentification", RESIDENT)
        criteria.setdefault("serviceDomain", "riv:crm:scheduling")
        response = self.find_service.FindContent(**criteria, _soapheaders={"LogicalAddress": logical_address})
        return list(response.engagement or [])


def official_client(op: str, address: str, timeout: float = 30) -> Any:
    wsdl = OFFICIAL / "interactions" / f"{op}Interaction" / f"{op}Interaction_1.0_RIVTABP21.wsdl"
    client = zeep.Client(
        str(wsdl),
        transport=PatchingTransport(operation_timeout=timeout),
        plugins=[ResponseValidator(op, assert_official_response)],
    )
    binding = f"{{urn:riv:itintegration:engagementindex:{op}:1:rivtabp21}}{op}ResponderBinding"
    return client.create_service(binding, address)


def start_stub(log_dir: Path, extra_env: Mapping[str, str] | None = None) -> Stub:
    """``python -m engagement_index.stub`` on a free port, healthy; stop it with ``.stop()``."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    env = subprocess_env(
        {
            "TIDBOK_EI_STUB_HOST": "127.0.0.1",
            "TIDBOK_EI_STUB_PORT": str(port),
            **(extra_env or {}),
        }
    )
    with open(log_dir / "stub.out", "wb") as out, open(log_dir / "stub.err", "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "engagement_index.stub"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    running = Stub(f"http://127.0.0.1:{port}", process, log_dir)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail(f"the EI stub exited with {process.returncode}\n{running.output()}", pytrace=False)
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _, body = http_get(f"{running.base_url}/health", timeout=1)
            if status == 200 and body == b"ok\n":
                break
        if time.monotonic() > deadline:
            running.stop()
            pytest.fail(f"the EI stub was not healthy within 30 s\n{running.output()}", pytrace=False)
        time.sleep(0.1)
    return running


@contextlib.contextmanager
def running_stub(log_dir: Path, extra_env: Mapping[str, str] | None = None) -> Iterator[Stub]:
    """:func:`start_stub`, stopped when the block ends."""
    stub = start_stub(log_dir, extra_env)
    try:
        yield stub
    finally:
        stub.stop()


class PublisherProcess(LoggedProcess):
    """``python -m producer publish`` against one database and one EI endpoint."""


def start_publisher(
    database_url: str, update_url: str, log_path: Path, extra_env: Mapping[str, str] | None = None
) -> PublisherProcess:
    """A publisher process; fast retries by default so fault tests finish quickly."""
    env = {
        "DATABASE_URL": database_url,
        "TIDBOK_EI_UPDATE_URL": update_url,
        "TIDBOK_EI_RETRY_INITIAL_MS": "100",
        "TIDBOK_EI_RETRY_MAX_MS": "400",
        "TIDBOK_EI_POLL_MS": "50",
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "producer", "publish"]
    return PublisherProcess(start_logged(command, subprocess_env(env), log_path), log_path)


# -- a producer's outbox, published ---------------------------------------------------------------

PENDING_ROWS = "SELECT count(*) FROM ei_outbox WHERE published_at IS NULL AND parked_at IS NULL"


def wait_until_drained(
    conn: psycopg.Connection, publisher: PublisherProcess | None = None, seconds: float = 20, name: str = "publisher"
) -> None:
    """Wait (bounded) until the publisher has sent every pending outbox row (parked rows do not count)."""
    deadline = time.monotonic() + seconds
    with conn.cursor(row_factory=tuple_row) as cur:
        while (pending := cur.execute(PENDING_ROWS).fetchone()[0]) > 0:
            if publisher is not None and publisher.process.poll() is not None:
                pytest.fail(f"the {name} exited\n{publisher.output()}", pytrace=False)
            if time.monotonic() > deadline:
                log = "" if publisher is None else f"\n{publisher.output()}"
                pytest.fail(f"{pending} outbox row(s) still pending after {seconds} s{log}", pytrace=False)
            time.sleep(0.05)


def settle_outbox(
    conn: psycopg.Connection, publisher: PublisherProcess, seconds: float, name: str = "publisher"
) -> None:
    """Wait until the publisher has sent every pending outbox row; none may be parked (refused by EI)."""
    wait_until_drained(conn, publisher, seconds, name)
    with conn.cursor(row_factory=dict_row) as cur:
        parked = cur.execute("SELECT id, reason, parked_reason FROM ei_outbox WHERE parked_at IS NOT NULL").fetchall()
    assert parked == [], f"EI refused posts of the {name}: {parked}"


@dataclass
class EiLoop:
    """A producer's outbox sent by a real publisher into a stub of its own, and EI read as 1177 reads it."""

    stub: Stub
    publisher: PublisherProcess
    ei: Ei


@contextlib.contextmanager
def publishing_into_a_stub(database_url: str, log_dir: Path) -> Iterator[EiLoop]:
    """A stub and a publisher of the database's outbox into it, both stopped when the block ends."""
    with running_stub(log_dir / "stub") as stub:
        publisher = start_publisher(database_url, stub.endpoint("Update"), log_dir / "publisher.log")
        try:
            yield EiLoop(stub, publisher, Ei.of(stub))
        finally:
            publisher.stop()


# -- what EI holds, and its log, judged against a producer's outbox ----------------------------------

# What the publisher sends by default (EiSettings), written out here: the tests judge the code.
SERVICE_DOMAIN = "riv:crm:scheduling"
SOURCE_SYSTEM = "SE2321000016-TIDB"
DATA_CONTROLLER = "SE2321000016"
Key = tuple[str, ...]


def post_key(post: Mapping[str, Any]) -> Key:
    """The EI key of one of the outbox's posts, as the stub stores it (split categorization)."""
    values = {
        "registeredResidentIdentification": post["subject_of_care"],
        "serviceDomain": SERVICE_DOMAIN,
        "categorization": {"booking": "Booking", "invitation": "Invitation"}[post["kind"]],
        "logicalAddress": post["unit"],
        "businessObjectInstanceIdentifier": post["booking_id"],
        "sourceSystem": SOURCE_SYSTEM,
        "dataController": DATA_CONTROLLER,
        "owner": EI_HSA_ID,
        "clinicalProcessInterestId": "NA",
    }
    return tuple(values[name] for name in KEY_FIELDS)


def post_tuple(post: Mapping[str, Any]) -> tuple[str, ...]:
    return (*post_key(post), post["most_recent_content"])


def stub_posts(state: Mapping[str, Any]) -> list[tuple[str, ...]]:
    return sorted((*(p[name] for name in KEY_FIELDS), p["mostRecentContent"]) for p in state["posts"])


def log_key(entry: Mapping[str, Any]) -> Key:
    return tuple(entry["key"][name] for name in KEY_FIELDS)


def order_problems(log: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """Per booking, every Update call that touched it must leave EI at one of its outbox rows'
    `after` states, and never at an earlier row than a previous call did (a resend of the same state
    is fine: delivery is at least once; a call of deletes alone may also be the first part of a net
    change split over calls). Deletes must name keys the booking had by then."""
    by_booking: dict[int, list[dict[str, Any]]] = defaultdict(list)
    owner: dict[Key, int] = {}
    problems: list[str] = []
    for row in rows:
        by_booking[row["booking_pk"]].append(row)
        for post in (row["before"], row["after"]):
            if post is not None and owner.setdefault(post_key(post), row["booking_pk"]) != row["booking_pk"]:
                problems.append(f"key {post_key(post)} belongs to two bookings; this check cannot judge it")
    calls: dict[tuple[int, int], list[dict[str, Any]]] = {}  # (booking, call) in the order applied
    for entry in log:
        pk = owner.get(log_key(entry))
        if pk is None:
            problems.append(f"log line {entry['seq']} touches a key no outbox row names: {log_key(entry)}")
            continue
        calls.setdefault((pk, entry["call"]), []).append(entry)
    reached: dict[int, int] = {}
    for (pk, call), entries in calls.items():
        history = by_booking[pk]
        saves = [e for e in entries if not e["deleteFlag"]]
        if len(saves) > 1:
            problems.append(f"booking {pk}: call {call} saved {len(saves)} posts")
            continue

        def leaves_ei_at(index: int, saves: list[dict[str, Any]] = saves, history: list[Any] = history) -> bool:
            after = history[index]["after"]
            if not saves:
                return after is None
            return after is not None and post_tuple(after) == (*log_key(saves[0]), saves[0]["mostRecentContent"])

        start = reached.get(pk, 0)
        index = next((i for i in range(start, len(history)) if leaves_ei_at(i)), None)
        partial = index is None and not saves  # deletes only: the first part of a net change split over calls
        if index is None and not partial:
            problems.append(f"booking {pk}: call {call} does not continue from outbox row #{start}: {entries}")
            continue
        if index is not None:
            reached[pk] = index
        rows_by_then = history if index is None else history[: index + 1]
        known = {post_key(p) for r in rows_by_then for p in (r["before"], r["after"]) if p is not None}
        for entry in entries:
            if entry["deleteFlag"] and log_key(entry) not in known:
                problems.append(f"booking {pk}: call {call} deleted a key it did not have yet: {log_key(entry)}")
    return problems
