"""Egen provhantering (EP) in tests: the EP stub as a process (plain HTTP or mutual TLS), driven
through its JSON test API, and OfferClient configurations that reach it.

    with running_ep_stub(tmp_path) as stub:            # python -m egen_provhantering.stub, free port
        stub.set_population(["191212121212"])          # POST /_stub/config
        stub.set_faults(mode="technical", remaining=2)  # POST /_stub/control
        client = OfferClient(stub.client_config(timeout=2))
        ...
        stub.given("191212121212")                     # GET /_stub/given/<pnr>: offers still given

Fixtures (tests/egen_provhantering/conftest.py makes them available there):
    ep_stub       session   a plain-HTTP stub
    ep            function  ep_stub, reset (nothing given, control ok, start config)
    ep_pki        session   a test CA, the stub's server certificate, a client certificate from it,
                            and one from another CA (support.pki)
    ep_tls_stub   session   a stub requiring a client certificate from ep_pki's CA
    ep_tls        function  ep_tls_stub, reset
"""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from egen_provhantering.config import ClientConfig
from egen_provhantering.contract import SERVICE_PATH
from support.pki import Authority, Issued
from support.processes import stop_group
from support.server import free_port, subprocess_env

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 30.0


@dataclass(frozen=True)
class EpPki:
    """The stub's server certificate and the clients' certificates, on disk."""

    authority: Authority
    server: Issued
    client: Issued  # issued by `authority`: the stub accepts it
    stranger: Issued  # issued by another CA: the stub refuses it
    stranger_ca: Path


def make_pki(directory: Path) -> EpPki:
    directory.mkdir(parents=True, exist_ok=True)
    authority = Authority(directory, "ep")
    other = Authority(directory, "other")
    return EpPki(
        authority=authority,
        server=authority.server("ep-server"),
        client=authority.function_certificate("SE2321000016-TIDB", "ep-client"),
        stranger=other.function_certificate("SE2321000016-TIDB", "ep-stranger"),
        stranger_ca=other.bundle,
    )


