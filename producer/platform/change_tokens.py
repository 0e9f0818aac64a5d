"""Change tokens shared by the server's workers on one host: a memory-mapped table of 4,096 slots,
one per hash bucket of a key (a care unit's HSA-id), plus one for everything at once.

A worker that keeps something derived from the database in memory (producer.interactions.free_slots)
notes a key's token before reading, and trusts its copy only while the token is unchanged. Whoever
changes the data, and knows it, writes a new token after its commit and before it answers: then no
answer given afterwards by any worker on this host can come from the copy made before. A new token
is a fresh random 63-bit value, never an increment, so two writers at
once cannot both write a value somebody already saw (no lock is needed; aligned 8-byte reads and
writes are whole on the machines we run on). Tokens of several keys may share a bucket: that costs
an unneeded reload, never a stale answer. Beside each token is the moment it was written (the
host's monotonic clock, which every process shares), written first: whoever reads the token then
the moment sees a moment no older than the token's. A reader that may read a replica needs it: the
replica must hold everything committed before that moment (producer.platform.replica).

The server creates the file before it starts its workers and names it in TIDBOK_CHANGE_TOKENS;
without it (one process, as in tests and tools) the table is private to the process.
"""

from __future__ import annotations

import mmap
import os
import random
import struct
import time
import zlib

ENVIRONMENT = "TIDBOK_CHANGE_TOKENS"
BUCKETS = 4096
_EVERYTHING = BUCKETS  # the last slot: a token for all keys at once
_SLOT = struct.Struct("<qq")  # the token, then the moment it was written (monotonic nanoseconds)
_TOKEN = struct.Struct("<q")
_MOMENT = struct.Struct("<q")
_SIZE = (BUCKETS + 1) * _SLOT.size


def create_file(path: str) -> None:
    """An empty table at path, for the workers to map (the server calls this before forking)."""
    with open(path, "wb") as f:
        f.write(b"\0" * _SIZE)


class ChangeTokens:
    def __init__(self, path: str | None = None) -> None:
        path = path if path is not None else os.environ.get(ENVIRONMENT)
        if path:
            with open(path, "r+b") as f:
                self._map = mmap.mmap(f.fileno(), _SIZE)
        else:
            self._map = mmap.mmap(-1, _SIZE)

    @staticmethod
    def bucket(key: str) -> int:
        return zlib.crc32(key.encode()) % BUCKETS

    def token(self, key: str) -> tuple[int, int]:
        """The key's token, as a value to compare later: (everything's, the key bucket's)."""
        return (
            _TOKEN.unpack_from(self._map, _EVERYTHING * _SLOT.size)[0],
            _TOKEN.unpack_from(self._map, self.bucket(key) * _SLOT.size)[0],
        )

    def changed_at(self, key: str) -> float:
        """When the key's token (or everything's) was last written, in time.monotonic() seconds; 0 if never."""
        everything = _MOMENT.unpack_from(self._map, _EVERYTHING * _SLOT.size + 8)[0]
        own = _MOMENT.unpack_from(self._map, self.bucket(key) * _SLOT.size + 8)[0]
        return max(everything, own) / 1e9

    def changed(self, key: str) -> None:
        """The key's data changed (and the change is committed)."""
        self._write(self.bucket(key))

    def everything_changed(self) -> None:
        self._write(_EVERYTHING)

    def _write(self, slot: int) -> None:
        _MOMENT.pack_into(self._map, slot * _SLOT.size + 8, time.monotonic_ns())
        _TOKEN.pack_into(self._map, slot * _SLOT.size, random.getrandbits(63))
