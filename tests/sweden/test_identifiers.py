"""Tests for producer.sweden.identifiers: HSA-ids and personnummer."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer.sweden.identifiers import (
    check_subject_of_care_id,
    is_reserve_number,
    is_valid_hsa_id,
    mask_personnummer,
    normalise_hsa_id,
)


def reference_check_digit(nine: str) -> int:
    """Independent Luhn: double every other digit from the left, sum the digits of the results."""
    digits = "".join(str(int(c) * 2) if i % 2 == 0 else c for i, c in enumerate(nine))
    return -sum(int(c) for c in digits) % 10


# --- personnummer ------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "191212121212",  # Skatteverket's test number
        "196408233234",
        "197010632391",  # samordningsnummer: day 63 -> 3 October
        "200002296127",  # leap day (2000 is a leap year)
    ],
)
def test_valid_personnummer(number: str) -> None:
    assert check_subject_of_care_id(number) is None


def test_wrong_check_digit_rejected() -> None:
    reason = check_subject_of_care_id("191212121213")
    assert reason is not None and "check digit" in reason


@pytest.mark.parametrize(
    "number",
    [
        "191213121212",  # month 13
        "191200121212",  # month 0
        "191212001212",  # day 0
        "191202301212",  # 30 February
        "190002291212",  # 1900 is not a leap year
        "191212321212",  # day 32 is neither a date nor a samordningsnummer
        "191212601212",  # day 60 = samordning day 0
        "000001011212",  # year 0
    ],
)
def test_invalid_birth_date_rejected(number: str) -> None:
    nine = number[2:11]
    fixed = number[:11] + str(reference_check_digit(nine))  # so only the date can be at fault
    reason = check_subject_of_care_id(fixed)
    assert reason is not None and "date" in reason


@pytest.mark.parametrize("day", range(61, 92))
def test_samordningsnummer_days_61_to_91_accepted(day: int) -> None:
    prefix = f"197001{day:02d}239"  # January has 31 days, so 61..91 are all real dates
    number = prefix + str(reference_check_digit(prefix[2:]))
    assert check_subject_of_care_id(number) is None


def test_samordningsnummer_day_92_rejected() -> None:
    prefix = "19700192239"
    number = prefix + str(reference_check_digit(prefix[2:]))
    assert check_subject_of_care_id(number) is not None


def test_samordningsnummer_day_must_be_real_in_its_month() -> None:
    prefix = "19700291239"  # 31 February + 60
    assert check_subject_of_care_id(prefix + str(reference_check_digit(prefix[2:]))) is not None


@pytest.mark.parametrize("number", ["19800101T123", "19800101p123", "19800101F999", "20991399T000"])
def test_reserve_numbers_pass_format_check_only(number: str) -> None:
    assert check_subject_of_care_id(number) is None
    assert is_reserve_number(number)


@pytest.mark.parametrize(
    "number",
    [
        "19521234TA3C",  # letters outside position 9
        "19800101X123",  # only P, T, F mark a reserve number
        "19121212-1212",  # 13 characters
        "1912121212",  # 10-digit form is not the schema form
        "19121212121",
        "1912121212121",
        "",
        " 191212121212",
        "١٩١٢١٢١٢١٢١٢",  # Arabic-Indic digits are isdigit() but not [0-9]
        "19121212121a",
    ],
)
def test_malformed_subject_of_care_ids_rejected(number: str) -> None:
    assert check_subject_of_care_id(number) is not None


@pytest.mark.parametrize("number", ["191212121213", "191213121212", "19521234TA3C", "1912121212"])
def test_reason_never_contains_the_number(number: str) -> None:
    reason = check_subject_of_care_id(number)
    assert reason is not None
    assert number not in reason
    assert number[:8] not in reason
    assert re.search(r"[0-9]{4}", reason) is None


@st.composite
def valid_personnummer(draw: st.DrawFn) -> str:
    birth = draw(st.dates(min_value=date(1800, 1, 1), max_value=date(2099, 12, 31)))
    samordning = draw(st.booleans())
    serial = draw(st.integers(min_value=0, max_value=999))
    day = birth.day + (60 if samordning else 0)
    prefix = f"{birth.year:04d}{birth.month:02d}{day:02d}{serial:03d}"
    return prefix + str(reference_check_digit(prefix[2:]))


@given(valid_personnummer())
def test_generated_valid_numbers_are_accepted(number: str) -> None:
    assert check_subject_of_care_id(number) is None
    assert not is_reserve_number(number)


@given(valid_personnummer(), st.integers(min_value=1, max_value=9))
def test_changed_check_digit_is_rejected(number: str, delta: int) -> None:
    wrong = number[:11] + str((int(number[11]) + delta) % 10)
    reason = check_subject_of_care_id(wrong)
    assert reason is not None and "check digit" in reason


def test_is_reserve_number() -> None:
    assert is_reserve_number("19800101T123")
    assert not is_reserve_number("191212121212")


def test_mask_personnummer() -> None:
    assert mask_personnummer("191212121212") == "19121212-****"
    assert mask_personnummer("19800101T123") == "19800101-****"
    assert mask_personnummer("garbage-1912121212") == "****"
    assert mask_personnummer("") == "****"


# --- HSA-ids -------------------------------------------------------------------------


def test_normalise_hsa_id() -> None:
    assert normalise_hsa_id("se2321000016-a100") == "SE2321000016-A100"
    assert normalise_hsa_id("  SE2321000016-A100\n") == "SE2321000016-A100"
    assert normalise_hsa_id("se2321000016-a100") == normalise_hsa_id("SE2321000016-A100")


@pytest.mark.parametrize(
    "value",
    [
        "SE2321000016-A100",
        "SE2321000016-a100",
        "se2321000016-a100",
        "SE1623210002-1234",  # 10 digits
        "SE162321000255-O11",  # 12 digits
        "SE2321000016-" + "A" * 18,  # exactly 31 characters
    ],
)
def test_valid_hsa_ids(value: str) -> None:
    assert is_valid_hsa_id(value)
    assert is_valid_hsa_id(normalise_hsa_id(value))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "SE2321000016",  # no suffix
        "SE2321000016-",  # empty suffix
        "SE232100001-A100",  # 9 digits
        "SE2321000016123-A100",  # 13 digits
        "SX2321000016-A100",
        "2321000016-A100",
        "SE2321000016_A100",
        "SE2321000016-A10Ö",
        "SE2321000016-Aå",
        "SE2321000016-ä1",
        "SE2321000016-user@x",
        "SE2321000016-A 100",
        " SE2321000016-A100",  # whitespace must be normalised away first
        "SE2321000016-A100\n",
        "SE2321000016-" + "A" * 19,  # 32 characters
        "SE２３２１００００１６-A100",  # full-width digits
    ],
)
def test_invalid_hsa_ids(value: str) -> None:
    assert not is_valid_hsa_id(value)
