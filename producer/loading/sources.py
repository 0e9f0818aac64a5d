"""What a load reads: files by path, or content handed over by the HTTP API (a request body, or a
set-up document it has already parsed). The kind comes from the file name or is given."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

KINDS = {".csv": "csv", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}
CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """``kind`` is csv, yaml or json. Exactly one of path, data (bytes) or document (parsed) is set."""

    name: str
    kind: str
    path: Path | None = None
    data: bytes | None = None
    document: Any = None

    @classmethod
    def file(cls, path: str | Path) -> Source:
        path = Path(path)
        kind = KINDS.get(path.suffix.lower())
        if kind is None:
            raise ValueError(f"{path.name}: unknown kind of file (expected .csv, .yaml, .yml or .json)")
        return cls(path.name, kind, path=path)

    @classmethod
    def csv(cls, name: str, data: bytes) -> Source:
        return cls(name, "csv", data=data)

    @classmethod
    def setup_text(cls, name: str, text: str | bytes, fmt: str = "yaml") -> Source:
        return cls(name, fmt, data=text.encode() if isinstance(text, str) else text)

    @classmethod
    def setup_document(cls, name: str, document: dict) -> Source:
        return cls(name, "json", document=document)

    def size(self) -> int:
        if self.path is not None:
            return self.path.stat().st_size
        return len(self.data or b"")

    def open(self) -> BinaryIO:
        if self.path is not None:
            return self.path.open("rb")
        return io.BytesIO(self.data or b"")

    def chunks(self) -> Iterator[bytes]:
        with self.open() as stream:
            while chunk := stream.read(CHUNK):
                yield chunk

    def text(self) -> str:
        with self.open() as stream:
            return stream.read().decode("utf-8-sig")
