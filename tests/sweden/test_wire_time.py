"""Tests for producer.sweden.wall_time: wire formats, DST edges and round trips."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from producer.sweden.wall_time import (
    STOCKHOLM,
    WireFormatError,
    day_range_bounds,
    format_dt,
    format_ts,
    local_date,
    local_day_bounds,
    parse_dt,
    parse_ts,
)

SPRING_FORWARD = date(2026, 3, 29)
FALL_BACK = date(2026, 10, 25)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _is_second_occurrence(moment: datetime) -> bool:
    """True if the instant falls in the repeated autumn hour's second pass in Stockholm."""
    local = moment.astimezone(STOCKHOLM)
    return local.fold == 1 and local.utcoffset() != local.replace(fold=0).utcoffset()


aware_datetimes = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2100, 12, 31, 23, 59, 59),
    timezones=st.one_of(st.just(UTC), st.just(STOCKHOLM), st.timezones()),
    allow_imaginary=False,
).map(lambda moment: moment.replace(microsecond=0))


# --- round trips -----------------------------------------------------------------


@given(aware_datetimes)
def test_ts_round_trip_is_the_same_instant(moment: datetime) -> None:
    assume(not _is_second_occurrence(moment))
    text = format_ts(moment)
    assert len(text) == 14 and text.isdigit()
    back = parse_ts(text)
    assert back.tzinfo is STOCKHOLM
    # Compare in UTC: == between different tzinfos is False for ambiguous wall times (PEP 495).
    assert _utc(back) == _utc(moment)


@given(st.integers(min_value=0, max_value=3599))
def test_second_occurrence_formats_like_first_and_parses_one_hour_early(offset_s: int) -> None:
    second_pass = datetime(2026, 10, 25, 1, 0, tzinfo=UTC) + timedelta(seconds=offset_s)
    assert _is_second_occurrence(second_pass)
    first_pass = second_pass - timedelta(hours=1)
    assert format_ts(second_pass) == format_ts(first_pass)
    assert _utc(parse_ts(format_ts(second_pass))) == first_pass


@given(st.dates(min_value=date(1000, 1, 1), max_value=date(9999, 12, 31)))
def test_dt_round_trip(d: date) -> None:
    text = format_dt(d)
    assert len(text) == 8
    assert parse_dt(text) == d


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)))
def test_day_bounds_contain_exactly_that_local_day(d: date) -> None:
    start, end = local_day_bounds(d)
    assert local_date(start) == d
    assert local_date(end) == d + timedelta(days=1)
    assert local_date(_utc(end) - timedelta(seconds=1)) == d
    assert local_date(_utc(start) - timedelta(seconds=1)) == d - timedelta(days=1)
    assert timedelta(hours=22) <= _utc(end) - _utc(start) <= timedelta(hours=26)


# --- spring forward: 2026-03-29 02:00 CET -> 03:00 CEST ------------------------------


def test_spring_forward_day_is_23_hours() -> None:
    start, end = local_day_bounds(SPRING_FORWARD)
    assert format_ts(start) == "20260329000000"
    assert format_ts(end) == "20260330000000"
    assert _utc(end) - _utc(start) == timedelta(hours=23)


def test_spring_forward_gap_does_not_exist() -> None:
    with pytest.raises(WireFormatError, match="does not exist in Swedish local time"):
        parse_ts("20260329023000")
    with pytest.raises(WireFormatError):
        parse_ts("20260329020000")
    with pytest.raises(WireFormatError):
        parse_ts("20260329025959")


def test_spring_forward_edges_are_one_second_apart() -> None:
    before = parse_ts("20260329015959")
    after = parse_ts("20260329030000")
    assert _utc(before) == datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC)
    assert _utc(after) == datetime(2026, 3, 29, 1, 0, 0, tzinfo=UTC)
    assert _utc(after) - _utc(before) == timedelta(seconds=1)
    # The pitfall the module docstring warns about: same-tzinfo subtraction is wall-clock.
    assert after - before == timedelta(hours=1, seconds=1)


# --- fall back: 2026-10-25 03:00 CEST -> 02:00 CET ---------------------------------


def test_fall_back_day_is_25_hours() -> None:
    start, end = local_day_bounds(FALL_BACK)
    assert _utc(start) == datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    assert _utc(end) == datetime(2026, 10, 25, 23, 0, tzinfo=UTC)
    assert _utc(end) - _utc(start) == timedelta(hours=25)