@dataclass
class EpStub:
    base_url: str
    process: subprocess.Popen[bytes]
    log_dir: Path
    pki: EpPki | None = None

    @property
    def url(self) -> str:
        """The OfferInteraction endpoint, for ClientConfig.url."""
        return self.base_url + SERVICE_PATH

    def client_config(self, **overrides: Any) -> ClientConfig:
        """A configuration that reaches this stub (with the accepted client certificate under TLS)."""
        values: dict[str, Any] = {"url": self.url, "timeout": 5.0}
        if self.pki is not None:
            values |= {
                "cert_file": str(self.pki.client.cert),
                "key_file": str(self.pki.client.key),
                "ca_file": str(self.pki.authority.bundle),
            }
        return ClientConfig(**(values | overrides))

    # -- the test API ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30,
    ) -> tuple[int, bytes]:
        host, port = self.base_url.split("://", 1)[1].rsplit(":", 1)
        conn: http.client.HTTPConnection
        if self.pki is not None:
            conn = http.client.HTTPSConnection(host, int(port), timeout=timeout, context=self.tls_context())
        else:
            conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def tls_context(self, client: Issued | None = None) -> ssl.SSLContext:
        assert self.pki is not None
        context = ssl.create_default_context(cafile=str(self.pki.authority.bundle))
        issued = client or self.pki.client
        context.load_cert_chain(str(issued.cert), str(issued.key))
        return context

    def soap(self, body: bytes, action: str | None = None, **headers: str) -> tuple[int, bytes]:
        sent = {"Content-Type": "text/xml; charset=utf-8", **headers}
        if action is not None:
            sent["SOAPAction"] = f'"{action}"'
        return self.request("POST", SERVICE_PATH, body, sent)

    def api(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        body = None if payload is None else json.dumps(payload).encode()
        status, data = self.request(method, f"/_stub/{path}", body)
        return status, json.loads(data)

    def _ok(self, method: str, path: str, payload: Any = None) -> Any:
        status, data = self.api(method, path, payload)
        assert status == 200, data
        return data

    def configure(self, **spec: Any) -> dict[str, Any]:
        return self._ok("POST", "config", spec)

    def set_population(self, residents: Sequence[str] | str) -> dict[str, Any]:
        """The personnummer EP finds in the population register ("*": every valid one)."""
        return self.configure(residents=residents if isinstance(residents, str) else list(residents))

    def set_unit_offers(self, unit_offer_ids: Sequence[str] | str) -> dict[str, Any]:
        return self.configure(
            unit_offer_ids=unit_offer_ids if isinstance(unit_offer_ids, str) else list(unit_offer_ids)
        )

    def set_limit(self, seconds: float) -> dict[str, Any]:
        return self.configure(limit_seconds=seconds)

    def set_faults(self, **spec: Any) -> dict[str, Any]:
        """POST /_stub/control: mode ok|down|slow|technical, delay_seconds, remaining, fraction, seed, operations."""
        return self._ok("POST", "control", spec)

    def reset(self) -> None:
        self._ok("POST", "reset", {})

    def given(self, personal_number: str | None = None) -> list[dict[str, Any]]:
        """The offers still given (oldest first), of one resident when named."""
        return self._ok("GET", "given" if personal_number is None else f"given/{quote(personal_number)}")

    def state(self) -> dict[str, Any]:
        return self._ok("GET", "state")

    def requests(self) -> list[dict[str, Any]]:
        return self._ok("GET", "requests")

    # -- the process ----------------------------------------------------------------------------

    def output(self) -> str:
        return "\n".join((self.log_dir / f"ep-stub.{s}").read_text(errors="replace")[-10_000:] for s in ("out", "err"))

    def stop(self) -> None:
        stop_group(self.process, 10)


def start_ep_stub(
    log_dir: Path, pki: EpPki | None = None, args: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> EpStub:
    """``python -m egen_provhantering.stub`` on a free port, healthy; under mutual TLS when `pki` is given."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "egen_provhantering.stub", "--host", "127.0.0.1", "--port", str(port), *args]
    if pki is not None:
        command += ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key)]
        command += ["--client-ca", str(pki.authority.bundle)]
    with open(log_dir / "ep-stub.out", "wb") as out, open(log_dir / "ep-stub.err", "wb") as err:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=subprocess_env(dict(env or {})),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    stub = EpStub(f"{'https' if pki else 'http'}://127.0.0.1:{port}", process, log_dir, pki)
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            pytest.fail(f"the EP stub exited with {process.returncode}\n{stub.output()}", pytrace=False)
        with contextlib.suppress(OSError, http.client.HTTPException):
            if stub.request("GET", "/health", timeout=1) == (200, b"ok\n"):
                return stub
        if time.monotonic() > deadline:
            stub.stop()
            pytest.fail(f"the EP stub was not healthy within {STARTUP_SECONDS:.0f} s\n{stub.output()}", pytrace=False)
        time.sleep(0.1)


@contextlib.contextmanager
def running_ep_stub(
    log_dir: Path, pki: EpPki | None = None, args: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Iterator[EpStub]:
    """:func:`start_ep_stub`, stopped when the block ends."""
    stub = start_ep_stub(log_dir, pki, args, env)
    try:
        yield stub
    finally:
        stub.stop()


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ep_stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EpStub]:
    with running_ep_stub(tmp_path_factory.mktemp("ep-stub")) as stub:
        yield stub


@pytest.fixture
def ep(ep_stub: EpStub) -> EpStub:
    ep_stub.reset()
    return ep_stub


@pytest.fixture(scope="session")
def ep_pki(tmp_path_factory: pytest.TempPathFactory) -> EpPki:
    return make_pki(tmp_path_factory.mktemp("ep-pki"))


@pytest.fixture(scope="session")
def ep_tls_stub(tmp_path_factory: pytest.TempPathFactory, ep_pki: EpPki) -> Iterator[EpStub]:
    with running_ep_stub(tmp_path_factory.mktemp("ep-tls-stub"), ep_pki) as stub:
        yield stub


@pytest.fixture
def ep_tls(ep_tls_stub: EpStub) -> EpStub:
    ep_tls_stub.reset()
    return ep_tls_stub
