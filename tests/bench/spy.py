"""py-spy for the benchmarks: record processes while a scenario runs, and read the top of a record.

Records are py-spy's raw format (one collapsed stack and its sample count per line), so they can be
read here without a browser, or turned into a flame graph with any collapsed-stack tool.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")


def record(
    folder: Path, targets: Iterable[tuple[str, int]], rate: int = 200, gil: bool = False
) -> list[subprocess.Popen[bytes]]:
    """One `py-spy record` per (label, pid), children included, writing folder/label.txt on SIGINT.
    `gil`: only the thread holding the GIL (where a Python process's CPU goes, not its waits)."""
    folder.mkdir(parents=True, exist_ok=True)
    spies = []
    for label, pid in targets:
        command = ["py-spy", "record", "--nonblocking", "--subprocesses", "-r", str(rate), "-f", "raw"]
        command += ["--gil"] if gil else []
        with open(folder / f"{label}.err", "wb") as err:
            spies.append(
                subprocess.Popen(
                    [*command, "-o", str(folder / f"{label}.txt"), "-p", str(pid)],
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            )
    return spies


def stop(spies: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGINT: py-spy writes its record and exits."""
    spies = list(spies)
    for spy in spies:
        if spy.poll() is None:
            spy.send_signal(signal.SIGINT)
    for spy in spies:
        spy.wait(60)


def _function(frame: str) -> str:
    """'name (path/to/module.py:12)' -> 'name (module.py)': a function, whatever line was running."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    return f"{match[1]} ({Path(match[2]).name})"


def top(path: Path, n: int = 25) -> str:
    """The functions with the most samples: on the CPU themselves (self) and with their callees (total)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        count = int(match[2])
        frames = [_function(f) for f in match[1].split(";") if f]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for function in set(frames):
            total[function] += count
    if not samples:
        return f"{path.name}: no samples"
    rows = [f"{path.name}: {samples} samples"]
    rows += ["  self %:"] + [f"    {100 * c / samples:5.1f}  {f}" for f, c in own.most_common(n)]
    rows += ["  total %:"] + [f"    {100 * c / samples:5.1f}  {f}" for f, c in total.most_common(n)]
    return "\n".join(rows)
