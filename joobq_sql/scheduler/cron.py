"""Cron expressions: parse a pattern once, then compute its tick instants in UTC.

Syntax: 5 fields ``minute hour day-of-month month day-of-week`` or 6 fields with ``second``
first. A field is ``*``, a number, a range ``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n`` (``a`` to
the field's maximum), or a comma list of those. Months accept JAN-DEC and weekdays SUN-SAT, in
any case; day-of-week is 0-7 with 0 and 7 both Sunday (``*`` and ``a/n`` cover 0-6). The macros
``@yearly @annually @monthly @weekly @daily @midnight @hourly`` stand for their usual patterns.

Day-of-month and day-of-week follow classic cron: when both are restricted (neither is a bare
``*``) a day matches if either matches; otherwise both must. A pattern that can never fire
(``0 0 30 2 *``) is refused when parsed, as is any other bad input, with a ConfigurationError
naming the pattern, the field and what is valid.

Daylight saving time. The pattern is matched against the wall clock in ``tz``. What happens
around a transition depends on the hour field, because a pattern that names hours describes
times of day while one whose hour field covers every hour (``*``, ``*/1``, ``0-23``) describes
the clock ticking by:

* Spring forward (a wall time that does not exist, e.g. 02:30 on the day Europe/Berlin jumps from
  02:00 to 03:00). With a restricted hour field, matching wall times inside the gap fire once, at
  the first instant after the gap (03:00 local, 01:00 UTC); if the pattern also matches that
  instant itself (``0 2,3 * * *``), it still fires only once. With every hour, wall times inside
  the gap do not occur and are skipped: ``0 * * * *`` and ``*/15 * * * *`` have no ticks there.
* Fall back (a wall time that occurs twice, e.g. 02:30 on the day Berlin goes from 03:00 back to
  02:00). With a restricted hour field it fires once, at the first occurrence (fold=0). With every
  hour it fires at both occurrences, so ``*/30 * * * *`` still ticks every 30 minutes of real time.

Offsets are found by probing the zone once a day and bisecting to the second, so two transitions
less than a day apart that cancel each other out go unnoticed (no current zone does that).
"""

from __future__ import annotations

import bisect
import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ConfigurationError

__all__ = ["CronExpression"]

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, start=1)}
_WEEKDAYS = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}
_FieldSpec = tuple[str, int, int, int, dict[str, int], str]
# name, lowest, highest, highest for `*` and `a/n`, names accepted, what is valid
_FIELDS: tuple[_FieldSpec, ...] = (
    ("second", 0, 59, 59, {}, "0-59"),
    ("minute", 0, 59, 59, {}, "0-59"),
    ("hour", 0, 23, 23, {}, "0-23"),
    ("day-of-month", 1, 31, 31, {}, "1-31"),
    ("month", 1, 12, 12, _MONTHS, "1-12 or JAN-DEC"),
    ("day-of-week", 0, 7, 6, _WEEKDAYS, "0-7 (0 and 7 are Sunday) or SUN-SAT"),
)
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February of a leap year
_SECOND, _MINUTE = timedelta(seconds=1), timedelta(minutes=1)
_HOUR, _DAY = timedelta(hours=1), timedelta(days=1)
_SEARCH_YEARS = 9  # February 29 can be 8 years away (2096 -> 2104)


def _parse_field(pattern: str, spec: _FieldSpec, text: str) -> frozenset[int]:
    """Return the values one field matches; raise ConfigurationError naming the field."""
    name, low, high, open_high, names, valid = spec

    def fail(detail: str) -> ConfigurationError:
        return ConfigurationError(f"cron pattern {pattern!r}: {name} {detail}")

    def number(token: str) -> int:
        if not token:
            raise fail(f"has an empty value in {text!r} (valid: {valid}, ranges, steps, lists)")
        if token.isascii() and token.isdigit():
            value = int(token)
        elif names and token.upper() in names:
            value = names[token.upper()]
        else:
            raise fail(f"{token!r} is not a number (valid: {valid})")
        if not low <= value <= high:
            raise fail(f"{value} is out of range {low}-{high}")
        return value

    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()):
                raise fail(f"step {step_text!r} in {item!r} is not a whole number >= 1")
            step = int(step_text)
            if step == 0:
                raise fail(f"step 0 in {item!r} must be at least 1")
        if base == "*":
            start, end = low, open_high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = number(first), number(last)
            if start > end:
                raise fail(f"range {base} is reversed (the start must not exceed the end)")
        else:
            start = number(base)
            end = max(open_high, start) if slash else start
        values.update(range(start, end + 1, step))
    if name == "day-of-week":
        values = {value % 7 for value in values}
    return frozenset(values)


