"""The engagement index in tests: the OFFICIAL EI contract (patched in memory) as the referee, the
EI stub as a process, and publisher processes.

The official core XSD has the anchored personnummer pattern (``^…$``, literal characters in XSD),
which rejects every real personnummer; it is patched in memory as it is loaded, never copied.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import zeep
from lxml import etree
from zeep.transports import Transport

from support.server import free_port, http_get, subprocess_env

REPO = Path(__file__).resolve().parents[2]
OFFICIAL = REPO.parent / "shared" / "reference-contracts" / "engagementindex_1.0"
CORE_XSD = OFFICIAL / "core_components" / "itintegration_engagementindex_1.0.xsd"
BROKEN_PATTERN = b'<xs:pattern value="^[0-9]{8}[0-9pPtTfF][0-9]{3}$"/>'
FIXED_PATTERN = b'<xs:pattern value="[0-9]{8}[0-9pPtTfF][0-9]{3}"/>'
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
REGISTRY_NS = "urn:riv:itintegration:registry:1"
EI_HSA_ID = "5565594230"  # the stub's default, as the national EI
RESIDENT = "191212121212"

# -- the official contract, patched in memory ----------------------------------------------------


def responder_ns(op: str) -> str:
    return f"urn:riv:itintegration:engagementindex:{op}Responder:1"


def _is_core_xsd(url: str) -> bool:
    path = unquote(urlsplit(url).path) if "://" in url else url
    try:
        return Path(path).resolve() == CORE_XSD.resolve()
    except OSError:
        return False


@cache
def patched_core() -> bytes:
    content = CORE_XSD.read_bytes()
    assert content.count(BROKEN_PATTERN) == 1, "the official EI core XSD changed; revisit the patch"
    return content.replace(BROKEN_PATTERN, FIXED_PATTERN)


class PatchingTransport(Transport):
    """zeep loads the official files through load(); the core XSD is patched on the way."""

    def load(self, url: str) -> bytes:
        return patched_core() if _is_core_xsd(url) else super().load(url)


class _PatchedCoreResolver(etree.Resolver):
    def resolve(self, system_url: str, public_id: str | None, context: Any) -> Any:
        if _is_core_xsd(system_url):
            return self.resolve_string(patched_core(), context, base_url=system_url)
        return None


@cache
def official_schema(op: str) -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    parser.resolvers.add(_PatchedCoreResolver())
    xsd = OFFICIAL / "interactions" / f"{op}Interaction" / f"{op}Responder_1.0.xsd"
    return etree.XMLSchema(etree.parse(str(xsd), parser))


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


class OfficialResponseCheck(zeep.Plugin):
    def __init__(self, op: str) -> None:
        self.op = op

    def ingress(self, envelope: etree._Element, http_headers: Any, operation: Any) -> tuple[etree._Element, Any]:
        body = envelope.find(f"{{{SOAP_ENV}}}Body")
        first = next((c for c in body if isinstance(c.tag, str)), None) if body is not None else None
        if first is None or first.tag != f"{{{SOAP_ENV}}}Fault":
            assert_official_response(self.op, envelope)
        return envelope, http_headers


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
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # its own process group: only what it spawned


@dataclass
class Ei:
    update_service: Any
    find_service: Any

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
        str(wsdl), transport=PatchingTransport(operation_timeout=timeout), plugins=[OfficialResponseCheck(op)]
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


@dataclass
class PublisherProcess:
    """``python -m producer publish`` against one database and one EI endpoint."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-20_000:]

    def stop(self, seconds: float = 15) -> int:
        """SIGTERM: the publisher finishes the batch in hand and exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would: whatever it was sending stays unmarked."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


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
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "producer", "publish"],
            cwd=REPO,
            env=subprocess_env(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return PublisherProcess(process, log_path)
