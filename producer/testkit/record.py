"""Recording: with TIDBOK_RECORD_DIR set, the producer writes each SOAP request it read and the answer
it gave (a response or a fault) as a pair of files that `tidbok fixtures replay` reads:

    <dir>/<UTC time>-<process>-<n>-<Interaction>_v1.1-envelope__request.xml
    <dir>/<UTC time>-<process>-<n>-<Interaction>_v1.1-envelope__response.xml

Names sort in the order the calls arrived (each worker process numbers its own), so a recorded flow
replays in order. The request is kept byte for byte, with one comment added after the XML
declaration: ``<!-- tidbok-record interaction=… recorded=… demo-week=YYYY-MM-DD -->``, the Monday of
the demo week (TIDBOK_DEMO_DATE's, else the week of the call), from which replay moves the dates.
With TIDBOK_RECORD_MASK, personnummer are masked (producer.testkit.masking) and the files are
written anew from the parsed XML. Each file is written to a temporary name and renamed, so a
replay never reads half a file. A failure to write is logged and never fails the call.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from producer.sweden.wall_time import STOCKHOLM
from producer.testkit.files import RECORD_MARK
from producer.testkit.masking import mask_document

log = logging.getLogger("tidbok.record")
_UTF8_BOM = b"\xef\xbb\xbf"


class Recorder:
    """Writes request/answer pairs into one folder; shared by a worker's threads."""

    def __init__(self, directory: Path, mask: bool = False, demo_date: date | None = None) -> None:
        self.directory = directory
        self.mask = mask
        self.demo_date = demo_date
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._warned = False

    def record(self, interaction: str, request: bytes, answer: bytes) -> None:
        """Write the pair; never raises (recording must not change what the caller gets)."""
        now = datetime.now(UTC)
        with self._lock:
            number = next(self._numbers)
        stem = f"{now:%Y%m%dT%H%M%S.%f}Z-{os.getpid()}-{number:06d}-{interaction}_v1.1-envelope__"
        try:
            if self.mask:
                request, answer = mask_document(request), mask_document(answer)
            self.directory.mkdir(parents=True, exist_ok=True)
            self._write(f"{stem}request.xml", self._marked(request, interaction, now))
            self._write(f"{stem}response.xml", answer)
        except OSError as exc:
            if not self._warned:  # once per process: a full disk must not flood the log
                self._warned = True
                log.warning("cannot record SOAP calls in %s: %s", self.directory, exc)

    def _marked(self, request: bytes, interaction: str, now: datetime) -> bytes:
        """The request with the mark comment after its XML declaration (or first, without one)."""
        local = now.astimezone(STOCKHOLM)
        day = self.demo_date or local.date()
        monday = day - timedelta(days=day.weekday())
        mark = (
            f"<!-- {RECORD_MARK} interaction={interaction} recorded={local.isoformat(timespec='seconds')}"
            f" demo-week={monday.isoformat()}{' masked' if self.mask else ''} -->"
        ).encode()
        bom = _UTF8_BOM if request.startswith(_UTF8_BOM) else b""
        rest = request[len(bom) :]
        if rest.startswith(b"<?xml"):
            end = rest.find(b"?>")
            if end < 0:
                return request  # not well-formed: kept as it came
            return bom + rest[: end + 2] + b"\n" + mark + rest[end + 2 :]
        if rest.lstrip().startswith(b"<"):
            return bom + mark + b"\n" + rest
        return request  # e.g. UTF-16: an ASCII comment would break it

    def _write(self, name: str, data: bytes) -> None:
        final = self.directory / name
        temporary = self.directory / f".{name}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, final)
