"""Fixed-interval schedules: ticks aligned to an anchor, so every process computes the same ones.

The ticks of an interval schedule are ``anchor + k * interval`` for every integer ``k`` (negative
ones too). Because they depend only on the anchor and the interval, never on when a process
started or last looked, two processes that compute the ticks after different instants agree on
every tick they share, and the scheduler can use each tick instant as a unique key.

Arithmetic is exact in whole microseconds: the interval is rounded to the nearest microsecond
once, so no floating-point drift accumulates however far a tick is from the anchor. Returned
datetimes are timezone-aware, in UTC.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from ..errors import ConfigurationError

__all__ = ["UNIX_EPOCH", "interval_ticks", "parse_interval", "tick_at_or_before"]

UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""The conventional anchor: 1970-01-01T00:00:00Z."""

_MICROSECOND = timedelta(microseconds=1)


def parse_interval(value: timedelta | float) -> float:
    """Return ``value`` in seconds: a timedelta, or an int or float number of seconds.

    Raises ConfigurationError for anything that is not a finite number of seconds > 0: zero,
    negative, NaN, infinite, a bool, a string.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigurationError(
            f"interval must be a timedelta or a number of seconds, got {value!r}"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(f"interval must be > 0 seconds, got {value}")
    return seconds


def _interval_microseconds(interval: timedelta | float) -> int:
    step = round(parse_interval(interval) * 1_000_000)
    if step < 1:
        raise ConfigurationError(f"interval must be at least 1 microsecond, got {interval}")
    return step


def _aware(name: str, moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment!r}")
    return moment


def _steps_from_anchor(anchor: datetime, moment: datetime, step: int, name: str) -> int:
    """The largest k with anchor + k * step <= moment (floor division, exact)."""
    return (_aware(name, moment) - _aware("anchor", anchor)) // _MICROSECOND // step


def tick_at_or_before(anchor: datetime, interval: timedelta | float, moment: datetime) -> datetime:
    """The latest tick ``anchor + k * interval`` that is at or before ``moment``, in UTC."""
    step = _interval_microseconds(interval)
    k = _steps_from_anchor(anchor, moment, step, "moment")
    return (anchor + k * step * _MICROSECOND).astimezone(UTC)


def interval_ticks(
    anchor: datetime, interval: timedelta | float, after: datetime, limit: int
) -> list[datetime]:
    """The first ``limit`` ticks ``anchor + k * interval`` strictly after ``after``, in UTC.

    ``anchor`` and ``after`` must be timezone-aware (ValueError otherwise); ``limit`` must be
    >= 0. The interval is validated like ``parse_interval``.
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit!r}")
    step = _interval_microseconds(interval)
    first = _steps_from_anchor(anchor, after, step, "after") + 1
    origin = anchor.astimezone(UTC)
    return [origin + (first + i) * step * _MICROSECOND for i in range(limit)]
