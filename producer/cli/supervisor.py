"""Helper processes that `tidbok run` starts beside the server and stops when it stops."""

from __future__ import annotations

import http.client
import logging
import os
import subprocess
import time
from types import TracebackType
from urllib.parse import urlsplit

log = logging.getLogger("tidbok")


class Children:
    """Start processes, wait for their health check, and stop them all (SIGTERM, then SIGKILL)."""

    def __init__(self, stop_seconds: float = 10.0) -> None:
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._stop_seconds = stop_seconds

    def start(self, name: str, command: list[str], env: dict[str, str], health: str | None = None) -> None:
        process = subprocess.Popen(command, env={**os.environ, **env})
        self._processes.append((name, process))
        if health is not None:
            self._wait_healthy(name, process, health)
        log.info("%s started (pid %d)", name, process.pid)

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

    def __enter__(self) -> Children:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for _, process in self._processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + self._stop_seconds
        for name, process in reversed(self._processes):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", name)
                process.kill()
                process.wait()
