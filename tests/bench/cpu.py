"""CPU time of the processes taking part in a bench scenario: the server, PostgreSQL, the load
generator and the rest of the machine, so each figure comes with what it cost and a scenario's
ceiling on this machine can be read off (all cores busy with nothing but it)."""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil
import psycopg

T = TypeVar("T")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants, living or reaped."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = process.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores, not idle, not waiting for I/O)."""
    t = psutil.cpu_times()
    return sum(getattr(t, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))


def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's own process, when it runs on this machine and its folder is readable."""
    with psycopg.connect(url, autocommit=True) as conn:
        folder = conn.execute("SELECT current_setting('data_directory')").fetchone()[0]
    with contextlib.suppress(OSError, ValueError):
        return int((Path(folder) / "postmaster.pid").read_text().split()[0])
    return None


def _reaped_children() -> float:
    """CPU seconds of this process's children that have ended: the load generator's processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(
    server_pid: int, postgres_pid: int | None, run: Callable[[], T], requests: Callable[[T], int]
) -> tuple[T, dict[str, Any]]:
    """run() (one scenario of the load generator, whose processes end with it) and the CPU each party
    spent per request, in µs: server (its processes), postgres (when it runs here), load generator,
    others (the rest of the machine's busy time: other work, this script); and the ceiling in
    requests/s on this machine's cores were they busy with the scenario's three parties alone."""
    server, postgres = tree_cpu(server_pid), tree_cpu(postgres_pid) if postgres_pid else 0.0
    generator, busy = _reaped_children(), machine_busy()
    result = run()
    n = max(requests(result), 1)
    spent = {
        "server": tree_cpu(server_pid) - server,
        "postgres": tree_cpu(postgres_pid) - postgres if postgres_pid else 0.0,
        "load_generator": _reaped_children() - generator,
    }
    spent["others"] = max(0.0, machine_busy() - busy - sum(spent.values()))
    per_request = {k: round(v / n * 1e6) for k, v in spent.items()}
    total = per_request["server"] + per_request["postgres"] + per_request["load_generator"]
    return result, {
        "cpu_us_per_request": per_request,
        "ceiling_req_s": round((os.cpu_count() or 1) * 1e6 / total) if total else None,
    }


def describe(figures: dict[str, Any]) -> str:
    """One line: the CPU per request by party, and the ceiling."""
    cpu = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in figures["cpu_us_per_request"].items())
    return f"CPU µs per request: {cpu}; ceiling on {os.cpu_count()} cores {figures['ceiling_req_s']:,} req/s"
