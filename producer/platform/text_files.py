"""Text files people bring (a list of personnummer from Excel, a purpose, the configuration): UTF-8,
or refused with a text that says which line and what to do, never a codec's traceback.

Swedish Excel saves "CSV" in Windows-1252 and "CSV UTF-8" in UTF-8; å, ä and ö are where the first
breaks. Guessing the encoding would misread a file silently, so a file that is not UTF-8 is refused,
as the loader refuses it (producer.loading.csvfile)."""

from __future__ import annotations

ADVICE = (
    "not UTF-8 text (Windows-1252 or Latin-1, as Excel's plain CSV?): save it as 'CSV UTF-8'"
    " / inte UTF-8: spara filen som 'CSV UTF-8 (kommaavgränsad)'"
)


class NotUtf8(ValueError):
    """The text is not UTF-8; the message names the line."""

    def __init__(self, line: int) -> None:
        super().__init__(f"line {line}: {ADVICE}")
        self.line = line


def utf8(data: bytes) -> str:
    """The text of UTF-8 bytes (a BOM is dropped); NotUtf8 names the first line that is not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotUtf8(data[: exc.start].count(b"\n") + 1) from None
