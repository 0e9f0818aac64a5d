"""Processes a test starts in a session of their own (publishers, stubs): started with their output in
a log, stopped. May import: the standard library only (support.server builds on it).

Each runs in its own process group, so that a stop reaches whatever it spawned (granian's workers)
and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def stop_group(process: subprocess.Popen[bytes], seconds: float) -> None:
    """SIGTERM, then SIGKILL to its group after `seconds`; and SIGKILL to what is left in the group
    (a server's workers), which only reaches processes it spawned."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(seconds)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(seconds)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@dataclass
class LoggedProcess:
    """A process started by :func:`start_logged`: its stdout and stderr in one log file."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-20_000:]

    def stop(self, seconds: float = 15) -> int:
        """SIGTERM: a publisher finishes the round in hand and exits (SIGKILL after `seconds`)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would: what it was sending stays unmarked, to be sent again."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def start_logged(command: Sequence[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`command` run from the repository with exactly `env`, its output in `log_path`, in its own session."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            list(command),
            cwd=REPO,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
