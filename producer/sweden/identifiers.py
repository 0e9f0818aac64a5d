"""Validation of the identifiers the producer receives: HSA-ids and personnummer.

Reasons returned here end up in SOAP faults and logs, so they never contain the
identifier itself; use :func:`mask_personnummer` when a number must be logged.
"""

from __future__ import annotations

import re
from datetime import date

__all__ = [
    "check_subject_of_care_id",
    "is_reserve_number",
    "is_valid_hsa_id",
    "mask_personnummer",
    "mask_personnummer_in_text",
    "normalise_hsa_id",
    "withhold_personnummer_in_text",
]

HSA_ID_MAX_LENGTH = 31
# Explicit ASCII classes: \d and str.isdigit() would also accept e.g. Arabic-Indic digits.
_HSA_ID_RE = re.compile(r"[Ss][Ee][0-9]{10,12}-[A-Za-z0-9]+")
# Schema form of a subject-of-care id; a letter in position 9 marks a local reserve number.
_PERSONNUMMER_RE = re.compile(r"[0-9]{8}[0-9pPtTfF][0-9]{3}")
_DIGITS_RE = re.compile(r"[0-9]{12}")
# A personnummer, samordningsnummer or reserve number inside free text (a log line, a fault): 12
# characters from 19/20 (the hyphen optional) or 10 with - or + ("+": 100 years or older). Never
# next to another digit, so HSA-ids (SE2321000016-A100), timestamps and longer numbers stay; nor
# inside a word or a hyphenated id, so request ids (fc132644-1234-5678-…, a UUID) stay whole. A
# letter escaped by a backslash (JSON's "\n") is not a word.
_IN_TEXT = re.compile(
    r"(?<![0-9-])(?<!(?<!\\)[A-Za-z])((?:19|20)[0-9]{6}-?|[0-9]{6}[-+])[0-9pPtTfF][0-9]{3}(?![0-9A-Za-z]|-[0-9A-Za-z])"
)
# Samordningsnummer (coordination numbers) add this to the day of birth.
_SAMORDNING_OFFSET = 60


def normalise_hsa_id(value: str) -> str:
    """Strip and upper-case an HSA-id, since HSA-ids compare case-insensitively."""
    return value.strip().upper()


def is_valid_hsa_id(value: str) -> bool:
    """Whether ``value`` is ``SE`` + 10-12 digits + ``-`` + ASCII letters/digits, at most 31 chars.

    Case is ignored but whitespace is not: normalise wire input first.
    """
    return len(value) <= HSA_ID_MAX_LENGTH and _HSA_ID_RE.fullmatch(value) is not None


def _luhn_check_digit(nine_digits: str) -> int:
    """Luhn check digit over YYMMDDNNN, weights 2,1,2,... with digit sums of the products."""
    total = 0
    for index, char in enumerate(nine_digits):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10


def check_subject_of_care_id(value: str) -> str | None:
    """Return None if ``value`` is an acceptable 12-character personnummer, else a short reason.

    All-digit numbers must carry a real birth date (day + 60 for samordningsnummer)
    and a correct Luhn check digit. Reserve numbers (letter in position 9) are local
    and have no fixed structure beyond the schema form, so only that is checked.
    The reason never includes the number: it is personal data and goes into faults.
    """
    if not isinstance(value, str) or len(value) != 12:
        return "subject of care id must be 12 characters (YYYYMMDDNNNC)"
    if _PERSONNUMMER_RE.fullmatch(value) is None:
        return "subject of care id must be 12 digits, or a reserve number with P, T or F in position 9"
    if _DIGITS_RE.fullmatch(value) is None:
        return None  # reserve number: format only

    year, month, day = int(value[0:4]), int(value[4:6]), int(value[6:8])
    if day > _SAMORDNING_OFFSET:
        day -= _SAMORDNING_OFFSET
    try:
        date(year, month, day)
    except ValueError:
        return "subject of care id does not contain a valid date of birth"
    if _luhn_check_digit(value[2:11]) != int(value[11]):
        return "subject of care id has an incorrect check digit"
    return None


def is_reserve_number(value: str) -> bool:
    """Whether ``value`` contains a letter, i.e. is a local reserve number.

    Reserve numbers are only meaningful within one care provider and must never be
    published to the engagement index. Any letter counts, to err on the side of not publishing.
    """
    return any(char.isalpha() for char in value)


def mask_personnummer(value: str) -> str:
    """Mask a personnummer for logs, keeping only the birth date: ``19121212-****``.

    Anything not of the 12-character schema form is masked completely, as its
    structure (and so which part is safe to show) is unknown.
    """
    if isinstance(value, str) and _PERSONNUMMER_RE.fullmatch(value) is not None:
        return f"{value[:8]}-****"
    return "****"


def mask_personnummer_in_text(text: str) -> str:
    """Every number in `text` masked like :func:`mask_personnummer`: 19121212-1212 and 191212121212
    → 19121212-****, 121212+1212 → 121212+****."""
    return _IN_TEXT.sub(lambda m: m.group(1) + ("" if m.group(1)[-1] in "-+" else "-") + "****", text)


def withhold_personnummer_in_text(text: str) -> str:
    """Every number in `text` replaced by "value withheld" (for faults, which carry no patient data)."""
    return _IN_TEXT.sub("value withheld", text)