def _next_in(values: tuple[int, ...], at_least: int) -> int | None:
    """The smallest of the sorted ``values`` that is >= ``at_least``, or None."""
    index = bisect.bisect_left(values, at_least)
    return values[index] if index < len(values) else None


class CronExpression:
    """A parsed cron pattern in an IANA timezone (see the module docstring for the rules).

    ``next_after`` and ``ticks_between`` take timezone-aware datetimes and return aware datetimes
    in UTC with whole seconds. Both skip by field (month, day, hour, minute, second) and never
    step through time second by second.
    """

    def __init__(self, pattern: str, tz: str = "UTC") -> None:
        if not isinstance(pattern, str):
            raise ConfigurationError(f"cron pattern must be a string, got {pattern!r}")
        self.pattern = pattern
        text = pattern.strip()
        if text.startswith("@"):
            if text.lower() not in MACROS:
                raise ConfigurationError(
                    f"cron pattern {pattern!r}: unknown macro (valid: {', '.join(MACROS)})"
                )
            text = MACROS[text.lower()]
        fields = text.split()
        if len(fields) not in (5, 6):
            got = "it is empty" if not fields else f"got {len(fields)}"
            raise ConfigurationError(
                f"cron pattern {pattern!r}: expected 5 fields (minute hour day-of-month month "
                f"day-of-week) or 6 (second first); {got}"
            )
        if len(fields) == 5:
            fields.insert(0, "0")
        parsed = [
            _parse_field(pattern, spec, field) for spec, field in zip(_FIELDS, fields, strict=True)
        ]
        self._seconds, self._minutes, self._hours, self._days, self._months, weekdays = (
            tuple(sorted(values)) for values in parsed
        )
        self._weekdays = frozenset(weekdays)
        self._any_day_of_month, self._any_day_of_week = fields[3] == "*", fields[5] == "*"
        self._every_hour = len(self._hours) == 24
        self._refuse_if_never_fires()
        if not isinstance(tz, str):
            raise ConfigurationError(f"cron timezone must be an IANA name string, got {tz!r}")
        try:
            self._zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"cron pattern {pattern!r}: unknown timezone {tz!r} "
                "(expected an IANA name such as 'Europe/Berlin' or 'UTC')"
            ) from None
        self.tz = tz

    def __repr__(self) -> str:
        return f"CronExpression({self.pattern!r}, tz={self.tz!r})"

    def _refuse_if_never_fires(self) -> None:
        # Only day-of-month alone can be impossible: every month has every weekday.
        if self._any_day_of_month or not self._any_day_of_week:
            return
        if any(day <= _DAYS_IN_MONTH[m - 1] for m in self._months for day in self._days):
            return
        months = ", ".join(_MONTH_NAMES[m - 1] for m in self._months)
        raise ConfigurationError(
            f"cron pattern {self.pattern!r}: day-of-month {','.join(map(str, self._days))} "
            f"never occurs in month {months}, so the pattern can never fire"
        )

    def _day_matches(self, day: date) -> bool:
        in_month = day.day in self._days
        in_week = day.isoweekday() % 7 in self._weekdays
        if self._any_day_of_month or self._any_day_of_week:
            return in_month and in_week
        return in_month or in_week

    def _next_wall(self, floor: datetime, inclusive: bool) -> datetime | None:
        """The first naive wall time that matches, at or after (or after) ``floor``."""
        t = floor.replace(microsecond=0)
        if floor.microsecond or not inclusive:
            t += _SECOND
        last_year = t.year + _SEARCH_YEARS
        try:
            while t.year <= last_year:
                if t.month not in self._months:
                    t = datetime(t.year + t.month // 12, t.month % 12 + 1, 1)
                    continue
                if not self._day_matches(t.date()):
                    t = datetime(t.year, t.month, t.day) + _DAY
                    continue
                hour = _next_in(self._hours, t.hour)
                if hour is None:
                    t = datetime(t.year, t.month, t.day) + _DAY
                    continue
                if hour != t.hour:
                    t = t.replace(hour=hour, minute=0, second=0)
                minute = _next_in(self._minutes, t.minute)
                if minute is None:
                    t = t.replace(minute=0, second=0) + _HOUR
                    continue
                if minute != t.minute:
                    t = t.replace(minute=minute, second=0)
                second = _next_in(self._seconds, t.second)
                if second is None:
                    t = t.replace(second=0) + _MINUTE
                    continue
                return t.replace(second=second)
        except (OverflowError, ValueError):  # past year 9999
            return None
        return None

    def _offset(self, instant: datetime) -> timedelta:
        offset = instant.astimezone(self._zone).utcoffset()
        assert offset is not None
        return offset

    def _first_transition(self, start: datetime, end: datetime) -> datetime | None:
        """The first instant in (start, end] whose UTC offset differs from start's, or None."""
        offset = self._offset(start)
        low = start
        while low < end:
            high = end if end - low <= _DAY else low + _DAY
            if self._offset(high) != offset:
                low_s, high_s = math.floor(low.timestamp()), math.ceil(high.timestamp())
                while high_s - low_s > 1:  # transitions fall on whole seconds
                    middle = (low_s + high_s) // 2
                    if self._offset(datetime.fromtimestamp(middle, UTC)) == offset:
                        low_s = middle
                    else:
                        high_s = middle
                return datetime.fromtimestamp(high_s, UTC)
            low = high
        return None

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment`` (timezone-aware), in UTC.

        Raises ValueError for a naive ``moment``, or if no tick exists before year 9999.
        """
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"moment must be timezone-aware, got naive {moment!r}")
        t = moment.astimezone(UTC)
        local = t.astimezone(self._zone)
        offset = self._offset(t)
        floor, inclusive = local.replace(tzinfo=None, fold=0), False
        if local.fold and not self._every_hour:
            # The second pass through a repeated hour: its wall times already fired on the first.
            first_offset = local.replace(fold=0).utcoffset()
            assert first_offset is not None
            shift = self._first_transition(t - (first_offset - offset), t)
            if shift is not None:
                floor, inclusive = (shift + first_offset).replace(tzinfo=None), True
        while True:
            wall = self._next_wall(floor, inclusive)
            if wall is None:
                raise ValueError(f"{self!r} has no tick after {moment.isoformat()} before 9999")
            candidate = (wall - offset).replace(tzinfo=UTC)
            shift = self._first_transition(t, candidate)
            if shift is None:
                return candidate
            new_offset = self._offset(shift)
            gap_end_wall = (shift + new_offset).replace(tzinfo=None)
            if not self._every_hour and new_offset > offset and wall < gap_end_wall:
                return shift  # the wall time fell in the spring-forward gap
            # After a fall back, a restricted hour resumes where the wall clock had already been.
            resume = new_offset if self._every_hour else max(new_offset, offset)
            floor, inclusive = (shift + resume).replace(tzinfo=None), True
            t, offset = shift, new_offset

    def ticks_between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """The ticks in (start, end], in order, in UTC; at most ``limit`` of them (the earliest)."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit!r}")
        for name, value in (("start", start), ("end", end)):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware, got naive {value!r}")
        ticks: list[datetime] = []
        tick = start
        while len(ticks) < limit:
            tick = self.next_after(tick)
            if tick > end:
                break
            ticks.append(tick)
        return ticks
