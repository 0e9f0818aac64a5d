"""Helper processes that `tidbok run` starts beside the server, restarts when they die, and stops
when it stops.

A child that exits while `tidbok run` is not stopping has crashed, whatever its status (a publisher
killed with -9 and one that ran into a bug are the same to the outbox): it is logged as a crash
with its exit status and started again after a backoff that doubles from RESTART_FIRST_SECONDS up
to RESTART_MAX_SECONDS, and starts again from the first once a child has run STABLE_SECONDS.
Children run in their own process group, so a Ctrl-C on the terminal reaches only `tidbok run`,
which stops them itself (SIGTERM, then SIGKILL); and they get SIGTERM if `tidbok run` dies
(PR_SET_PDEATHSIG), so none is left behind. When a child has ended, what is left of its process
group is killed too: granian's workers outlive a master killed with -9, and an EI stub's orphaned
worker would go on answering on the port beside the restarted stub, with the old stub's index.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlsplit

log = logging.getLogger("tidbok.supervisor")

RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
STABLE_SECONDS = 10.0
POLL_SECONDS = 0.2
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover (runs in the child between fork and exec)
    """The child gets SIGTERM when the thread that started it ends (the supervisor's, at stop or death)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _kill_group(pid: int) -> None:
    """Kill what is left of an ended child's process group (its own: process_group=0)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def describe_exit(status: int) -> str:
    """An exit status as an operator reads it: 'exit status 1', or 'exit status -9 (SIGKILL)'."""
    if status < 0:
        try:
            return f"exit status {status} ({signal.Signals(-status).name})"
        except ValueError:
            return f"exit status {status}"
    return f"exit status {status}"


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict[str, str]
    health: str | None
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay: float = 0.0  # the next restart's backoff
    restart_at: float | None = None  # when a crashed child is due to start again
    restarts: int = 0
    pids: list[int] = field(default_factory=list)


class Children:
    """Start processes, wait for their health check, restart the ones that die, stop them all."""

    def __init__(self, stop_seconds: float = 10.0, on_exit: Callable[[str, int, bool], None] | None = None) -> None:
        self._children: list[Child] = []
        self._stop_seconds = stop_seconds
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._on_exit = on_exit  # called with (name, pid, crashed) when a child has ended

    def start(self, name: str, command: list[str], env: dict[str, str], health: str | None = None) -> None:
        child = Child(name, command, env, health)
        self._children.append(child)
        self._spawn(child)
        log.info("%s started (pid %d)", name, child.process.pid if child.process else -1)

    def supervise(self) -> None:
        """Watch the children from now on (a thread), restarting the ones that die."""
        self._thread = threading.Thread(target=self._watch, name="tidbok-supervisor", daemon=True)
        self._thread.start()

    def _spawn(self, child: Child) -> None:
        child.process = subprocess.Popen(
            child.command, env={**os.environ, **child.env}, process_group=0, preexec_fn=_die_with_parent
        )
        child.started = time.monotonic()
        child.pids.append(child.process.pid)
        if child.health is not None:
            self._wait_healthy(child.name, child.process, child.health)

    def _watch(self) -> None:
        while not self._stopping.wait(POLL_SECONDS):
            with self._lock:
                if self._stopping.is_set():
                    return
                for child in self._children:
                    self._check(child)

    def _check(self, child: Child) -> None:
        now = time.monotonic()
        process = child.process
        if process is not None and process.poll() is not None:
            ran = now - child.started
            child.delay = (
                RESTART_FIRST_SECONDS
                if ran >= STABLE_SECONDS or child.delay == 0
                else min(child.delay * 2, RESTART_MAX_SECONDS)
            )
            log.error(
                "%s crashed (pid %d, %s, after %.1f s); restarting in %.1f s",
                child.name,
                process.pid,
                describe_exit(process.returncode),
                ran,
                child.delay,
            )
            _kill_group(process.pid)
            self._ended(child.name, process.pid, True)
            child.process = None
            child.restart_at = now + child.delay
        if child.process is None and child.restart_at is not None and now >= child.restart_at:
            child.restart_at = None
            child.restarts += 1
            try:
                self._spawn(child)
            except (OSError, RuntimeError) as exc:
                log.error("%s could not be restarted: %s", child.name, exc)
                if child.process is not None and child.process.poll() is None:
                    child.process.kill()
                    child.process.wait()
                if child.process is not None:
                    _kill_group(child.process.pid)
                return  # the next turn sees it dead and backs off further
            log.warning("%s restarted (pid %d, restart %d)", child.name, child.process.pid, child.restarts)

    def _ended(self, name: str, pid: int, crashed: bool) -> None:
        if self._on_exit is not None:
            self._on_exit(name, pid, crashed)

    def _wait_healthy(self, name: str, process: subprocess.Popen[bytes], url: str, seconds: float = 20.0) -> None:
        parts = urlsplit(url)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode} while starting")
            try:
                conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=1)
                conn.request("GET", parts.path)
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not become healthy at {url} within {seconds:.0f} s")

    def restarts(self, name: str) -> int:
        return sum(c.restarts for c in self._children if c.name == name)

    def __enter__(self) -> Children:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stopping.set()
        with self._lock:  # no restart from here on
            running = [(c.name, c.process) for c in self._children if c.process is not None]
        for _, process in running:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + self._stop_seconds
        for name, process in reversed(running):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", name)
                process.kill()
                process.wait()
            _kill_group(process.pid)
            self._ended(name, process.pid, False)
            log.info("%s stopped (%s)", name, describe_exit(process.returncode))