def test_fall_back_ambiguous_wall_time_is_first_occurrence() -> None:
    moment = parse_ts("20261025023000")
    assert moment.fold == 0
    assert moment.utcoffset() == timedelta(hours=2)
    assert _utc(moment) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_fall_back_both_occurrences_format_alike() -> None:
    assert format_ts(datetime(2026, 10, 25, 0, 30, tzinfo=UTC)) == "20261025023000"
    assert format_ts(datetime(2026, 10, 25, 1, 30, tzinfo=UTC)) == "20261025023000"


def test_event_across_fall_back_uses_utc_arithmetic() -> None:
    start = parse_ts("20261025024500")  # 02:45 CEST, first pass
    end = (_utc(start) + timedelta(minutes=30)).astimezone(STOCKHOLM)
    assert end.utcoffset() == timedelta(hours=1)  # CET, second pass
    assert format_ts(end) == "20261025021500"
    assert _utc(end) - _utc(start) == timedelta(minutes=30)
    # Adding in local wall time instead would give 03:15 CET, really 90 minutes later.
    naive_end = start + timedelta(minutes=30)
    assert format_ts(naive_end) == "20261025031500"
    assert _utc(naive_end) - _utc(start) == timedelta(minutes=90)


# --- other helpers -------------------------------------------------------------------


def test_day_range_bounds_is_inclusive_and_half_open() -> None:
    start, end = day_range_bounds(date(2026, 3, 28), date(2026, 3, 29))
    assert start == local_day_bounds(date(2026, 3, 28))[0]
    assert end == local_day_bounds(date(2026, 3, 29))[1]
    assert _utc(end) - _utc(start) == timedelta(hours=47)
    single = day_range_bounds(FALL_BACK, FALL_BACK)
    assert single == local_day_bounds(FALL_BACK)
    with pytest.raises(ValueError):
        day_range_bounds(date(2026, 1, 2), date(2026, 1, 1))


def test_local_date_uses_stockholm_calendar() -> None:
    assert local_date(datetime(2026, 6, 30, 22, 30, tzinfo=UTC)) == date(2026, 7, 1)
    assert local_date(datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=5)))) == date(2025, 12, 31)
    with pytest.raises(ValueError):
        local_date(datetime(2026, 1, 1))


def test_format_ts_converts_other_zones_and_drops_microseconds() -> None:
    moment = datetime(2026, 7, 1, 9, 15, 30, 999_999, tzinfo=timezone(timedelta(hours=-4)))
    assert format_ts(moment) == "20260701151530"
    with pytest.raises(ValueError):
        format_ts(datetime(2026, 7, 1, 9, 15))


def test_format_dt_pads_and_refuses_datetimes() -> None:
    assert format_dt(date(987, 6, 5)) == "09870605"
    with pytest.raises(TypeError):
        format_dt(datetime(2026, 1, 1, tzinfo=UTC))


def test_parse_dt_valid() -> None:
    assert parse_dt("20240229") == date(2024, 2, 29)


# --- invalid wire values ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2026010112000",  # 13 digits
        "202601011200000",  # 15 digits
        "2026010112000A",
        "abcdefghijklmn",
        "2026-01-01T12:0",
        " 20260101120000",
        "20260101120000\n",
        "２０２６０１０１１２００００",  # full-width digits: isdigit() but not [0-9]
        "",
        "20260231120000",  # 31 February
        "20261301120000",  # month 13
        "20260101240000",  # hour 24
        "20260101126000",  # minute 60
        "20260101120060",  # second 60
        "00000101120000",  # year 0
    ],
)
def test_parse_ts_rejects(text: str) -> None:
    with pytest.raises(WireFormatError):
        parse_ts(text)


def test_parse_ts_message_names_the_problem() -> None:
    with pytest.raises(WireFormatError, match="14 digits"):
        parse_ts("2026010112000")
    with pytest.raises(WireFormatError, match="not a valid calendar"):
        parse_ts("20260231120000")


def test_error_message_never_echoes_long_input() -> None:
    hostile = "<x>" + "A" * 10_000
    with pytest.raises(WireFormatError) as excinfo:
        parse_ts(hostile)
    assert "AAAA" not in str(excinfo.value)
    assert len(str(excinfo.value)) < 120
    with pytest.raises(WireFormatError) as excinfo:
        parse_dt(hostile)
    assert "AAAA" not in str(excinfo.value)


@pytest.mark.parametrize("text", ["2026010", "202601011", "20260230", "20261301", "20260100", "2026O101"])
def test_parse_dt_rejects(text: str) -> None:
    with pytest.raises(WireFormatError):
        parse_dt(text)


def test_wire_format_error_is_value_error() -> None:
    assert issubclass(WireFormatError, ValueError)
