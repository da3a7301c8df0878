"""Schedule times: cron patterns (parsing, matching, DST) and anchored interval ticks."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from joobq_sql.errors import ConfigurationError
from joobq_sql.scheduler.cron import CronExpression
from joobq_sql.scheduler.intervals import (
    UNIX_EPOCH,
    interval_ticks,
    parse_interval,
    tick_at_or_before,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ticks(pattern: str, start: datetime, end: datetime, tz: str = "UTC") -> list[datetime]:
    return CronExpression(pattern, tz).ticks_between(start, end, limit=10_000)


# --- parsing ---------------------------------------------------------------------------------

VALID_PATTERNS = [
    "* * * * *",
    "0 0 * * *",
    "*/15 * * * *",
    "0-59/7 0-23/5 * * *",
    "5/20 * * * *",
    "1,2,3 4,5 6,7 8,9 0,1",
    "0 9-17 * * MON-FRI",
    "0 0 1 jan,Jul *",
    "0 0 * * sun",
    "0 0 * * 7",
    "0 0 * * 5-7",
    "0 0 29 2 *",
    "0 0 31 1-12 *",
    "0 0 30 2 MON",
    "*/10 * * * * *",
    "59 59 23 31 12 6",
    "  0   12  *  *  *  ",
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@HOURLY",
]


@pytest.mark.parametrize("pattern", VALID_PATTERNS)
def test_valid_patterns_parse(pattern: str) -> None:
    expression = CronExpression(pattern)
    assert expression.pattern == pattern
    assert expression.next_after(utc(2026, 1, 1)) > utc(2026, 1, 1)


INVALID_PATTERNS = [
    ("61 * * * *", "minute 61 is out of range 0-59"),
    ("* 24 * * *", "hour 24 is out of range 0-23"),
    ("* * 0 * *", "day-of-month 0 is out of range 1-31"),
    ("* * 32 * *", "day-of-month 32 is out of range 1-31"),
    ("* * * 13 *", "month 13 is out of range 1-12"),
    ("* * * 0 *", "month 0 is out of range 1-12"),
    ("* * * * 8", "day-of-week 8 is out of range 0-7"),
    ("60 * * * * *", "second 60 is out of range 0-59"),
    ("*/0 * * * *", "minute step 0 in '*/0' must be at least 1"),
    ("* 1-5/0 * * *", "hour step 0"),
    ("*/x * * * *", "minute step 'x'"),
    ("*/ * * * *", "minute step ''"),
    ("*/-2 * * * *", "minute step '-2'"),
    ("5-1 * * * *", "minute range 5-1 is reversed"),
    ("* * * * FRI-MON", "day-of-week range FRI-MON is reversed"),
    ("x * * * *", "minute 'x' is not a number (valid: 0-59)"),
    ("MON * * * *", "minute 'MON' is not a number"),
    ("* * * FOO *", "month 'FOO' is not a number (valid: 1-12 or JAN-DEC)"),
    ("* * * * BAR", "day-of-week 'BAR' is not a number (valid: 0-7"),
    ("* * * JAN-FOO *", "month 'FOO'"),
    ("1-2-3 * * * *", "minute '2-3' is not a number"),
    ("/5 * * * *", "minute has an empty value"),
    ("1,,2 * * * *", "minute has an empty value"),
    ("1, * * * *", "minute has an empty value"),
    ("-1 * * * *", "minute has an empty value"),
    ("+1 * * * *", "minute '+1' is not a number"),
    ("٣ * * * *", "minute '٣' is not a number"),
    ("* * *", "expected 5 fields"),
    ("* * * * * * *", "got 7"),
    ("", "it is empty"),
    ("   ", "it is empty"),
    ("@often", "unknown macro"),
    ("@daily extra", "unknown macro"),
    ("0 0 30 2 *", "day-of-month 30 never occurs in month FEB"),
    ("0 0 31 2 *", "day-of-month 31 never occurs in month FEB"),
    ("0 0 31 4,6,9,11 *", "never occurs in month APR, JUN, SEP, NOV"),
    ("0 0 30,31 feb *", "can never fire"),
]


@pytest.mark.parametrize(("pattern", "fragment"), INVALID_PATTERNS)
def test_invalid_patterns_are_refused_naming_the_field(pattern: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        CronExpression(pattern)
    message = str(caught.value)
    assert message.startswith(f"cron pattern {pattern!r}: ")
    assert fragment in message


def test_the_error_message_matches_the_documented_form() -> None:
    with pytest.raises(
        ConfigurationError, match=r"^cron pattern '61 \* \* \* \*': minute 61 is out of range 0-59$"
    ):
        CronExpression("61 * * * *")


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        CronExpression("bad")


def test_a_non_string_pattern_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="must be a string"):
        CronExpression(5)  # type: ignore[arg-type]


@pytest.mark.parametrize("tz", ["Mars/Base", "", "../etc/passwd", "Europe/"])
def test_an_unknown_timezone_is_refused_by_name(tz: str) -> None:
    with pytest.raises(ConfigurationError, match=f"unknown timezone {tz!r}"):
        CronExpression("* * * * *", tz)


def test_the_timezone_must_be_a_name() -> None:
    with pytest.raises(ConfigurationError, match="IANA name"):
        CronExpression("* * * * *", ZoneInfo("UTC"))  # type: ignore[arg-type]


# --- next_after --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "moment", "expected"),
    [
        ("* * * * *", utc(2026, 5, 1, 10, 0), utc(2026, 5, 1, 10, 1)),
        ("* * * * *", utc(2026, 5, 1, 10, 0, 0, 1), utc(2026, 5, 1, 10, 1)),
        ("* * * * *", utc(2026, 5, 1, 10, 0, 59, 999_999), utc(2026, 5, 1, 10, 1)),
        ("*/15 * * * *", utc(2026, 5, 1, 10, 7), utc(2026, 5, 1, 10, 15)),
        ("*/15 * * * *", utc(2026, 5, 1, 10, 45), utc(2026, 5, 1, 11, 0)),
        ("5/20 * * * *", utc(2026, 5, 1, 10, 26), utc(2026, 5, 1, 10, 45)),
        ("10-20/5 * * * *", utc(2026, 5, 1, 10, 21), utc(2026, 5, 1, 11, 10)),
        ("0 0 * * *", utc(2026, 12, 31, 23, 59, 59), utc(2027, 1, 1)),
        ("30 9 * * *", utc(2026, 5, 1, 9, 30), utc(2026, 5, 2, 9, 30)),
        ("0 0 1 * *", utc(2026, 1, 31), utc(2026, 2, 1)),
        ("0 0 31 * *", utc(2026, 4, 1), utc(2026, 5, 31)),
        ("0 0 29 2 *", utc(2026, 1, 1), utc(2028, 2, 29)),
        ("0 0 29 2 *", utc(2096, 3, 1), utc(2104, 2, 29)),
        ("0 12 * * MON-FRI", utc(2026, 5, 1, 12), utc(2026, 5, 4, 12)),  # Fri -> Mon
        ("0 0 * * 0", utc(2026, 5, 1), utc(2026, 5, 3)),
        ("0 0 * * 7", utc(2026, 5, 1), utc(2026, 5, 3)),
        ("0 0 1 JAN *", utc(2026, 1, 1), utc(2027, 1, 1)),
        ("15 14 1 * *", utc(2026, 5, 1, 14, 15), utc(2026, 6, 1, 14, 15)),
        ("59 23 31 12 *", utc(2026, 1, 1), utc(2026, 12, 31, 23, 59)),
    ],
)
def test_next_after_common_patterns(pattern: str, moment: datetime, expected: datetime) -> None:
    assert CronExpression(pattern).next_after(moment) == expected


def test_next_after_is_strictly_after_a_tick() -> None:
    cron = CronExpression("0 * * * *")
    assert cron.next_after(utc(2026, 5, 1, 10)) == utc(2026, 5, 1, 11)


def test_next_after_accepts_any_aware_moment_and_answers_in_utc() -> None:
    moment = datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=5)))  # 07:00Z
    tick = CronExpression("0 8 * * *").next_after(moment)
    assert tick == utc(2026, 5, 1, 8)
    assert tick.tzinfo is UTC


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CronExpression("* * * * *").next_after(datetime(2026, 5, 1))


def test_six_fields_put_seconds_first() -> None:
    cron = CronExpression("*/20 30 9 * * *")
    start = utc(2026, 5, 1)
    assert cron.ticks_between(start, utc(2026, 5, 2), 10) == [
        utc(2026, 5, 1, 9, 30, 0),
        utc(2026, 5, 1, 9, 30, 20),
        utc(2026, 5, 1, 9, 30, 40),
    ]


def test_every_second() -> None:
    cron = CronExpression("* * * * * *")
    assert cron.next_after(utc(2026, 5, 1, 23, 59, 59)) == utc(2026, 5, 2)


def test_five_fields_tick_on_second_zero() -> None:
    assert CronExpression("* * * * *").next_after(utc(2026, 5, 1, 0, 0, 30)) == utc(
        2026, 5, 1, 0, 1
    )


@pytest.mark.parametrize(
    ("macro", "equivalent"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ],
)
def test_macros_tick_like_their_patterns(macro: str, equivalent: str) -> None:
    start, end = utc(2026, 1, 1), utc(2028, 1, 1)
    expected = ticks(equivalent, start, end)
    assert expected
    assert ticks(macro, start, end) == expected


def test_weekly_ticks_on_sunday_midnight() -> None:
    assert CronExpression("@weekly").next_after(utc(2026, 5, 1)) == utc(2026, 5, 3)


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # The 13th, and every Friday: May 2026 has Fridays 1, 8, 15, 22, 29.
    days = [t.day for t in ticks("0 0 13 * FRI", utc(2026, 4, 30), utc(2026, 5, 31))]
    assert days == [1, 8, 13, 15, 22, 29]


def test_day_of_week_alone_when_day_of_month_is_star() -> None:
    days = [t.day for t in ticks("0 0 * * FRI", utc(2026, 4, 30), utc(2026, 5, 31))]
    assert days == [1, 8, 15, 22, 29]


def test_day_of_month_alone_when_day_of_week_is_star() -> None:
    days = [t.day for t in ticks("0 0 13 * *", utc(2026, 4, 30), utc(2026, 7, 31))]
    assert days == [13, 13, 13]


def test_a_stepped_day_of_month_counts_as_restricted() -> None:
    # `*/10` is not a bare `*`: days 1, 11, 21, 31 or any Sunday (May 2026: 3, 10, 17, 24, 31).
    days = [t.day for t in ticks("0 0 */10 * 0", utc(2026, 4, 30), utc(2026, 5, 31))]
    assert days == [1, 3, 10, 11, 17, 21, 24, 31]


def test_month_and_weekday_names_are_case_insensitive() -> None:
    start, end = utc(2026, 1, 1), utc(2027, 1, 1)
    assert ticks("0 0 * jun-Aug mon,wEd", start, end) == ticks("0 0 * 6-8 1,3", start, end)


def test_sunday_is_both_0_and_7_in_ranges() -> None:
    days = [t.strftime("%a") for t in ticks("0 0 * * 5-7", utc(2026, 5, 4), utc(2026, 5, 11))]
    assert days == ["Fri", "Sat", "Sun"]


def test_an_open_ended_step_runs_to_the_field_maximum() -> None:
    hours = [t.hour for t in ticks("0 17/3 * * *", utc(2026, 5, 1), utc(2026, 5, 2))]
    assert hours == [17, 20, 23]


def test_ticks_between_is_start_exclusive_end_inclusive() -> None:
    assert ticks("0 * * * *", utc(2026, 5, 1, 10), utc(2026, 5, 1, 12)) == [
        utc(2026, 5, 1, 11),
        utc(2026, 5, 1, 12),
    ]


def test_ticks_between_stops_at_the_limit_keeping_the_earliest() -> None:
    cron = CronExpression("* * * * *")
    got = cron.ticks_between(utc(2026, 5, 1), utc(2026, 6, 1), limit=3)
    assert got == [utc(2026, 5, 1, 0, 1), utc(2026, 5, 1, 0, 2), utc(2026, 5, 1, 0, 3)]
    assert cron.ticks_between(utc(2026, 5, 1), utc(2026, 6, 1), limit=0) == []


def test_ticks_between_refuses_a_negative_limit_and_naive_bounds() -> None:
    cron = CronExpression("* * * * *")
    with pytest.raises(ValueError, match="limit"):
        cron.ticks_between(utc(2026, 5, 1), utc(2026, 6, 1), limit=-1)
    with pytest.raises(ValueError, match="end must be timezone-aware"):
        cron.ticks_between(utc(2026, 5, 1), datetime(2026, 6, 1), limit=1)
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        cron.ticks_between(datetime(2026, 5, 1), utc(2026, 6, 1), limit=1)


def test_yearly_ticks_over_a_decade_in_a_dst_zone() -> None:
    cron = CronExpression("0 0 1 1 *", "Europe/Berlin")
    got = cron.ticks_between(utc(2026, 1, 1), utc(2036, 1, 1), limit=100)
    assert len(got) == 10
    assert got[0] == utc(2026, 12, 31, 23)  # midnight in Berlin, UTC+1


def test_no_tick_before_year_9999_raises_value_error() -> None:
    with pytest.raises(ValueError, match="no tick after"):
        CronExpression("0 0 1 1 *").next_after(utc(9999, 6, 1))
    with pytest.raises(ValueError, match="no tick after"):
        CronExpression("* * * * *", "Asia/Tokyo").next_after(utc(9999, 12, 31, 14, 59))


def test_a_pattern_in_a_timezone_is_matched_against_local_wall_time() -> None:
    cron = CronExpression("0 9 * * *", "Asia/Tokyo")
    assert cron.next_after(utc(2026, 4, 30, 23)) == utc(2026, 5, 1, 0)
    assert cron.next_after(utc(2026, 5, 1, 0)) == utc(2026, 5, 2, 0)


# --- daylight saving time ------------------------------------------------------------------------
# Europe/Berlin: 2026-03-29 01:00Z clocks jump 02:00 -> 03:00 (CET +1 -> CEST +2);
#                2026-10-25 01:00Z clocks fall 03:00 -> 02:00 (CEST +2 -> CET +1).
# America/New_York: 2026-03-08 07:00Z 02:00 -> 03:00; 2026-11-01 06:00Z 02:00 -> 01:00.

SPRING = (utc(2026, 3, 28, 22), utc(2026, 3, 29, 4))  # Berlin 23:00 .. 06:00
AUTUMN = (utc(2026, 10, 24, 21), utc(2026, 10, 25, 4))  # Berlin 23:00 .. 05:00


def test_berlin_spring_forward_moves_a_time_of_day_in_the_gap_to_the_gap_end() -> None:
    # 02:30 does not exist: it fires once, at 03:00 CEST.
    assert ticks("30 2 * * *", *SPRING, tz="Europe/Berlin") == [utc(2026, 3, 29, 1)]


def test_berlin_spring_forward_skips_hourly_ticks_in_the_missing_hour() -> None:
    assert ticks("0 * * * *", *SPRING, tz="Europe/Berlin") == [
        utc(2026, 3, 28, 23),  # 00:00 CET
        utc(2026, 3, 29, 0),  # 01:00 CET
        utc(2026, 3, 29, 1),  # 03:00 CEST: 02:00 does not exist and is not moved
        utc(2026, 3, 29, 2),
        utc(2026, 3, 29, 3),
        utc(2026, 3, 29, 4),
    ]


def test_berlin_spring_forward_half_hourly_ticks_keep_real_time_spacing() -> None:
    got = ticks("*/30 * * * *", utc(2026, 3, 28, 23, 59), utc(2026, 3, 29, 2), tz="Europe/Berlin")
    assert got == [
        utc(2026, 3, 29, 0, 0),  # 01:00 CET
        utc(2026, 3, 29, 0, 30),  # 01:30 CET
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST
        utc(2026, 3, 29, 1, 30),  # 03:30 CEST
        utc(2026, 3, 29, 2, 0),  # 04:00 CEST
    ]


def test_berlin_spring_forward_three_oclock_fires_once() -> None:
    assert ticks("0 3 * * *", *SPRING, tz="Europe/Berlin") == [utc(2026, 3, 29, 1)]


def test_berlin_spring_forward_a_gap_tick_and_the_gap_end_tick_fire_once() -> None:
    assert ticks("0 2,3 * * *", *SPRING, tz="Europe/Berlin") == [utc(2026, 3, 29, 1)]
    assert ticks("*/20 2 * * *", *SPRING, tz="Europe/Berlin") == [utc(2026, 3, 29, 1)]


def test_berlin_fall_back_fires_a_time_of_day_at_its_first_occurrence() -> None:
    assert ticks("30 2 * * *", *AUTUMN, tz="Europe/Berlin") == [utc(2026, 10, 25, 0, 30)]


def test_berlin_fall_back_fires_hourly_ticks_at_both_occurrences() -> None:
    assert ticks("0 * * * *", *AUTUMN, tz="Europe/Berlin") == [
        utc(2026, 10, 24, 22),  # 00:00 CEST
        utc(2026, 10, 24, 23),  # 01:00 CEST
        utc(2026, 10, 25, 0),  # 02:00 CEST
        utc(2026, 10, 25, 1),  # 02:00 CET
        utc(2026, 10, 25, 2),  # 03:00 CET
        utc(2026, 10, 25, 3),
        utc(2026, 10, 25, 4),
    ]


def test_berlin_fall_back_half_hourly_ticks_every_thirty_real_minutes() -> None:
    got = ticks("*/30 * * * *", utc(2026, 10, 24, 23, 59), utc(2026, 10, 25, 2), tz="Europe/Berlin")
    assert got == [
        utc(2026, 10, 25, 0, 0),  # 02:00 CEST
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 1, 0),  # 02:00 CET
        utc(2026, 10, 25, 1, 30),  # 02:30 CET
        utc(2026, 10, 25, 2, 0),  # 03:00 CET
    ]


def test_berlin_fall_back_three_oclock_fires_once_after_the_repeat() -> None:
    assert ticks("0 3 * * *", *AUTUMN, tz="Europe/Berlin") == [utc(2026, 10, 25, 2)]


def test_berlin_fall_back_every_minute_of_hour_two_fires_only_on_the_first_pass() -> None:
    got = ticks("* 2 * * *", *AUTUMN, tz="Europe/Berlin")
    assert len(got) == 60
    assert (got[0], got[-1]) == (utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 59))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (utc(2026, 10, 25, 0, 45), utc(2026, 10, 26, 1, 30)),  # 02:45 CEST, first pass
        (utc(2026, 10, 25, 1, 0), utc(2026, 10, 26, 1, 30)),  # 02:00 CET, second pass
        (utc(2026, 10, 25, 1, 15), utc(2026, 10, 26, 1, 30)),  # 02:15 CET, second pass
        (utc(2026, 10, 25, 0, 15), utc(2026, 10, 25, 0, 30)),  # 02:15 CEST, before the tick
    ],
)
def test_berlin_fall_back_next_after_from_inside_the_repeated_hour(
    moment: datetime, expected: datetime
) -> None:
    assert CronExpression("30 2 * * *", "Europe/Berlin").next_after(moment) == expected


def test_berlin_fall_back_hourly_next_after_from_the_first_pass() -> None:
    cron = CronExpression("0 * * * *", "Europe/Berlin")
    assert cron.next_after(utc(2026, 10, 25, 0, 45)) == utc(2026, 10, 25, 1)  # 02:00 CET


def test_new_york_spring_forward_two_oclock_fires_at_three() -> None:
    got = ticks("0 2 * * *", utc(2026, 3, 7, 12), utc(2026, 3, 9, 12), tz="America/New_York")
    assert got == [
        utc(2026, 3, 8, 7),  # 03:00 EDT: 02:00 EST does not exist
        utc(2026, 3, 9, 6),  # 02:00 EDT
    ]


def test_new_york_fall_back_two_oclock_is_not_repeated() -> None:
    got = ticks("0 2 * * *", utc(2026, 10, 31, 12), utc(2026, 11, 2, 12), tz="America/New_York")
    assert got == [
        utc(2026, 11, 1, 7),  # 02:00 EST: the clock goes 01:59 EDT -> 01:00 EST -> 02:00 EST
        utc(2026, 11, 2, 7),
    ]


def test_new_york_fall_back_one_thirty_fires_once_at_the_first_occurrence() -> None:
    got = ticks("30 1 * * *", utc(2026, 11, 1), utc(2026, 11, 1, 12), tz="America/New_York")
    assert got == [utc(2026, 11, 1, 5, 30)]  # 01:30 EDT, not 01:30 EST


# A brute-force reference: walk real time minute by minute and apply the documented rules.
DST_ZONES = [
    ("Europe/Berlin", [utc(2026, 3, 29), utc(2026, 10, 25)]),
    ("America/New_York", [utc(2026, 3, 8), utc(2026, 11, 1)]),
    ("Australia/Lord_Howe", [utc(2026, 4, 4), utc(2026, 10, 3)]),  # 30-minute shifts
    ("America/Santiago", [utc(2026, 4, 4), utc(2026, 9, 6)]),  # transitions at midnight
    ("Pacific/Chatham", [utc(2026, 4, 4), utc(2026, 9, 26)]),  # +12:45 / +13:45
]
REFERENCE_PATTERNS: list[tuple[str, Callable[[datetime], bool]]] = [
    ("30 2 * * *", lambda w: (w.hour, w.minute) == (2, 30)),
    ("0 * * * *", lambda w: w.minute == 0),
    ("*/15 * * * *", lambda w: w.minute % 15 == 0),
    ("0 3 * * *", lambda w: (w.hour, w.minute) == (3, 0)),
    ("0 0 * * *", lambda w: (w.hour, w.minute) == (0, 0)),
    ("45 2,3 * * *", lambda w: w.hour in (2, 3) and w.minute == 45),
    ("*/10 1-3 * * *", lambda w: 1 <= w.hour <= 3 and w.minute % 10 == 0),
    ("5 */2 * * *", lambda w: w.hour % 2 == 0 and w.minute == 5),
]


def reference_ticks(
    matches: Callable[[datetime], bool], every_hour: bool, zone: ZoneInfo, start: datetime
) -> list[datetime]:
    found: list[datetime] = []
    minute = timedelta(minutes=1)
    for step in range(1, 3 * 24 * 60 + 1):
        instant = start + step * minute
        local, before = instant.astimezone(zone), (instant - minute).astimezone(zone)
        wall = local.replace(tzinfo=None)
        if matches(wall) and (every_hour or not local.fold):
            found.append(instant)
        elif not every_hour and local.utcoffset() > before.utcoffset():  # type: ignore[operator]
            skipped = before.replace(tzinfo=None) + minute
            while skipped < wall:
                if matches(skipped):
                    found.append(instant)
                    break
                skipped += minute
    return found


@pytest.mark.parametrize(("tz", "days"), DST_ZONES)
@pytest.mark.parametrize(("pattern", "matches"), REFERENCE_PATTERNS)
def test_dst_days_agree_with_a_brute_force_reference(
    tz: str, days: list[datetime], pattern: str, matches: Callable[[datetime], bool]
) -> None:
    cron = CronExpression(pattern, tz)
    for day in days:
        start = day - timedelta(days=1)
        offsets = {(start + timedelta(days=n)).astimezone(ZoneInfo(tz)).utcoffset() for n in (0, 3)}
        assert len(offsets) == 2, "the window must contain a transition"
        expected = reference_ticks(matches, cron._every_hour, ZoneInfo(tz), start)
        assert expected
        assert cron.ticks_between(start, start + timedelta(days=3), 10_000) == expected


def test_next_after_agrees_with_ticks_between_from_every_minute_of_a_dst_day() -> None:
    for pattern in ("30 2 * * *", "*/30 * * * *", "0 2,3 * * *"):
        cron = CronExpression(pattern, "Europe/Berlin")
        for start in (utc(2026, 3, 28, 20), utc(2026, 10, 24, 20)):
            all_ticks = cron.ticks_between(start, start + timedelta(days=2), 1000)
            for step in range(0, 8 * 60, 7):
                moment = start + timedelta(minutes=step, seconds=13)
                assert cron.next_after(moment) == next(t for t in all_ticks if t > moment)


# --- intervals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(timedelta(minutes=5), 300.0), (30, 30.0), (0.25, 0.25), (timedelta(microseconds=1), 1e-6)],
)
def test_parse_interval_accepts_timedeltas_and_seconds(
    value: timedelta | float, seconds: float
) -> None:
    assert parse_interval(value) == seconds


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (0, "interval must be > 0 seconds, got 0"),
        (0.0, "got 0.0"),
        (-5, "got -5"),
        (timedelta(0), "got 0:00:00"),
        (timedelta(seconds=-1), "interval must be > 0 seconds"),
        (math.nan, "got nan"),
        (math.inf, "got inf"),
        (True, "timedelta or a number of seconds, got True"),
        ("60", "got '60'"),
        (None, "got None"),
    ],
)
def test_parse_interval_refuses_non_positive_and_non_numbers(value: object, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_interval(value)  # type: ignore[arg-type]
    assert fragment in str(caught.value)


def test_interval_ticks_are_aligned_to_the_anchor() -> None:
    got = interval_ticks(UNIX_EPOCH, 60, utc(2026, 5, 1, 10, 0, 30), limit=3)
    assert got == [utc(2026, 5, 1, 10, 1), utc(2026, 5, 1, 10, 2), utc(2026, 5, 1, 10, 3)]
    assert all(t.tzinfo is UTC for t in got)


def test_interval_ticks_are_strictly_after() -> None:
    assert interval_ticks(UNIX_EPOCH, 60, utc(2026, 5, 1, 10), limit=1) == [utc(2026, 5, 1, 10, 1)]


def test_two_processes_computing_from_different_instants_agree_on_every_tick() -> None:
    interval = timedelta(seconds=7.3)
    anchor = utc(2020, 2, 29, 1, 2, 3)
    early = interval_ticks(anchor, interval, utc(2026, 5, 1, 10, 0, 0, 123), limit=200)
    late = interval_ticks(anchor, interval, utc(2026, 5, 1, 10, 3, 17, 999), limit=200)
    shared = set(early) & set(late)
    assert len(shared) > 150
    assert [t for t in early if t in shared] == [t for t in late if t in shared]
    assert late[0] == next(t for t in early if t > utc(2026, 5, 1, 10, 3, 17, 999))


def test_fractional_intervals_do_not_drift_far_from_the_anchor() -> None:
    tick = interval_ticks(UNIX_EPOCH, 0.1, utc(2026, 5, 1, 10), limit=1)[0]
    assert tick == utc(2026, 5, 1, 10, 0, 0, 100_000)


def test_interval_ticks_work_before_the_anchor() -> None:
    anchor = utc(2026, 1, 1)
    assert interval_ticks(anchor, 3600, utc(2025, 12, 31, 22, 30), limit=2) == [
        utc(2025, 12, 31, 23),
        utc(2026, 1, 1),
    ]


def test_an_anchor_in_another_timezone_is_the_same_instant() -> None:
    anchor = datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))  # 00:00Z
    assert interval_ticks(anchor, 3600, utc(2026, 1, 1, 0, 30), limit=1) == [utc(2026, 1, 1, 1)]


def test_tick_at_or_before() -> None:
    assert tick_at_or_before(UNIX_EPOCH, 60, utc(2026, 5, 1, 10, 0, 59)) == utc(2026, 5, 1, 10)
    assert tick_at_or_before(UNIX_EPOCH, 60, utc(2026, 5, 1, 10)) == utc(2026, 5, 1, 10)
    before = tick_at_or_before(UNIX_EPOCH, 60, utc(2026, 5, 1, 10, 0, 30))
    assert interval_ticks(UNIX_EPOCH, 60, before, limit=1) == [utc(2026, 5, 1, 10, 1)]


@pytest.mark.parametrize("interval", [0, -1, timedelta(0), 1e-9])
def test_interval_ticks_refuse_zero_negative_and_sub_microsecond_intervals(
    interval: timedelta | float,
) -> None:
    with pytest.raises(ConfigurationError, match="interval must be"):
        interval_ticks(UNIX_EPOCH, interval, utc(2026, 5, 1), limit=1)
    with pytest.raises(ConfigurationError, match="interval must be"):
        tick_at_or_before(UNIX_EPOCH, interval, utc(2026, 5, 1))


def test_interval_ticks_refuse_naive_datetimes_and_negative_limits() -> None:
    with pytest.raises(ValueError, match="anchor must be timezone-aware"):
        interval_ticks(datetime(1970, 1, 1), 60, utc(2026, 5, 1), limit=1)
    with pytest.raises(ValueError, match="after must be timezone-aware"):
        interval_ticks(UNIX_EPOCH, 60, datetime(2026, 5, 1), limit=1)
    with pytest.raises(ValueError, match="moment must be timezone-aware"):
        tick_at_or_before(UNIX_EPOCH, 60, datetime(2026, 5, 1))
    with pytest.raises(ValueError, match="limit"):
        interval_ticks(UNIX_EPOCH, 60, utc(2026, 5, 1), limit=-1)
