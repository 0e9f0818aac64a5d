"""`tidbok run` with Egen provhantering configured (TIDBOK_EP_URL) starts an EP publisher beside the
EI publisher, restarts it when it dies, and the server's /metrics shows its figures; without
TIDBOK_EP_URL there is none (tests/cli/test_supervision.py). Real processes: `tidbok run` on a
database of its own, the EP stub over HTTP, a campaign queued with `tidbok staff offer-batch`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from support import http_get
from support.ep import EpStub
from support.residents import Residents
from support.server import DATABASE_PREFIX, PYTHON, REPO, free_port, fresh_database, subprocess_env

MARKER = "producer ep publish"
new_resident = Residents(date(1949, 9, 1), "146")


def ep_publisher(pid: int) -> int | None:
    """The EP publisher `tidbok run` (pid) started, from /proc."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and MARKER in command:
            return int(stat.parent.name)
    return None


def wait_for(what: str, check: Callable[[], object], output: Callable[[], str], seconds: float = 60) -> object:
    deadline = time.monotonic() + seconds
    while not (result := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {seconds:.0f} s\n{output()}", pytrace=False)
        time.sleep(0.1)
    return result


@dataclass
class Run:
    process: subprocess.Popen[bytes]
    base_url: str
    database_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-20_000:]

    def metric(self, name: str) -> float | None:
        status, _, body = http_get(f"{self.base_url}/metrics")
        assert status == 200
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return None


@pytest.fixture(scope="module")
def run(pg_admin_url: str, ep_stub: EpStub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    url = fresh_database(pg_admin_url, f"{DATABASE_PREFIX}epsupervised")
    port = free_port()
    log = tmp_path_factory.mktemp("ep-run") / "run.log"
    env = {
        "DATABASE_URL": url,
        "TIDBOK_PORT": str(port),
        "TIDBOK_EI_STUB_PORT": str(free_port()),
        "TIDBOK_WORKERS": "1",
        "TIDBOK_EP_URL": ep_stub.url,
        "TIDBOK_EP_POLL_MS": "50",
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [PYTHON, "-m", "producer", "run"], cwd=REPO, env=subprocess_env(env), stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    running = Run(process, f"http://127.0.0.1:{port}", url, log)

    def ready() -> bool:
        with contextlib.suppress(OSError):
            return http_get(f"{running.base_url}/ready", timeout=5)[0] == 200
        return False

    try:
        wait_for("tidbok run ready", ready, running.output, 120)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def offer(run: Run, resident: str) -> None:
    """`tidbok staff offer-batch` of one resident (the list on standard input) into the campaign;
    its first run names who gives the offer, later ones get the campaign's terms."""
    done = subprocess.run(
        [PYTHON, "-m", "producer", "staff", "offer-batch", "--staff", "SE2321000016-S061", "--unit",
         "SE2321000016-A200", "--campaign", "supervised", "--time-type", "PROV", "-"],
        cwd=REPO, env=subprocess_env({"DATABASE_URL": run.database_url, "TIDBOK_EP_GIVER_ID": "SE2321000016-RCC1",
                                      "TIDBOK_EP_GIVER_FIRST_NAME": "Screeningverksamheten"}),
        input=f"{resident}\n".encode(), capture_output=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()


def test_tidbok_run_publishes_offers_and_restarts_its_ep_publisher(run: Run, ep: EpStub) -> None:
    first = wait_for("an EP publisher", lambda: ep_publisher(run.process.pid), run.output)
    assert "EP publisher started" in run.output()
    resident = new_resident()
    offer(run, resident)
    wait_for("the offer given", lambda: ep.given(resident), run.output)
    assert (run.metric("tidbok_ep_publisher_connections") or 0) >= 1

    os.kill(first, signal.SIGKILL)  # type: ignore[arg-type]
    wait_for("the EP publisher restarted", lambda: ep_publisher(run.process.pid) not in (None, first), run.output)
    assert f"EP publisher crashed (pid {first}, exit status -9 (SIGKILL)" in run.output()
    assert (run.metric('tidbok_child_crashes_total{child="EP publisher"}') or 0) >= 1
    again = new_resident()
    offer(run, again)
    wait_for("the next offer given by the new publisher", lambda: ep.given(again), run.output)
